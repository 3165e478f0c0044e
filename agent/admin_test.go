package agent_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
)

func configValue(t *testing.T, rcs kadm.ResourceConfigs, name string) (string, kmsg.ConfigSource) {
	t.Helper()
	if len(rcs) != 1 || rcs[0].Err != nil {
		t.Fatalf("describe configs: %+v", rcs)
	}
	for _, c := range rcs[0].Configs {
		if c.Key == name {
			if c.Value == nil {
				return "<nil>", c.Source
			}
			return *c.Value, c.Source
		}
	}
	t.Fatalf("config %q not described", name)
	return "", 0
}

// TestCreateTopicsValidation proves CreateTopics creates valid topics with
// their configs and answers each invalid request with Kafka's error code.
func TestCreateTopicsValidation(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	s := func(v string) *string { return &v }

	resp, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"retention.ms": s("1000"), "cleanup.policy": s("delete")}, "adm-ok")
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	if resp.NumPartitions != 3 || resp.ID == (kadm.TopicID{}) || resp.Configs["retention.ms"].Value == nil || *resp.Configs["retention.ms"].Value != "1000" {
		t.Fatalf("create response %+v", resp)
	}

	tests := []struct {
		name       string
		topic      string
		partitions int32
		rf         int16
		configs    map[string]*string
		wantErr    error
	}{
		{"exists", "adm-ok", 1, 1, nil, kerr.TopicAlreadyExists},
		{"compact", "adm-compact", 1, 1, map[string]*string{"cleanup.policy": s("compact")}, nil},
		{"unknown policy", "adm-shred", 1, 1, map[string]*string{"cleanup.policy": s("shred")}, kerr.InvalidConfig},
		{"unknown config", "adm-unknown", 1, 1, map[string]*string{"no.such.config": s("1")}, kerr.InvalidConfig},
		{"bad value", "adm-badvalue", 1, 1, map[string]*string{"retention.ms": s("soon")}, kerr.InvalidConfig},
		{"null value", "adm-null", 1, 1, map[string]*string{"retention.ms": nil}, kerr.InvalidConfig},
		{"log append time", "adm-lat", 1, 1, map[string]*string{"message.timestamp.type": s("LogAppendTime")}, kerr.InvalidConfig},
		{"flush class too long", "adm-flush-long", 1, 1, map[string]*string{"shale.flush.ms": s("60001")}, kerr.InvalidConfig},
		{"flush class negative", "adm-flush-neg", 1, 1, map[string]*string{"shale.flush.ms": s("-5")}, kerr.InvalidConfig},
		{"flush class", "adm-flush", 1, 1, map[string]*string{"shale.flush.ms": s("20")}, nil},
		{"zero partitions", "adm-zero", 0, 1, nil, kerr.InvalidPartitions},
		{"zero replication", "adm-rf0", 1, 0, nil, kerr.InvalidReplicationFactor},
		{"bad name", "adm/bad", 1, 1, nil, kerr.InvalidTopicException},
		{"default partitions", "adm-default", -1, -1, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := adm.CreateTopic(ctx, tc.partitions, tc.rf, tc.configs, tc.topic)
			if err != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("create: %v", err)
			}
			if !errors.Is(resp.Err, tc.wantErr) {
				t.Fatalf("create %s: err %v (%s), want %v", tc.topic, resp.Err, resp.ErrMessage, tc.wantErr)
			}
		})
	}

	vr, err := adm.ValidateCreateTopics(ctx, 2, 1, nil, "adm-validate")
	if err != nil || vr.Error() != nil {
		t.Fatalf("validate only: %v %v", err, vr.Error())
	}
	md, err := adm.Metadata(ctx, "adm-validate", "adm-default")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(md.Topics["adm-validate"].Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("validate-only created the topic: %+v", md.Topics["adm-validate"])
	}
	if n := len(md.Topics["adm-default"].Partitions); n != 1 {
		t.Errorf("topic created with -1 partitions has %d, want the default 1", n)
	}
}

// TestTopicAdministration proves metadata, configs, partitions, offsets,
// cluster description and deletion work through kadm, and that a change
// made through one agent is seen through another.
func TestTopicAdministration(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	a := kadm.NewClient(c.Client(t, pinnedDialer(c.Agents[0].Addr)))
	b := kadm.NewClient(c.Client(t, pinnedDialer(c.Agents[1].Addr)))
	const topic = "adm"
	s := func(v string) *string { return &v }
	created, err := a.CreateTopic(ctx, 2, -1, map[string]*string{"retention.ms": s("1000")}, topic)
	if err != nil {
		t.Fatal(err)
	}

	// Metadata: both agents, the topic with its ID, leaders among agents.
	md, err := b.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 2 {
		t.Fatalf("brokers %+v, want 2", md.Brokers)
	}
	td := md.Topics[topic]
	if td.Err != nil || td.ID != created.ID || len(td.Partitions) != 2 {
		t.Fatalf("topic detail %+v", td)
	}
	nodes := map[int32]bool{}
	for _, br := range md.Brokers {
		nodes[br.NodeID] = true
	}
	for _, p := range td.Partitions {
		if !nodes[p.Leader] || len(p.Replicas) != 1 || p.Replicas[0] != p.Leader {
			t.Errorf("partition %d: leader %d replicas %v", p.Partition, p.Leader, p.Replicas)
		}
	}

	// DescribeConfigs through the other agent.
	rcs, err := b.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if v, src := configValue(t, rcs, "retention.ms"); v != "1000" || src != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("retention.ms = %s (source %v), want 1000 from the topic", v, src)
	}
	if v, src := configValue(t, rcs, "cleanup.policy"); v != "delete" || src != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("cleanup.policy = %s (source %v), want the default delete", v, src)
	}

	// IncrementalAlterConfigs: set, delete, and a refused append.
	ar, err := a.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.bytes", Value: s("4096")}, {Op: kadm.DeleteConfig, Name: "retention.ms"}}, topic)
	if err != nil || ar[0].Err != nil {
		t.Fatalf("incremental alter: %v %+v", err, ar)
	}
	ar, err = a.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: s("shred")}}, topic)
	if err != nil || !errors.Is(ar[0].Err, kerr.InvalidConfig) {
		t.Fatalf("append shred: %v %+v, want INVALID_CONFIG", err, ar)
	}
	rcs, _ = b.DescribeTopicConfigs(ctx, topic)
	if v, _ := configValue(t, rcs, "retention.bytes"); v != "4096" {
		t.Errorf("retention.bytes = %s after incremental set, want 4096", v)
	}
	if v, src := configValue(t, rcs, "retention.ms"); v != "-1" || src != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("retention.ms = %s (%v) after delete, want the default", v, src)
	}

	// AlterConfigs (whole set): unnamed configs go back to defaults.
	ar, err = a.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: s("2048")}}, topic)
	if err != nil || ar[0].Err != nil {
		t.Fatalf("alter configs: %v %+v", err, ar)
	}
	rcs, _ = b.DescribeTopicConfigs(ctx, topic)
	if v, _ := configValue(t, rcs, "max.message.bytes"); v != "2048" {
		t.Errorf("max.message.bytes = %s, want 2048", v)
	}
	if _, src := configValue(t, rcs, "retention.bytes"); src != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("retention.bytes not reset by a non-incremental alter (source %v)", src)
	}

	// CreatePartitions: grow, refuse shrinking; the other agent produces to
	// the new partition at once.
	cr, err := a.CreatePartitions(ctx, 2, topic)
	if err != nil || cr[topic].Err != nil {
		t.Fatalf("create partitions: %v %+v", err, cr)
	}
	cr, err = a.UpdatePartitions(ctx, 3, topic)
	if err != nil || !errors.Is(cr[topic].Err, kerr.InvalidPartitions) {
		t.Fatalf("shrink partitions: %v %+v, want INVALID_PARTITIONS", err, cr)
	}
	prod := c.Client(t, pinnedDialer(c.Agents[1].Addr), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DefaultProduceTopic(topic))
	for i, ts := range []int64{1000, 3000, 2000} {
		r := &kgo.Record{Partition: 3, Value: []byte{byte(i)}, Timestamp: time.UnixMilli(ts)}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce to new partition 3: %v", err)
		}
	}

	// ListOffsets: earliest, latest, by timestamp, max timestamp.
	check := func(name string, lo kadm.ListedOffsets, err error, wantOffset, wantTS int64) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		o, ok := lo.Lookup(topic, 3)
		if !ok || o.Err != nil || o.Offset != wantOffset || (wantTS != 0 && o.Timestamp != wantTS) {
			t.Errorf("%s: %+v, want offset %d timestamp %d", name, o, wantOffset, wantTS)
		}
	}
	lo, err := a.ListStartOffsets(ctx, topic)
	check("earliest", lo, err, 0, 0)
	lo, err = a.ListEndOffsets(ctx, topic)
	check("latest", lo, err, 3, 0)
	lo, err = a.ListOffsetsAfterMilli(ctx, 1500, topic)
	check("after 1500", lo, err, 1, 3000)
	lo, err = a.ListOffsetsAfterMilli(ctx, 2500, topic)
	check("after 2500", lo, err, 1, 3000)
	lo, err = a.ListMaxTimestampOffsets(ctx, topic)
	check("max timestamp", lo, err, 1, 3000)
	lo, err = a.ListOffsetsAfterMilli(ctx, 10000, topic)
	check("after the last record", lo, err, 3, -1) // kadm turns Kafka's -1 into the end offset

	// DescribeCluster.
	dc := kmsg.NewPtrDescribeClusterRequest()
	dcr, err := dc.RequestWith(ctx, c.Client(t))
	if err != nil || dcr.ErrorCode != 0 {
		t.Fatalf("describe cluster: %v %+v", err, dcr)
	}
	minNode := int32(1 << 30)
	for _, br := range dcr.Brokers {
		minNode = min(minNode, br.NodeID)
	}
	if len(dcr.Brokers) != 2 || dcr.ClusterID == "" || dcr.ControllerID != minNode {
		t.Errorf("describe cluster: %+v", dcr)
	}

	// DeleteTopics: gone everywhere; a re-created topic starts empty.
	dr, err := a.DeleteTopics(ctx, topic)
	if err != nil || dr[topic].Err != nil {
		t.Fatalf("delete: %v %+v", err, dr)
	}
	dr, err = a.DeleteTopics(ctx, topic)
	if err != nil || !errors.Is(dr[topic].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete again: %v %+v, want UNKNOWN_TOPIC_OR_PARTITION", err, dr)
	}
	// A fresh client: kgo answers Metadata from its own cache for a while.
	md, err = kadm.NewClient(c.Client(t, pinnedDialer(c.Agents[1].Addr))).Metadata(ctx, topic)
	if err != nil || !errors.Is(md.Topics[topic].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("metadata after delete: %v %+v", err, md.Topics[topic])
	}
	recreated, err := a.CreateTopic(ctx, 4, -1, nil, topic)
	if err != nil || recreated.ID == created.ID {
		t.Fatalf("re-create: %v, id %v (old %v)", err, recreated.ID, created.ID)
	}
	lo, err = kadm.NewClient(c.Client(t, pinnedDialer(c.Agents[1].Addr))).ListEndOffsets(ctx, topic)
	check("latest after re-create", lo, err, 0, 0)
}

// TestDescribeBrokerConfigs proves broker configs are described read-only and
// refused for alteration.
func TestDescribeBrokerConfigs(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	rcs, err := adm.DescribeBrokerConfigs(ctx, c.Agents[0].Server.NodeID())
	if err != nil {
		t.Fatal(err)
	}
	if v, src := configValue(t, rcs, "auto.create.topics.enable"); v != "true" || src != kmsg.ConfigSourceStaticBrokerConfig {
		t.Errorf("auto.create.topics.enable = %s (%v)", v, src)
	}
	v := "1"
	ar, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "num.partitions", Value: &v}}, c.Agents[0].Server.NodeID())
	if err != nil || len(ar) != 1 || !errors.Is(ar[0].Err, kerr.InvalidRequest) {
		t.Fatalf("alter broker configs: %v %+v, want INVALID_REQUEST", err, ar)
	}
}
