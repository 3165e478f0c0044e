package agent_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// TestCompactionConfigs proves, with kadm: an unknown cleanup.policy item,
// an empty list and a min.cleanable.dirty.ratio outside [0, 1] are
// INVALID_CONFIG naming the problem; a topic created as Kafka Connect
// creates its offsets topic (cleanup.policy=compact and the compaction
// configs) is described with the values set (DYNAMIC_TOPIC_CONFIG) through
// another agent, a topic setting none with Kafka's defaults
// (DEFAULT_CONFIG); and cleanup.policy switches delete -> compact ->
// compact,delete through IncrementalAlterConfigs and AlterConfigs.
func TestCompactionConfigs(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	a := c.Admin(t, pinnedDialer(c.Agents[0].Addr))
	b := c.Admin(t, pinnedDialer(c.Agents[1].Addr))
	s := func(v string) *string { return &v }

	for _, tc := range []struct {
		name, value, msg string
	}{
		{"cleanup.policy", "shred", `unknown policy "shred"`},
		{"cleanup.policy", "", `must list "delete", "compact" or both`},
		{"min.cleanable.dirty.ratio", "1.5", "[0, 1]"},
		{"min.cleanable.dirty.ratio", "-0.1", "[0, 1]"},
		{"delete.retention.ms", "-1", ">= 0"},
		{"max.compaction.lag.ms", "5", "below min.compaction.lag.ms"}, // with min.compaction.lag.ms=10
	} {
		resps, err := a.CreateTopics(ctx, 1, 1, map[string]*string{tc.name: s(tc.value), "min.compaction.lag.ms": s("10")}, "cc-refused")
		if err != nil {
			t.Fatal(err)
		}
		resp := resps["cc-refused"]
		if !errors.Is(resp.Err, kerr.InvalidConfig) || !strings.Contains(resp.ErrMessage, tc.msg) {
			t.Errorf("create with %s=%q: %v %q, want INVALID_CONFIG mentioning %q", tc.name, tc.value, resp.Err, resp.ErrMessage, tc.msg)
		}
	}

	// The configs Kafka Connect sets on its internal topics.
	const topic = "connect-offsets"
	set := map[string]string{
		"cleanup.policy":            "compact",
		"min.compaction.lag.ms":     "1000",
		"max.compaction.lag.ms":     "604800000",
		"delete.retention.ms":       "3600000",
		"min.cleanable.dirty.ratio": "0.1",
		"segment.ms":                "3600000",
		"segment.bytes":             "104857600",
		"min.insync.replicas":       "2",
	}
	cfg := map[string]*string{}
	for k, v := range set {
		cfg[k] = s(v)
	}
	if resp, err := a.CreateTopic(ctx, 1, 1, cfg, topic); err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v %q", topic, err, resp.Err, resp.ErrMessage)
	}
	rcs, err := b.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range set {
		if v, src := configValue(t, rcs, k); v != want || src != kmsg.ConfigSourceDynamicTopicConfig {
			t.Errorf("%s = %s (source %v), want %s from the topic", k, v, src, want)
		}
	}

	// Defaults, on a topic setting none of them.
	if resp, err := a.CreateTopic(ctx, 1, 1, nil, "cc-defaults"); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	rcs, err = b.DescribeTopicConfigs(ctx, "cc-defaults")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"cleanup.policy": "delete", "min.compaction.lag.ms": "0", "max.compaction.lag.ms": "9223372036854775807",
		"delete.retention.ms": "86400000", "min.cleanable.dirty.ratio": "0.5", "segment.ms": "604800000",
		"segment.bytes": "1073741824", "min.insync.replicas": "1",
	} {
		if v, src := configValue(t, rcs, k); v != want || src != kmsg.ConfigSourceDefaultConfig {
			t.Errorf("%s = %s (source %v), want the default %s", k, v, src, want)
		}
	}

	// Lags in conflict through both alter APIs.
	ar, err := a.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.compaction.lag.ms", Value: s("999")}}, topic)
	if err != nil || !errors.Is(ar[0].Err, kerr.InvalidConfig) || !strings.Contains(ar[0].ErrMessage, "below min.compaction.lag.ms") {
		t.Errorf("incremental max.compaction.lag.ms below min: %v %+v, want INVALID_CONFIG", err, ar)
	}
	ar, err = a.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "min.compaction.lag.ms", Value: s("10")}, {Name: "max.compaction.lag.ms", Value: s("9")}}, topic)
	if err != nil || !errors.Is(ar[0].Err, kerr.InvalidConfig) {
		t.Errorf("alter configs max below min: %v %+v, want INVALID_CONFIG", err, ar)
	}

	// Switching: delete -> compact (incremental append) -> compact,delete
	// (AlterConfigs, the whole set) -> delete (incremental subtract).
	if resp, err := a.CreateTopic(ctx, 1, 1, nil, "cc-switch"); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	for _, step := range []struct {
		alter func() (kadm.AlterConfigsResponses, error)
		want  string
	}{
		{func() (kadm.AlterConfigsResponses, error) {
			return a.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: s("compact")}}, "cc-switch")
		}, "compact"},
		{func() (kadm.AlterConfigsResponses, error) {
			return a.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "cleanup.policy", Value: s("compact,delete")}, {Name: "retention.ms", Value: s("3600000")}}, "cc-switch")
		}, "compact,delete"},
		{func() (kadm.AlterConfigsResponses, error) {
			return a.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: s("compact")}}, "cc-switch")
		}, "delete"},
	} {
		ar, err := step.alter()
		if err != nil || ar[0].Err != nil {
			t.Fatalf("switch to %s: %v %+v", step.want, err, ar)
		}
		rcs, _ := b.DescribeTopicConfigs(ctx, "cc-switch")
		if v, _ := configValue(t, rcs, "cleanup.policy"); v != step.want {
			t.Errorf("cleanup.policy = %s, want %s", v, step.want)
		}
	}
}

// TestCompactedTopicRefusesKeylessRecords proves the produce rule of
// compacted topics on a topic created with cleanup.policy=compact,delete:
// a keyless record is INVALID_RECORD with Kafka's message and is not stored,
// while an idempotent producer's keyed records (an empty key included) are
// acknowledged and read back through another agent at dense offsets.
func TestCompactedTopicRefusesKeylessRecords(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	const topic = "compacted"
	if resp, err := c.Admin(t).CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kmsg.StringPtr("compact,delete")}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	p := c.Client(t, pinnedDialer(c.Agents[0].Addr), kgo.DefaultProduceTopic(topic), kgo.RecordRetries(2))
	err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless record: %v, want INVALID_RECORD", err)
	}
	var want []string
	for i, k := range []string{"a", "", "b", "a"} {
		v := string(rune('0' + i))
		want = append(want, k+"="+v)
		if err := p.ProduceSync(ctx, &kgo.Record{Key: []byte(k), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("keyed record %q: %v", k, err)
		}
	}

	// On the wire: Produce v3 gets the code alone, v8+ the message and
	// the index of each keyless record too.
	rc := dialRaw(t, c.Agents[0].Addr)
	mixed := segmenttest.Batch(segmenttest.BatchOptions{Keys: [][]byte{[]byte("k"), nil, []byte("k"), nil}, Values: [][]byte{{1}, {2}, {3}, {4}}, Timestamp: time.Now().UnixMilli()})
	if code := produceCode(t, rc, produceReq(3, topic, 0, mixed)); code != kerr.InvalidRecord.Code {
		t.Errorf("produce v3 with keyless records: %v, want INVALID_RECORD", kerr.ErrorForCode(code))
	}
	resp := rc.roundTrip(produceReq(9, topic, 0, mixed)).(*kmsg.ProduceResponse)
	rp := resp.Topics[0].Partitions[0]
	wantMsg := "Compacted topic cannot accept message without key in topic partition compacted-0."
	if rp.ErrorCode != kerr.InvalidRecord.Code || rp.ErrorMessage == nil || *rp.ErrorMessage != wantMsg ||
		len(rp.ErrorRecords) != 2 || rp.ErrorRecords[0].RelativeOffset != 1 || rp.ErrorRecords[1].RelativeOffset != 3 {
		t.Errorf("produce v9 with keyless records: %+v, want INVALID_RECORD, %q, records 1 and 3", rp, wantMsg)
	}

	// Read through agent B: only the keyed records, at dense offsets.
	r := c.Client(t, pinnedDialer(c.Agents[1].Addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	var got []string
	for len(got) < len(want) {
		fs := r.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", len(got), len(want), err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if rec.Offset != int64(len(got)) {
				t.Errorf("record %q at offset %d, want %d", rec.Key, rec.Offset, len(got))
			}
			got = append(got, string(rec.Key)+"="+string(rec.Value))
		})
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// TestKeyCompactedPartitionReadByKafkaClients proves a partition rewritten
// by key compaction (lifecycle.CompactKeysPartition, run here by hand)
// reads as Kafka serves a compacted log: a franz-go consumer on agent B
// from the start gets only the latest record of each key, tombstones
// included, at the offsets agent A assigned, across the one header left in
// place of the 45 emptied batches; the end offset is unchanged; and the
// same idempotent producer keeps producing after the rewrite. ListOffsets and
// OffsetForLeaderEpoch answer as Kafka does around the removed records:
// earliest is still 0 (compaction keeps the log start), latest 50, a
// timestamp lookup for a removed record's time the next record kept, the
// max timestamp the last record; epoch 0 ends at 50.
func TestKeyCompactedPartitionReadByKafkaClients(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	const topic = "kc-clients"
	tp, err := c.Meta.CreateTopic(ctx, topic, 1, map[string]string{"cleanup.policy": "compact", "segment.ms": "1"})
	if err != nil {
		t.Fatal(err)
	}
	p := c.Client(t, pinnedDialer(c.Agents[0].Addr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	type kv struct {
		off  int64
		key  string
		val  string
		null bool
	}
	latest := map[string]kv{}
	ts0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	stamp := func(off int64) time.Time { return ts0.Add(time.Duration(off) * 10 * time.Millisecond) }
	for round := range 10 {
		for k := range 5 {
			r := &kgo.Record{Key: []byte(fmt.Sprintf("k%d", k)), Value: []byte(fmt.Sprintf("v%d-%d", k, round)), Timestamp: stamp(int64(round*5 + k))}
			null := round == 9 && k == 2
			if null {
				r.Value = nil // a tombstone
			}
			if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			latest[string(r.Key)] = kv{r.Offset, string(r.Key), string(r.Value), null}
		}
	}
	cfg := lifecycle.KeyCompactConfig{CompactConfig: lifecycle.CompactConfig{Settle: time.Nanosecond, TempDir: t.TempDir(),
		Now: func() time.Time { return time.Now().Add(time.Second) }}}
	st, err := lifecycle.CompactKeysPartition(ctx, c.Store, c.Meta, cfg, tp, 0, metastore.CleanerState{}, nil)
	if err != nil || st.RecordsRemoved != 45 || st.MappedTo != 50 {
		t.Fatalf("compaction: %+v, %v; want 45 records removed, 50 offsets mapped", st, err)
	}
	// The 45 batches emptied (offsets 0..44) keep one header between them.
	batches := 0
	if _, _, err := c.Meta.ScanIndex(ctx, tp.ID, 0, func(e metastore.IndexEntry) bool { batches += int(e.Batches); return true }); err != nil || batches != 6 {
		t.Errorf("%d batches stored (%v), want 6: one header for the 45 emptied, then the 5 kept", batches, err)
	}

	var want []kv
	for _, r := range latest {
		want = append(want, r)
	}
	slices.SortFunc(want, func(a, b kv) int { return int(a.off - b.off) })
	// Agent B's cached index follows the swap through etcd's watch, a
	// moment later: read from the start until it shows the swap (bounded).
	var r *kgo.Client
	read := func() []kv {
		r = c.Client(t, pinnedDialer(c.Agents[1].Addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		var got []kv
		for len(got) == 0 || got[len(got)-1].off < 49 {
			fs := r.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("read %d records, the last %+v: %v", len(got), got, err)
			}
			fs.EachRecord(func(rec *kgo.Record) {
				got = append(got, kv{rec.Offset, string(rec.Key), string(rec.Value), rec.Value == nil})
			})
		}
		return got
	}
	got := read()
	for deadline := time.Now().Add(20 * time.Second); !reflect.DeepEqual(got, want) && time.Now().Before(deadline); got = read() {
		time.Sleep(100 * time.Millisecond)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v, want %+v", got, want)
	}
	adm := kadm.NewClient(r)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if o, _ := ends.Lookup(topic, 0); err != nil || o.Offset != 50 {
		t.Errorf("end offset %d (%v), want 50", o.Offset, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if o, _ := starts.Lookup(topic, 0); err != nil || o.Offset != 0 {
		t.Errorf("start offset %d (%v), want 0 (kept by compaction)", o.Offset, err)
	}
	// Offset 44 (k4 of round 8) is removed; the next record kept is 45.
	// Offset 20 (k0 of round 4) is removed; the next kept is 45 too.
	for _, c := range []struct{ removed, want int64 }{{44, 45}, {20, 45}, {47, 47}} {
		byTime, err := adm.ListOffsetsAfterMilli(ctx, stamp(c.removed).UnixMilli(), topic)
		if o, _ := byTime.Lookup(topic, 0); err != nil || o.Offset != c.want {
			t.Errorf("offset for the time of offset %d: %d (%v), want %d", c.removed, o.Offset, err, c.want)
		}
	}
	maxTS, err := adm.ListMaxTimestampOffsets(ctx, topic)
	if o, _ := maxTS.Lookup(topic, 0); err != nil || o.Offset != 49 || o.Timestamp != stamp(49).UnixMilli() {
		t.Errorf("max timestamp offset %d at %d (%v), want 49 at %d", o.Offset, o.Timestamp, err, stamp(49).UnixMilli())
	}
	oreq := kmsg.NewOffsetForLeaderEpochRequest()
	ot := kmsg.NewOffsetForLeaderEpochRequestTopic()
	ot.Topic = topic
	op := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	op.CurrentLeaderEpoch, op.LeaderEpoch = -1, 0
	ot.Partitions = append(ot.Partitions, op)
	oreq.Topics = append(oreq.Topics, ot)
	oresp, err := oreq.RequestWith(ctx, r)
	if err != nil || len(oresp.Topics) != 1 || len(oresp.Topics[0].Partitions) != 1 ||
		oresp.Topics[0].Partitions[0].EndOffset != 50 || oresp.Topics[0].Partitions[0].LeaderEpoch != 0 {
		t.Errorf("OffsetForLeaderEpoch(0): %+v (%v), want epoch 0 ending at 50", oresp, err)
	}
	rec := &kgo.Record{Key: []byte("k0"), Value: []byte("after")}
	if err := p.ProduceSync(ctx, rec).FirstErr(); err != nil || rec.Offset != 50 {
		t.Errorf("produce after compaction: offset %d, %v; want 50", rec.Offset, err)
	}
}
