package agent_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
)

// TestConsumerOffsetsIsInternal proves __consumer_offsets is listed as
// Kafka lists it, the same on every agent: in Metadata for all topics and by
// name and by ID with IsInternal and 50 partitions, by kadm as internal,
// and described by DescribeConfigs with Kafka's cleanup.policy=compact.
func TestConsumerOffsetsIsInternal(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	var ids [2][16]byte
	for i := range 2 {
		adm := kadm.NewClient(c.Client(t, pinnedDialer(c.Agents[i].Addr)))
		all, err := adm.ListTopicsWithInternal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		d, ok := all["__consumer_offsets"]
		if !ok || d.Err != nil || !d.IsInternal || len(d.Partitions) != 50 {
			t.Fatalf("agent %d: __consumer_offsets in all topics: %+v (listed %v), want internal with 50 partitions", i, d, ok)
		}
		ids[i] = d.ID
		if plain, _ := adm.ListTopics(ctx); plain.Has("__consumer_offsets") {
			t.Fatalf("agent %d: kadm ListTopics (internal excluded) lists __consumer_offsets", i)
		}
		named, err := adm.ListTopicsWithInternal(ctx, "__consumer_offsets")
		if d := named["__consumer_offsets"]; err != nil || d.Err != nil || !d.IsInternal || d.ID != ids[i] {
			t.Fatalf("agent %d: __consumer_offsets by name: %+v %v", i, d, err)
		}
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.TopicID = ids[i]
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, c.Client(t, pinnedDialer(c.Agents[i].Addr)))
		if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || !resp.Topics[0].IsInternal ||
			resp.Topics[0].Topic == nil || *resp.Topics[0].Topic != "__consumer_offsets" {
			t.Fatalf("agent %d: __consumer_offsets by ID: %+v %v", i, resp, err)
		}
	}
	cfgs, err := kadm.NewClient(c.Client(t)).DescribeTopicConfigs(ctx, "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On("__consumer_offsets", nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe configs of __consumer_offsets: %v %v", err, rc.Err)
	}
	policy := ""
	for _, cfg := range rc.Configs {
		if cfg.Key == "cleanup.policy" {
			policy = cfg.MaybeValue()
		}
	}
	if policy != "compact" {
		t.Fatalf("__consumer_offsets cleanup.policy %q, want compact as Kafka sets it", policy)
	}
	if ids[0] != ids[1] || ids[0] == [16]byte{} {
		t.Fatalf("topic IDs differ between agents or are zero: %x %x", ids[0], ids[1])
	}
}

// TestConsumerOffsetsRefusesData proves the decisions of internal_topics.go:
// Produce to __consumer_offsets is INVALID_TOPIC_EXCEPTION as in Kafka,
// fetching or listing its offsets is refused with the same code (shale does
// not serve committed offsets as records), it cannot be created, deleted or
// grown, and auto-creation never makes it a plain topic.
func TestConsumerOffsetsRefusesData(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 1}) // auto-creation on
	ctx := testCtx(t, time.Minute)
	const topic = "__consumer_offsets"

	p := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.RecordRetries(1))
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("produce to %s: %v, want INVALID_TOPIC_EXCEPTION", topic, err)
	}

	// A consumer at an exact offset fetches at once, by topic ID (Fetch
	// v13+), as kgo does.
	cons := c.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}))
	var fetchErr error
	for fetchErr == nil && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		for _, fe := range cons.PollFetches(pctx).Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				fetchErr = fe.Err
			}
		}
		cancel()
	}
	if !errors.Is(fetchErr, kerr.InvalidTopicException) {
		t.Fatalf("consume %s: %v, want INVALID_TOPIC_EXCEPTION", topic, fetchErr)
	}

	// And by name (Fetch v12).
	old := c.Client(t, kgo.MaxVersions(kversion.V2_8_0()))
	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxBytes = 1 << 20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	fresp, err := fetch.RequestWith(ctx, old)
	if err != nil || len(fresp.Topics) != 1 || len(fresp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch %s v%d: %+v %v", topic, fetch.Version, fresp, err)
	}
	if code := fresp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Fatalf("fetch %s v%d: %v, want INVALID_TOPIC_EXCEPTION", topic, fetch.Version, kerr.ErrorForCode(code))
	}

	cl := c.Client(t)
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := ends.Lookup(topic, 0); !ok || !errors.Is(o.Err, kerr.InvalidTopicException) {
		t.Fatalf("list end offsets of %s: %+v, want INVALID_TOPIC_EXCEPTION", topic, o)
	}

	cr, err := adm.CreateTopic(ctx, 1, -1, nil, topic)
	if !errors.Is(err, kerr.TopicAlreadyExists) && !errors.Is(cr.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("create %s: %+v %v, want TOPIC_ALREADY_EXISTS", topic, cr, err)
	}
	dr, err := adm.DeleteTopics(ctx, topic)
	if d := dr[topic]; err != nil || !errors.Is(d.Err, kerr.InvalidTopicException) {
		t.Fatalf("delete %s: %+v %v, want INVALID_TOPIC_EXCEPTION", topic, d, err)
	}
	gr, err := adm.CreatePartitions(ctx, 10, topic)
	if g := gr[topic]; err != nil || !errors.Is(g.Err, kerr.InvalidTopicException) {
		t.Fatalf("create partitions of %s: %+v %v, want INVALID_TOPIC_EXCEPTION", topic, g, err)
	}
	// Still internal, still 50 partitions: nothing above created or changed it.
	all, err := adm.ListTopicsWithInternal(ctx)
	if d := all[topic]; err != nil || !d.IsInternal || len(d.Partitions) != 50 || len(all) != len(agent.InternalTopicNames()) {
		t.Fatalf("after the refusals: %+v %v, want only the internal topics", all, err)
	}
}

// TestRegexConsumerSkipsConsumerOffsets proves what franz-go's
// TestConsumeRegex needs: a regex subscription matching __consumer_offsets
// skips it as internal and consumes the plain topics it matches.
func TestRegexConsumerSkipsConsumerOffsets(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 1})
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, "rx-a"); err != nil {
		t.Fatal(err)
	}
	logs := &skippedLogger{}
	cl := c.Client(t, kgo.ConsumeTopics("rx-.*", regexp.QuoteMeta("__consumer_offsets")), kgo.ConsumeRegex(),
		kgo.MetadataMinAge(50*time.Millisecond), kgo.WithLogger(logs))
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		cl.PollFetches(pctx)
		cancel()
		got := cl.GetConsumeTopics()
		if len(got) == 1 && got[0] == "rx-a" && logs.skipped("__consumer_offsets") {
			break
		}
		for _, g := range got {
			if g == "__consumer_offsets" {
				t.Fatalf("regex consumer subscribed to __consumer_offsets: %v", got)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("regex consumer topics %v, want [rx-a] and __consumer_offsets skipped as internal (skipped: %v)", got, logs.all())
		}
	}
}

// skippedLogger records the topics kgo's regex evaluation skipped as
// internal (its "skipped_internal" log field).
type skippedLogger struct {
	mu   sync.Mutex
	seen []string
}

func (*skippedLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (l *skippedLogger) Log(_ kgo.LogLevel, _ string, keyvals ...any) {
	for i := 0; i+1 < len(keyvals); i += 2 {
		if keyvals[i] == "skipped_internal" {
			if names, ok := keyvals[i+1].([]string); ok {
				l.mu.Lock()
				l.seen = append(l.seen, names...)
				l.mu.Unlock()
			}
		}
	}
}

func (l *skippedLogger) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

func (l *skippedLogger) skipped(name string) bool { return slices.Contains(l.all(), name) }
