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

// TestMetadataWhileTopicIsBeingCreated proves what Metadata shows of a
// topic while CreateTopics is still running through another agent: every
// answer of a loop of Metadata requests (v1, v9, v12, by name and for all
// topics) shows each topic with all its partitions or not at all
// (UNKNOWN_TOPIC_OR_PARTITION, no partitions), never a part of them or 0,
// as Kafka shows it; and once CreateTopics has answered, with all of them.
// 16 topics of 1 to 2,000 partitions, created one after the other.
func TestMetadataWhileTopicIsBeingCreated(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2, Agent: func(_ int, cfg *agent.Config) { cfg.AutoCreateTopics = false }})
	ctx := testCtx(t, time.Minute)
	var names []string
	sizes := map[string]int{}
	for i := range 16 {
		name := fmt.Sprintf("growing-%02d", i)
		names = append(names, name)
		sizes[name] = 1 + i*133 // 1 .. 1,996
	}
	sizes[names[len(names)-1]] = 2000
	done := make(chan error, 1)
	go func() {
		creator := kafkaGoClient(c.Agents[0].Addr)
		for _, name := range names {
			cr, err := creator.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: name, NumPartitions: sizes[name], ReplicationFactor: 1}}})
			if err == nil {
				err = cr.Errors[name]
			}
			if err != nil {
				done <- fmt.Errorf("create %s: %w", name, err)
				return
			}
		}
		done <- nil
	}()
	rc := dialRaw(t, c.Agents[1].Addr)
	// check asks for the topics (nil: all topics) and returns how many of
	// them are shown, failing on any shown otherwise than whole.
	check := func(v int16, all bool) (shown int) {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		req.Version = v
		if !all {
			for _, name := range names {
				rt := kmsg.NewMetadataRequestTopic()
				rt.Topic = kmsg.StringPtr(name)
				req.Topics = append(req.Topics, rt)
			}
		}
		resp := rc.roundTrip(req).(*kmsg.MetadataResponse)
		for _, mt := range resp.Topics {
			want, ours := sizes[*mt.Topic]
			switch {
			case !ours:
			case mt.ErrorCode == kerr.UnknownTopicOrPartition.Code && len(mt.Partitions) == 0 && !all:
			case mt.ErrorCode == 0 && len(mt.Partitions) == want:
				shown++
			default:
				t.Fatalf("v%d (all topics %v): %s shown with %v and %d partitions, want %d or not at all", v, all, *mt.Topic, kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions), want)
			}
		}
		return shown
	}
	versions := []int16{1, 9, 12}
	polls, midway := 0, 0
	for created := false; !created; polls++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			created = true
		default:
		}
		if n := check(versions[polls%3], polls%2 == 1); n > 0 && n < len(names) {
			midway++ // some topics created, others not yet
		}
	}
	for _, v := range versions {
		for _, all := range []bool{false, true} {
			if n := check(v, all); n != len(names) {
				t.Fatalf("v%d (all topics %v) after CreateTopics answered: %d of %d topics shown", v, all, n, len(names))
			}
		}
	}
	t.Logf("%d Metadata answers while %d topics were created, %d of them with some created and others not yet", polls, len(names), midway)
}
