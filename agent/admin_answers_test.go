package agent_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
)

func opsOf(ops ...kadm.ACLOperation) []kadm.ACLOperation {
	slices.Sort(ops)
	return ops
}

func sortedOps(ops []kadm.ACLOperation) []kadm.ACLOperation {
	out := slices.Clone(ops)
	slices.Sort(out)
	return out
}

var (
	allClusterOps = opsOf(kadm.OpCreate, kadm.OpClusterAction, kadm.OpDescribeConfigs, kadm.OpAlterConfigs, kadm.OpIdempotentWrite, kadm.OpAlter, kadm.OpDescribe)
	allTopicOps   = opsOf(kadm.OpRead, kadm.OpWrite, kadm.OpCreate, kadm.OpDescribe, kadm.OpDelete, kadm.OpAlter, kadm.OpDescribeConfigs, kadm.OpAlterConfigs)
	allGroupOps   = opsOf(kadm.OpRead, kadm.OpDescribe, kadm.OpDelete)
)

// clusterOps asks DescribeCluster for the cluster's authorized operations.
func clusterOps(t *testing.T, cl *kgo.Client, include bool) int32 {
	t.Helper()
	req := kmsg.NewPtrDescribeClusterRequest()
	req.IncludeClusterAuthorizedOperations = include
	resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("describe cluster: %v %v", err, resp)
	}
	return resp.ClusterAuthorizedOperations
}

// TestAuthorizedOperationsWithoutAuthorizer proves that with no authorizer
// DescribeCluster, Metadata and DescribeGroups report every operation of
// the resource type when asked (7 for the cluster, 8 for a topic, 3 for a
// group, as Kafka) and -2147483648 when not asked; kadm is the client.
func TestAuthorizedOperationsWithoutAuthorizer(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	cl := c.Client(t)
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, "ops"); err != nil {
		t.Fatal(err)
	}
	if got := sortedOps(kadm.DecodeACLOperations(clusterOps(t, cl, true))); !slices.Equal(got, allClusterOps) {
		t.Errorf("cluster operations %v, want %v", got, allClusterOps)
	}
	if got := clusterOps(t, cl, false); got != -2147483648 {
		t.Errorf("cluster operations not asked for: %d", got)
	}
	md, err := adm.Metadata(kadm.WithAuthorizedOps(ctx), "ops")
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedOps(md.Topics["ops"].AuthorizedOperations); !slices.Equal(got, allTopicOps) {
		t.Errorf("topic operations %v, want %v", got, allTopicOps)
	}
	raw := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("ops")
	raw.Topics = append(raw.Topics, rt)
	if resp, err := raw.RequestWith(ctx, cl); err != nil || resp.Topics[0].AuthorizedOperations != -2147483648 {
		t.Errorf("topic operations not asked for: %v %+v", err, resp)
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "ops", Partition: 0, At: 0})
	if _, err := adm.CommitOffsets(ctx, "ops-group", offs); err != nil {
		t.Fatal(err)
	}
	dg, err := adm.DescribeGroups(ctx, "ops-group")
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedOps(dg["ops-group"].AuthorizedOperations); !slices.Equal(got, allGroupOps) {
		t.Errorf("group operations %v, want %v", got, allGroupOps)
	}
}

// TestAuthorizedOperationsFromACLs proves authorized operations follow the
// ACLs as Kafka computes them (implied DESCRIBE included): a principal
// allowed READ on a topic, DESCRIBE on a group and DESCRIBE on the cluster
// is told exactly that, and a super user every operation.
func TestAuthorizedOperationsFromACLs(t *testing.T) {
	e := startSecure(t, 1)
	e.putUser(t, "alice", "pw")
	adm := e.admin(t, 0)
	mustCreateTopic(t, adm, "acl-ops")
	mustACL(t, adm, kadm.NewACLs().Allow("User:alice").Topics("acl-ops").Operations(kadm.OpRead))
	mustACL(t, adm, kadm.NewACLs().Allow("User:alice").Groups("acl-g").Operations(kadm.OpDescribe, kadm.OpRead))
	mustACL(t, adm, kadm.NewACLs().Allow("User:alice").Clusters().Operations(kadm.OpDescribe))
	ctx := testCtx(t, time.Minute)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "acl-ops", Partition: 0, At: 0})
	if _, err := adm.CommitOffsets(ctx, "acl-g", offs); err != nil {
		t.Fatal(err)
	}
	alice := e.client(t, 0, plainM("alice", "pw"))
	aadm := kadm.NewClient(alice)
	if got, want := sortedOps(kadm.DecodeACLOperations(clusterOps(t, alice, true))), opsOf(kadm.OpDescribe); !slices.Equal(got, want) {
		t.Errorf("alice's cluster operations %v, want %v", got, want)
	}
	md, err := aadm.Metadata(kadm.WithAuthorizedOps(ctx), "acl-ops")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sortedOps(md.Topics["acl-ops"].AuthorizedOperations), opsOf(kadm.OpRead, kadm.OpDescribe); !slices.Equal(got, want) {
		t.Errorf("alice's topic operations %v, want %v", got, want)
	}
	dg, err := aadm.DescribeGroups(ctx, "acl-g")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sortedOps(dg["acl-g"].AuthorizedOperations), opsOf(kadm.OpRead, kadm.OpDescribe); !slices.Equal(got, want) {
		t.Errorf("alice's group operations %v, want %v", got, want)
	}
	if got := sortedOps(kadm.DecodeACLOperations(clusterOps(t, e.client(t, 0, scram256("admin", "admin-secret")), true))); !slices.Equal(got, allClusterOps) {
		t.Errorf("super user's cluster operations %v, want %v", got, allClusterOps)
	}
}

// TestGroupStatesAsKafka proves DescribeGroups and ListGroups report
// groups as Kafka does: a group never used (even after FindCoordinator
// made an agent hold it) is Dead and not listed; a group whose members all
// left is Empty and keeps protocol type "consumer"; a group made only by
// committing offsets is Empty with no protocol type.
func TestGroupStatesAsKafka(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, "states"); err != nil {
		t.Fatal(err)
	}
	listed := func() map[string]kadm.ListedGroup {
		t.Helper()
		l, err := adm.ListGroups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	check := func(group, state, protocolType string, inList bool) {
		t.Helper()
		dg, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if d := dg[group]; d.Err != nil || d.State != state || d.ProtocolType != protocolType {
			t.Errorf("describe %s: %v state %q protocol type %q, want %q %q", group, d.Err, d.State, d.ProtocolType, state, protocolType)
		}
		l, ok := listed()[group]
		if ok != inList || ok && (l.State != state || l.ProtocolType != protocolType) {
			t.Errorf("list: %s listed %v as %+v, want listed %v as %s %q", group, ok, l, inList, state, protocolType)
		}
	}

	// Never used: FindCoordinator makes the agent hold it.
	if fc := adm.FindGroupCoordinators(ctx, "never"); fc["never"].Err != nil {
		t.Fatal(fc["never"].Err)
	}
	check("never", "Dead", "", false)

	// Members left.
	cons := c.Client(t, kgo.ConsumerGroup("left"), kgo.ConsumeTopics("states"))
	for {
		cons.PollFetches(testCtx(t, 200*time.Millisecond))
		if dg, _ := adm.DescribeGroups(ctx, "left"); dg["left"].State == "Stable" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("group never became Stable")
		}
	}
	cons.Close()
	check("left", "Empty", "consumer", true)

	// Only committed offsets (a simple group).
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "states", Partition: 0, At: 0})
	if _, err := adm.CommitOffsets(ctx, "simple", offs); err != nil {
		t.Fatal(err)
	}
	check("simple", "Empty", "", true)
}

// TestDeprecatedTopicConfigs proves the topic configs Kafka 3.x accepts
// and ignores (message.format.version, tiered storage's) are accepted by
// CreateTopics and IncrementalAlterConfigs, reported by DescribeConfigs
// with the value set (DYNAMIC_TOPIC_CONFIG) or Kafka's default
// (DEFAULT_CONFIG) and documented as having no effect, and that a bad
// value is still INVALID_CONFIG.
func TestDeprecatedTopicConfigs(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	// Four numbers, as librdkafka's 0092_mixed_msgver sets it.
	for i, v := range []string{"0.10.0.0", "0.9.0.1", "2.8-IV1", "3.0"} {
		r, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"message.format.version": kmsg.StringPtr(v)}, fmt.Sprintf("version-%d", i))
		if err != nil || r.Err != nil {
			t.Errorf("message.format.version=%s refused: %v %v", v, err, r.Err)
		}
	}
	r, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"message.format.version": kmsg.StringPtr("0.10.0"), "remote.storage.enable": kmsg.StringPtr("true")}, "old-tool")
	if err != nil || r.Err != nil {
		t.Fatalf("create with deprecated configs: %v %v", err, r.Err)
	}
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "local.retention.ms", Value: kmsg.StringPtr("3600000")}}, "old-tool"); err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "old-tool")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		value  string
		source kmsg.ConfigSource
	}{
		"message.format.version":  {"0.10.0", kmsg.ConfigSourceDynamicTopicConfig},
		"remote.storage.enable":   {"true", kmsg.ConfigSourceDynamicTopicConfig},
		"local.retention.ms":      {"3600000", kmsg.ConfigSourceDynamicTopicConfig},
		"local.retention.bytes":   {"-2", kmsg.ConfigSourceDefaultConfig},
		"remote.log.copy.disable": {"false", kmsg.ConfigSourceDefaultConfig},
	}
	for name, w := range want {
		v, src := configValue(t, rcs, name)
		if v != w.value || src != w.source {
			t.Errorf("%s = %q (%v), want %q (%v)", name, v, src, w.value, w.source)
		}
	}
	dr := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType, res.ResourceName, res.ConfigNames = kmsg.ConfigResourceTypeTopic, "old-tool", []string{"message.format.version"}
	dr.Resources, dr.IncludeDocumentation = append(dr.Resources, res), true
	dresp, err := dr.RequestWith(ctx, c.Client(t))
	if err != nil || len(dresp.Resources) != 1 || len(dresp.Resources[0].Configs) != 1 {
		t.Fatalf("describe with docs: %v %+v", err, dresp)
	}
	if doc := dresp.Resources[0].Configs[0].Documentation; doc == nil || len(*doc) < 20 || (*doc)[:20] != "Accepted, no effect " {
		t.Errorf("message.format.version documentation %v, want it to start \"Accepted, no effect\"", doc)
	}
	bad, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"message.format.version": kmsg.StringPtr("latest")}, "bad-version")
	if err == nil {
		err = bad.Err
	}
	if err == nil {
		t.Fatal("message.format.version=latest accepted")
	}
}

// TestAlterConfigsUnknownTopicFirst proves AlterConfigs answers an unknown
// topic UNKNOWN_TOPIC_OR_PARTITION before it looks at the configs (a
// broker config named for a topic), as Kafka does since 2.7 (librdkafka's
// 0081_admin checks it), while a known topic with that config is
// INVALID_CONFIG.
func TestAlterConfigsUnknownTopicFirst(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	if r, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, "known"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	req := kmsg.NewPtrAlterConfigsRequest()
	for _, name := range []string{"known", "unknown"} {
		rr := kmsg.NewAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, name
		cfg := kmsg.NewAlterConfigsRequestResourceConfig()
		cfg.Name, cfg.Value = "offset.metadata.max.bytes", kmsg.StringPtr("12345")
		rr.Configs = append(rr.Configs, cfg)
		req.Resources = append(req.Resources, rr)
	}
	resp, err := req.RequestWith(ctx, c.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int16{"known": kerr.InvalidConfig.Code, "unknown": kerr.UnknownTopicOrPartition.Code}
	if len(resp.Resources) != 2 {
		t.Fatalf("%d resources answered, want 2", len(resp.Resources))
	}
	for _, r := range resp.Resources {
		if r.ErrorCode != want[r.ResourceName] {
			t.Errorf("%s: %v, want %v", r.ResourceName, kerr.ErrorForCode(r.ErrorCode), kerr.ErrorForCode(want[r.ResourceName]))
		}
	}
}
