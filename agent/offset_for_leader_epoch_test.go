package agent_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
)

// TestOffsetForLeaderEpochAnswersAsKafka proves OffsetForLeaderEpoch gives
// Kafka's answers for a partition whose only epoch is 0: epoch 0 ends at
// the high watermark; an undefined or a future epoch is (-1, -1) without
// error; a CurrentLeaderEpoch newer than 0 is UNKNOWN_LEADER_EPOCH; an
// unknown partition is UNKNOWN_TOPIC_OR_PARTITION.
func TestOffsetForLeaderEpochAnswersAsKafka(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	cl := c.Client(t, kgo.DefaultProduceTopic("ofle"))
	if _, err := c.Admin(t).CreateTopic(ctx, 1, 1, nil, "ofle"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name                   string
		partition, epoch, curr int32
		wantEpoch              int32
		wantEnd                int64
		wantErr                *kerr.Error
	}{
		{"current epoch", 0, 0, -1, 0, 3, nil},
		{"current epoch, current leader epoch 0", 0, 0, 0, 0, 3, nil},
		{"undefined epoch", 0, -1, -1, -1, -1, nil},
		{"future epoch", 0, 5, -1, -1, -1, nil},
		{"newer current leader epoch", 0, 0, 1, -1, -1, kerr.UnknownLeaderEpoch},
		{"unknown partition", 7, 0, -1, -1, -1, kerr.UnknownTopicOrPartition},
	} {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.ReplicaID = -1
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = "ofle"
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.LeaderEpoch, rp.CurrentLeaderEpoch = tc.partition, tc.epoch, tc.curr
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		// Straight to the agent: kgo would answer an unknown partition itself.
		kresp, err := cl.SeedBrokers()[0].Request(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("%s: answer %+v", tc.name, resp)
		}
		p := resp.Topics[0].Partitions[0]
		var wantCode int16
		if tc.wantErr != nil {
			wantCode = tc.wantErr.Code
		}
		if p.ErrorCode != wantCode || p.LeaderEpoch != tc.wantEpoch || p.EndOffset != tc.wantEnd {
			t.Errorf("%s: error %d epoch %d end %d; want error %d epoch %d end %d",
				tc.name, p.ErrorCode, p.LeaderEpoch, p.EndOffset, wantCode, tc.wantEpoch, tc.wantEnd)
		}
	}
}
