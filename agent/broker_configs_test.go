package agent_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
)

// describedBroker describes a BROKER resource with documentation through
// cl's connection to broker via, and returns its configs by name.
func describedBroker(t *testing.T, cl *kgo.Client, via int32, resource string) (map[string]kmsg.DescribeConfigsResponseResourceConfig, int16, string) {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.IncludeDocumentation = true
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, resource
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl.Broker(int(via)))
	if err != nil || len(resp.Resources) != 1 {
		t.Fatalf("describe broker %q: %v %+v", resource, err, resp)
	}
	out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range resp.Resources[0].Configs {
		out[c.Name] = c
	}
	return out, resp.Resources[0].ErrorCode, deref(resp.Resources[0].ErrorMessage)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// alterBrokerRaw sends one IncrementalAlterConfigs of a BROKER resource to
// broker via and returns the resource's code and message.
func alterBrokerRaw(t *testing.T, cl *kgo.Client, via int32, resource string, configs map[string]string) (int16, string) {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, resource
	for n, v := range configs {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value, c.Op = n, kmsg.StringPtr(v), kmsg.IncrementalAlterConfigOpSet
		rr.Configs = append(rr.Configs, c)
	}
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl.Broker(int(via)))
	if err != nil || len(resp.Resources) != 1 {
		t.Fatalf("alter broker %q: %v %+v", resource, err, resp)
	}
	return resp.Resources[0].ErrorCode, deref(resp.Resources[0].ErrorMessage)
}

func wantConfig(t *testing.T, what string, got map[string]kmsg.DescribeConfigsResponseResourceConfig, name, value string, src kmsg.ConfigSource) {
	t.Helper()
	c, ok := got[name]
	if !ok {
		t.Errorf("%s: %s not described", what, name)
		return
	}
	if deref(c.Value) != value || c.Source != src || c.ReadOnly {
		t.Errorf("%s: %s = %q (%v, read-only %v), want %q (%v)", what, name, deref(c.Value), c.Source, c.ReadOnly, value, src)
	}
}

// TestDynamicBrokerConfigs proves dynamic broker configs are stored in
// etcd and read back by another agent, per node and as cluster defaults
// (the node's own over the default), with Kafka's sources and the "no
// effect" documentation; AlterConfigs replaces a node's whole set while
// IncrementalAlterConfigs SETs and DELETEs names.
func TestDynamicBrokerConfigs(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	id0, id1 := c.Agents[0].Server.NodeID(), c.Agents[1].Server.NodeID()
	cl0 := c.Client(t, pinnedDialer(c.Agents[0].Addr))
	cl1 := c.Client(t, pinnedDialer(c.Agents[1].Addr))
	adm0 := kadm.NewClient(cl0)
	set := func(name, v string) kadm.AlterConfig { return kadm.AlterConfig{Name: name, Value: kmsg.StringPtr(v)} }

	// Written through agent 0: node 1's own config and two defaults.
	res, err := adm0.AlterBrokerConfigs(ctx, []kadm.AlterConfig{set("sasl.kerberos.min.time.before.relogin", "58000")}, id1)
	if err != nil || res[0].Err != nil {
		t.Fatalf("alter broker %d: %v %+v", id1, err, res)
	}
	res, err = adm0.AlterBrokerConfigs(ctx, []kadm.AlterConfig{set("log.cleaner.threads", "2"), set("num.io.threads", "16")})
	if err != nil || res[0].Err != nil {
		t.Fatalf("alter broker defaults: %v %+v", err, res)
	}
	res, err = adm0.AlterBrokerConfigs(ctx, []kadm.AlterConfig{set("num.io.threads", "8")}, id0)
	if err != nil || res[0].Err != nil {
		t.Fatalf("alter broker %d: %v %+v", id0, err, res)
	}

	// Read through agent 1.
	got, code, msg := describedBroker(t, cl1, id1, strconv.Itoa(int(id1)))
	if code != 0 {
		t.Fatalf("describe %d: %d %s", id1, code, msg)
	}
	wantConfig(t, "node 1", got, "sasl.kerberos.min.time.before.relogin", "58000", kmsg.ConfigSourceDynamicBrokerConfig)
	wantConfig(t, "node 1", got, "log.cleaner.threads", "2", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
	wantConfig(t, "node 1", got, "num.io.threads", "16", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
	if d := deref(got["sasl.kerberos.min.time.before.relogin"].Documentation); !strings.HasPrefix(d, "Accepted, no effect on shale") {
		t.Errorf("documentation of sasl.kerberos.min.time.before.relogin: %q", d)
	}
	if c := got["auto.create.topics.enable"]; c.Source != kmsg.ConfigSourceStaticBrokerConfig || !c.ReadOnly {
		t.Errorf("static auto.create.topics.enable: %+v", c)
	}
	got, _, _ = describedBroker(t, cl1, id1, strconv.Itoa(int(id0)))
	wantConfig(t, "node 0", got, "num.io.threads", "8", kmsg.ConfigSourceDynamicBrokerConfig)
	if _, ok := got["sasl.kerberos.min.time.before.relogin"]; ok {
		t.Errorf("node 0 shows node 1's sasl.kerberos.min.time.before.relogin")
	}
	got, _, _ = describedBroker(t, cl1, id1, "")
	wantConfig(t, "defaults", got, "num.io.threads", "16", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
	if len(got) != 2 {
		t.Errorf("defaults describe %d configs, want the 2 set: %v", len(got), got)
	}

	// AlterConfigs (non-incremental) replaces node 1's whole set.
	res, err = adm0.AlterBrokerConfigsState(ctx, []kadm.AlterConfig{set("num.io.threads", "4")}, id1)
	if err != nil || res[0].Err != nil {
		t.Fatalf("alter (state) broker %d: %v %+v", id1, err, res)
	}
	got, _, _ = describedBroker(t, cl1, id1, strconv.Itoa(int(id1)))
	wantConfig(t, "node 1 replaced", got, "num.io.threads", "4", kmsg.ConfigSourceDynamicBrokerConfig)
	if _, ok := got["sasl.kerberos.min.time.before.relogin"]; ok {
		t.Errorf("AlterConfigs kept sasl.kerberos.min.time.before.relogin it did not name")
	}
	// DELETE falls back to the default.
	res, err = adm0.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "num.io.threads"}}, id1)
	if err != nil || res[0].Err != nil {
		t.Fatalf("delete broker config: %v %+v", err, res)
	}
	got, _, _ = describedBroker(t, cl1, id1, strconv.Itoa(int(id1)))
	wantConfig(t, "node 1 deleted", got, "num.io.threads", "16", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
}

// TestDynamicBrokerConfigsRefused proves what is refused, and that a refused
// change stores nothing: values that are not of the config's Kafka type
// (INVALID_CONFIG), static configs and those shale takes elsewhere
// (INVALID_REQUEST naming them), per-broker configs set as defaults, and
// node IDs that are no live agent, through both alter APIs.
func TestDynamicBrokerConfigsRefused(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	id := c.Agents[0].Server.NodeID()
	node := strconv.Itoa(int(id))
	cl := c.Client(t, pinnedDialer(c.Agents[0].Addr))
	for _, tc := range []struct {
		resource    string
		configs     map[string]string
		wantCode    int16
		wantMessage string
	}{
		{node, map[string]string{"sasl.kerberos.min.time.before.relogin": "soon"}, kerr.InvalidConfig.Code, `"soon" for configuration sasl.kerberos.min.time.before.relogin: not a LONG`},
		{node, map[string]string{"num.io.threads": "3000000000"}, kerr.InvalidConfig.Code, "not a INT"},
		{node, map[string]string{"log.preallocate": "yes"}, kerr.InvalidConfig.Code, "not a BOOLEAN"},
		{"", map[string]string{"log.cleaner.io.buffer.load.factor": "0.9x"}, kerr.InvalidConfig.Code, "not a DOUBLE"},
		{node, map[string]string{"broker.id": "5", "num.partitions": "3", "num.io.threads": "2"}, kerr.InvalidRequest.Code, "Cannot update these configs dynamically: broker.id, num.partitions"},
		{node, map[string]string{"message.max.bytes": "100"}, kerr.InvalidRequest.Code, "message.max.bytes is the topic config max.message.bytes"},
		{"", map[string]string{"ssl.keystore.location": "/k.jks"}, kerr.InvalidRequest.Code, "ssl.keystore.location is the agent flags --tls-cert"},
		{"", map[string]string{"sasl.kerberos.min.time.before.relogin": "58000"}, kerr.InvalidRequest.Code, "broker id must be specified: sasl.kerberos.min.time.before.relogin"},
		{"999", map[string]string{"num.io.threads": "2"}, kerr.InvalidRequest.Code, "Unexpected broker id"},
		{"one", map[string]string{"num.io.threads": "2"}, kerr.InvalidRequest.Code, "Broker id must be an integer"},
	} {
		code, msg := alterBrokerRaw(t, cl, id, tc.resource, tc.configs)
		if code != tc.wantCode || !strings.Contains(msg, tc.wantMessage) {
			t.Errorf("incremental %q %v: %d %q, want %d with %q", tc.resource, tc.configs, code, msg, tc.wantCode, tc.wantMessage)
		}
		// The same through AlterConfigs.
		req := kmsg.NewPtrAlterConfigsRequest()
		rr := kmsg.NewAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, tc.resource
		for n, v := range tc.configs {
			c := kmsg.NewAlterConfigsRequestResourceConfig()
			c.Name, c.Value = n, kmsg.StringPtr(v)
			rr.Configs = append(rr.Configs, c)
		}
		req.Resources = append(req.Resources, rr)
		resp, err := req.RequestWith(ctx, cl.Broker(int(id)))
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.Resources[0]; r.ErrorCode != tc.wantCode || !strings.Contains(deref(r.ErrorMessage), tc.wantMessage) {
			t.Errorf("alter %q %v: %d %q, want %d with %q", tc.resource, tc.configs, r.ErrorCode, deref(r.ErrorMessage), tc.wantCode, tc.wantMessage)
		}
	}
	for _, r := range []string{node, ""} {
		got, code, msg := describedBroker(t, cl, id, r)
		for n, c := range got {
			if c.Source == kmsg.ConfigSourceDynamicBrokerConfig || c.Source == kmsg.ConfigSourceDynamicDefaultBrokerConfig {
				t.Errorf("refused changes stored %s = %q on %q", n, deref(c.Value), r)
			}
		}
		if code != 0 {
			t.Errorf("describe %q: %d %s", r, code, msg)
		}
	}
	if _, code, msg := describedBroker(t, cl, id, "999"); code != kerr.InvalidRequest.Code || !strings.Contains(msg, "Unexpected broker id") {
		t.Errorf("describe of broker 999: %d %q, want INVALID_REQUEST Unexpected broker id", code, msg)
	}
	// ValidateOnly checks and stores nothing.
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = true
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, node
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name, cfg.Value = "num.io.threads", kmsg.StringPtr("4")
	rr.Configs = append(rr.Configs, cfg)
	req.Resources = append(req.Resources, rr)
	if resp, err := req.RequestWith(ctx, cl.Broker(int(id))); err != nil || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("validate only: %v %+v", err, resp)
	}
	if got, _, _ := describedBroker(t, cl, id, node); got["num.io.threads"].Name != "" {
		t.Errorf("validate only stored num.io.threads")
	}
}

// TestBrokerConfigsNeedClusterACL proves altering a BROKER resource needs
// ALTER_CONFIGS on the cluster and describing it DESCRIBE_CONFIGS on the
// cluster, as Kafka: the topic permissions that let a user alter topic
// configs do not reach broker configs.
func TestBrokerConfigsNeedClusterACL(t *testing.T) {
	e := startSecure(t, 1)
	adm := e.admin(t, 0)
	id := e.c.Agents[0].Server.NodeID()
	e.putUser(t, "cfg", "cfg-pw")
	mustACL(t, adm, kadm.NewACLs().Allow("User:cfg").Operations(kadm.OpAlterConfigs, kadm.OpDescribeConfigs).Topics("*"))
	e.syncACLs(t)
	cl := e.client(t, 0, scram256("cfg", "cfg-pw"))
	if code, msg := alterBrokerRaw(t, cl, id, strconv.Itoa(int(id)), map[string]string{"num.io.threads": "4"}); code != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("alter broker config with topic ACLs only: %d %q, want CLUSTER_AUTHORIZATION_FAILED", code, msg)
	}
	if _, code, _ := describedBroker(t, cl, id, strconv.Itoa(int(id))); code != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("describe broker config with topic ACLs only: %d, want CLUSTER_AUTHORIZATION_FAILED", code)
	}
	mustACL(t, adm, kadm.NewACLs().Allow("User:cfg").Operations(kadm.OpAlterConfigs, kadm.OpDescribeConfigs).Clusters())
	e.syncACLs(t)
	if code, msg := alterBrokerRaw(t, cl, id, strconv.Itoa(int(id)), map[string]string{"num.io.threads": "4"}); code != 0 {
		t.Fatalf("alter broker config with cluster ALTER_CONFIGS: %d %q", code, msg)
	}
	got, code, msg := describedBroker(t, cl, id, strconv.Itoa(int(id)))
	if code != 0 {
		t.Fatalf("describe with cluster DESCRIBE_CONFIGS: %d %q", code, msg)
	}
	wantConfig(t, "granted", got, "num.io.threads", "4", kmsg.ConfigSourceDynamicBrokerConfig)
}
