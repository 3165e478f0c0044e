package agent_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
)

// TestOffsetCommitAfterTopicRecreate proves an OffsetCommit is judged per
// partition against the topic as it is now, as Kafka does: after a topic
// of 10 partitions is deleted and re-created with 3, a commit of all 10
// stores partitions 0-2 and answers UNKNOWN_TOPIC_OR_PARTITION for 3-9
// (librdkafka's 0107_topic_recreate commits its old assignment so).
func TestOffsetCommitAfterTopicRecreate(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 1})
	ctx := testCtx(t, 60*time.Second)
	adm := c.Admin(t)
	const topic, group = "recreate-t", "recreate-g"
	br := c.Client(t).SeedBrokers()[0]
	commit := func() []int16 {
		t.Helper()
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version = 7
		req.Group, req.Generation = group, -1
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		for p := int32(0); p < 10; p++ {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = p, 1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := br.Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var codes []int16
		for _, p := range resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions {
			codes = append(codes, p.ErrorCode)
		}
		return codes
	}
	if _, err := adm.CreateTopic(ctx, 10, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	for p, code := range commit() {
		if code != 0 {
			t.Fatalf("before delete: partition %d: %v", p, kerr.ErrorForCode(code))
		}
	}
	if _, err := adm.DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	for p, code := range commit() {
		if code != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("deleted: partition %d: %v, want UNKNOWN_TOPIC_OR_PARTITION", p, kerr.ErrorForCode(code))
		}
	}
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	for p, code := range commit() {
		want := int16(0)
		if p >= 3 {
			want = kerr.UnknownTopicOrPartition.Code
		}
		if code != want {
			t.Errorf("re-created with 3: partition %d: %v, want %v", p, kerr.ErrorForCode(code), kerr.ErrorForCode(want))
		}
	}
}
