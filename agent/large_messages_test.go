package agent_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
)

// TestMaxMessageBytesFollowsAlterConfigs proves a topic's max.message.bytes
// is what Produce enforces, above and below the broker default (1048588),
// as changed by AlterConfigs and IncrementalAlterConfigs: a 2 MiB batch is
// refused with MESSAGE_TOO_LARGE at the default, accepted once AlterConfigs
// sets 4 MiB, and refused again once IncrementalAlterConfigs lowers it to
// 1 MiB.
func TestMaxMessageBytesFollowsAlterConfigs(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 1})
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	const topic = "limits"
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	p := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(8<<20), kgo.RecordRetries(1))
	value := make([]byte, 2<<20)
	_, _ = rand.Read(value)
	produce := func() error { return p.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr() }
	setMax := func(v int) {
		t.Helper()
		s := strconv.Itoa(v)
		rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &s}}, topic)
		if err == nil {
			_, err = rs.On(topic, nil)
		}
		if err != nil {
			t.Fatalf("set max.message.bytes=%d: %v", v, err)
		}
	}
	if err := produce(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("2 MiB at the default max.message.bytes: %v, want MESSAGE_TOO_LARGE", err)
	}
	// Raised with the legacy AlterConfigs (it replaces the topic's set).
	legacy := kmsg.NewPtrAlterConfigsRequest()
	res := kmsg.NewAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	cfg := kmsg.NewAlterConfigsRequestResourceConfig()
	cfg.Name, cfg.Value = "max.message.bytes", kmsg.StringPtr(strconv.Itoa(4<<20))
	res.Configs = append(res.Configs, cfg)
	legacy.Resources = append(legacy.Resources, res)
	lresp, err := legacy.RequestWith(ctx, c.Client(t))
	if err != nil || len(lresp.Resources) != 1 || lresp.Resources[0].ErrorCode != 0 {
		t.Fatalf("AlterConfigs max.message.bytes=4MiB: %+v %v", lresp, err)
	}
	if err := produce(); err != nil {
		t.Fatalf("2 MiB with max.message.bytes=4MiB: %v", err)
	}
	setMax(1 << 20)
	if err := produce(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("2 MiB after lowering max.message.bytes to 1MiB: %v, want MESSAGE_TOO_LARGE", err)
	}
}

// TestFetchReturnsLargeFirstBatchWhole proves a consumer whose fetch
// limits (1 MiB) are below a batch (5 MiB, on a topic that allows 16 MiB)
// still gets it whole through another agent, as Kafka returns the first
// batch whatever the limits; and that a 5 MiB record is refused at the
// broker default max.message.bytes.
func TestFetchReturnsLargeFirstBatchWhole(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	const topic = "large"
	maxMsg := strconv.Itoa(16 << 20)
	adm := c.Admin(t)
	if _, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"max.message.bytes": &maxMsg}, topic); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, "default-limit"); err != nil {
		t.Fatal(err)
	}
	p := c.Client(t, pinnedDialer(c.Agents[0].Addr), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(16<<20))
	big := make([]byte, 5<<20)
	_, _ = rand.Read(big)
	if err := p.ProduceSync(ctx, &kgo.Record{Value: big}, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "default-limit", Value: big}).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("5 MiB to a topic at the default max.message.bytes: %v, want MESSAGE_TOO_LARGE", err)
	}

	cons := c.Client(t, pinnedDialer(c.Agents[1].Addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(1<<20), kgo.FetchMaxPartitionBytes(1<<20), kgo.BrokerMaxReadBytes(32<<20))
	var got [][]byte
	for len(got) < 2 && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch: %v", fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r.Value) })
	}
	if len(got) != 2 || !bytes.Equal(got[0], big) || string(got[1]) != "after" {
		t.Fatalf("consumed %d records, want the 5 MiB one then \"after\"", len(got))
	}
}
