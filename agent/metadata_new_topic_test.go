package agent_test

import (
	"fmt"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
)

// TestMetadataOfJustCreatedTopic proves that a topic created with kafka-go's
// Client.CreateTopics through one agent is shown, right after the answer,
// with all its partitions (never with 0): by kafka-go's Client.Metadata on
// the creating client and by raw Metadata requests (v1, v9, v12) through
// another agent; and that a topic not created is shown with
// UNKNOWN_TOPIC_OR_PARTITION and no partitions, as Kafka shows it.
func TestMetadataOfJustCreatedTopic(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2, Agent: func(_ int, cfg *agent.Config) { cfg.AutoCreateTopics = false }})
	ctx := testCtx(t, time.Minute)
	creator := kafkaGoClient(c.Agents[0].Addr)
	rc := dialRaw(t, c.Agents[1].Addr)
	for i := range 6 {
		topic := fmt.Sprintf("fresh-%d", i)
		parts := i%3 + 1
		cr, err := creator.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: topic, NumPartitions: parts, ReplicationFactor: 1}}})
		if err != nil || cr.Errors[topic] != nil {
			t.Fatalf("create %s: %v %v", topic, err, cr.Errors)
		}
		md, err := creator.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
		if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != parts {
			t.Fatalf("kafka-go metadata of %s just created: %v %+v, want %d partitions", topic, err, md, parts)
		}
		for _, v := range []int16{1, 9, 12} {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = v
			for _, name := range []string{topic, "never-" + topic} {
				rt := kmsg.NewMetadataRequestTopic()
				rt.Topic = kmsg.StringPtr(name)
				req.Topics = append(req.Topics, rt)
			}
			resp := rc.roundTrip(req).(*kmsg.MetadataResponse)
			if len(resp.Topics) != 2 {
				t.Fatalf("v%d: %d topics answered", v, len(resp.Topics))
			}
			got, never := resp.Topics[0], resp.Topics[1]
			if got.ErrorCode != 0 || len(got.Partitions) != parts {
				t.Fatalf("v%d: %s just created: %v, %d partitions, want %d", v, topic, kerr.ErrorForCode(got.ErrorCode), len(got.Partitions), parts)
			}
			if never.ErrorCode != kerr.UnknownTopicOrPartition.Code || len(never.Partitions) != 0 {
				t.Fatalf("v%d: topic never created: %v with %d partitions", v, kerr.ErrorForCode(never.ErrorCode), len(never.Partitions))
			}
		}
	}
}
