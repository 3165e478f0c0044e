package interop

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestMain: the agents under test are built with the race detector (this
// package's one pass in `make test` is its race pass), except where a test
// asks for agents without it (cluster.Options.NoRace).
func TestMain(m *testing.M) { cluster.MainWithRaceAgents(m) }

// Sizes and bounds shared by the tests.
const (
	numRecords     = 10_000
	numPartitions  = 6
	baseTimestamp  = int64(1_700_000_000_000) // ms; record i carries base+i
	produceTimeout = 90 * time.Second
	consumeTimeout = 90 * time.Second
	// toolTimeout bounds one run of a client tool (kcat, python, node);
	// a run takes a few seconds.
	toolTimeout = 45 * time.Second
	// readTimeout bounds a tool's read of 10,000 records (a second or two).
	readTimeout = 30 * time.Second
)

// Header is one record header.
type Header struct{ Key, Value string }

// Record is a record as produced or consumed, in client-neutral form.
type Record struct {
	Partition int32
	Offset    int64
	Key       string
	Value     string
	Headers   []Header
	Timestamp int64 // ms since the epoch
}

// Pos is where an acknowledgement says a record landed.
type Pos struct {
	Partition int32
	Offset    int64
}

// recordFor is record i of a run by client src (the scheme every language
// follows; see doc.go).
func recordFor(src string, i int) Record {
	return Record{
		Key:       fmt.Sprintf("key-%05d", i),
		Value:     fmt.Sprintf("value-%05d-", i) + strings.Repeat("x", i%61),
		Headers:   []Header{{"idx", strconv.Itoa(i)}, {"src", src}},
		Timestamp: baseTimestamp + int64(i),
	}
}

// indexOf parses i out of a value "value-%05d-...".
func indexOf(value string) (int, error) {
	rest, ok := strings.CutPrefix(value, "value-")
	if !ok || len(rest) < 6 || rest[5] != '-' {
		return 0, fmt.Errorf("value %.40q does not follow the value-%%05d- scheme", value)
	}
	return strconv.Atoi(rest[:5])
}

// expectation describes what a consumed log must hold.
type expectation struct {
	n    int                        // records produced, indexes 0..n-1
	want func(i int) Record         // expected content of record i
	acks map[int]Pos                // acknowledged position of record i; nil: unknown
	ts   func(got, want int64) bool // timestamp check; nil: equal
	// partitions is the topic's partition count; every partition's
	// offsets must be dense from 0.
	partitions int32
}

// verify checks that got holds exactly records 0..n-1 of e, each with the
// expected content, at its acknowledged position, in index order within
// each partition, with dense offsets from 0 in every partition. It reports
// at most a few problems of each kind, then a summary.
func verify(t *testing.T, e expectation, got []Record) {
	t.Helper()
	const maxReports = 5
	reports := map[string]int{}
	report := func(kind, format string, args ...any) {
		t.Helper()
		reports[kind]++
		if reports[kind] <= maxReports {
			t.Errorf(kind+": "+format, args...)
		}
	}
	defer func() {
		for kind, n := range reports {
			if n > maxReports {
				t.Errorf("%s: %d problems in all (first %d shown)", kind, n, maxReports)
			}
		}
	}()

	if len(got) != e.n {
		report("count", "consumed %d records, produced %d", len(got), e.n)
	}
	seen := make(map[int]Record, e.n)
	byPart := map[int32][]Record{}
	for _, r := range got {
		if r.Partition < 0 || r.Partition >= e.partitions {
			report("partition", "record at %d/%d: partition out of range 0..%d", r.Partition, r.Offset, e.partitions-1)
			continue
		}
		byPart[r.Partition] = append(byPart[r.Partition], r)
		i, err := indexOf(r.Value)
		if err != nil || i < 0 || i >= e.n {
			report("value", "record at %d/%d: %v (index %d)", r.Partition, r.Offset, err, i)
			continue
		}
		if prev, dup := seen[i]; dup {
			report("duplicate", "record %d at %d/%d and again at %d/%d", i, prev.Partition, prev.Offset, r.Partition, r.Offset)
			continue
		}
		seen[i] = r
		w := e.want(i)
		if r.Key != w.Key {
			report("key", "record %d at %d/%d: key %q, want %q", i, r.Partition, r.Offset, r.Key, w.Key)
		}
		if r.Value != w.Value {
			report("value", "record %d at %d/%d: value %q, want %q", i, r.Partition, r.Offset, r.Value, w.Value)
		}
		if !slices.Equal(r.Headers, w.Headers) {
			report("headers", "record %d at %d/%d: headers %v, want %v", i, r.Partition, r.Offset, r.Headers, w.Headers)
		}
		okTS := r.Timestamp == w.Timestamp
		if e.ts != nil {
			okTS = e.ts(r.Timestamp, w.Timestamp)
		}
		if !okTS {
			report("timestamp", "record %d at %d/%d: timestamp %d, want %d", i, r.Partition, r.Offset, r.Timestamp, w.Timestamp)
		}
		if e.acks != nil {
			if ack, ok := e.acks[i]; !ok {
				report("ack", "record %d consumed at %d/%d but never acknowledged", i, r.Partition, r.Offset)
			} else if ack != (Pos{r.Partition, r.Offset}) {
				report("position", "record %d consumed at %d/%d, acknowledged at %d/%d", i, r.Partition, r.Offset, ack.Partition, ack.Offset)
			}
		}
	}
	for i := range e.n {
		if _, ok := seen[i]; !ok {
			if ack, acked := e.acks[i]; acked {
				report("missing", "record %d (acknowledged at %d/%d) not consumed", i, ack.Partition, ack.Offset)
			} else {
				report("missing", "record %d not consumed", i)
			}
		}
	}
	for p := range e.partitions {
		rs := byPart[p]
		sort.Slice(rs, func(a, b int) bool { return rs[a].Offset < rs[b].Offset })
		prevIdx := -1
		for k, r := range rs {
			if r.Offset != int64(k) {
				report("dense", "partition %d: record #%d has offset %d, want %d (offsets dense from 0)", p, k, r.Offset, k)
				break
			}
			i, err := indexOf(r.Value)
			if err != nil {
				continue
			}
			if i <= prevIdx {
				report("order", "partition %d: record %d at offset %d follows record %d (produce order broken)", p, i, r.Offset, prevIdx)
			}
			prevIdx = i
		}
	}
}

// consumeAll reads every partition of topic from offset 0 through the
// agent at addr (all connections pinned to it) until it has want records
// or consumeTimeout passes, and returns them in client-neutral form.
func consumeAll(t *testing.T, addr, topic string, want int, opts ...kgo.Opt) []Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.Dialer(cluster.DialTo(addr)),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), consumeTimeout)
	defer cancel()
	var out []Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Errorf("consume %s via %s: %d of %d records within %v", topic, addr, len(out), want, consumeTimeout)
			break
		}
		for _, fe := range fs.Errors() {
			t.Errorf("consume %s/%d via %s: %v", fe.Topic, fe.Partition, addr, fe.Err)
		}
		if len(fs.Errors()) > 0 {
			break
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, fromKgo(r)) })
	}
	return out
}

func fromKgo(r *kgo.Record) Record {
	out := Record{Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Value: string(r.Value),
		Timestamp: r.Timestamp.UnixMilli()}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, Header{h.Key, string(h.Value)})
	}
	return out
}

// endOffsets lists every partition's end offset through the agent at addr.
func endOffsets(t *testing.T, addr, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.Dialer(cluster.DialTo(addr)))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets of %s via %s: %v", topic, addr, err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Errorf("end offset of %s/%d via %s: %v", o.Topic, o.Partition, addr, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// checkEndOffsets checks that the end offsets listed through addr match
// the acknowledged records: one past the highest acknowledged offset, and
// summing to n.
func checkEndOffsets(t *testing.T, addr, topic string, n int, acks map[int]Pos) {
	t.Helper()
	ends := endOffsets(t, addr, topic)
	perPart := map[int32]int64{}
	for _, p := range acks {
		perPart[p.Partition] = max(perPart[p.Partition], p.Offset+1)
	}
	var sum int64
	for p := range int32(numPartitions) {
		sum += ends[p]
		if acks != nil && ends[p] != perPart[p] {
			t.Errorf("end offset of %s/%d via %s = %d, want %d (one past the last acknowledged offset)", topic, p, addr, ends[p], perPart[p])
		}
	}
	if sum != int64(n) {
		t.Errorf("end offsets of %s via %s sum to %d, want %d", topic, addr, sum, n)
	}
}

// need fails the test unless path exists, saying how to get it.
func need(t *testing.T, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing (%v): run `make test-deps` (scripts/test-deps.sh) to install it", what, err)
	}
}
