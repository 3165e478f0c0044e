package reliability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/tests/cluster"
)

// Ack is one acknowledged record: where the agent said it is, and who sent
// it with which sequence number.
type Ack struct {
	Partition int32
	Offset    int64
	Producer  string
	Seq       int64
}

// Auditor records what producers were told and checks it against what the
// log holds. Safe for concurrent use.
type Auditor struct {
	mu         sync.Mutex
	acks       []Ack
	idempotent map[string]bool
	failed     map[string]int // error text (shortened) -> count
	sent       atomic.Int64
}

// NewAuditor returns an empty auditor.
func NewAuditor() *Auditor {
	return &Auditor{idempotent: map[string]bool{}, failed: map[string]int{}}
}

func (a *Auditor) onAck(producer string, seq int64, r *kgo.Record, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		msg := err.Error()
		if len(msg) > 80 {
			msg = msg[:80]
		}
		a.failed[msg]++
		return
	}
	a.acks = append(a.acks, Ack{Partition: r.Partition, Offset: r.Offset, Producer: producer, Seq: seq})
}

// Acked is the number of acknowledged records so far.
func (a *Auditor) Acked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acks)
}

// Failed is the number of records whose produce ended in an error.
func (a *Auditor) Failed() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.failed {
		n += c
	}
	return n
}

// recordValue is a record's value: producer, sequence and a padding derived
// from both, so every record's bytes are unique and checkable.
func recordValue(producer string, seq int64, pad int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s|%09d|", producer, seq)
	for i := 0; b.Len() < pad; i++ {
		b.WriteByte(byte('a' + (int(seq)+i)%26))
	}
	return b.Bytes()
}

func parseValue(v []byte) (producer string, seq int64, ok bool) {
	parts := strings.SplitN(string(v), "|", 3)
	if len(parts) != 3 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return "", 0, false
	}
	if !bytes.Equal(v, recordValue(parts[0], n, len(v))) {
		return "", 0, false
	}
	return parts[0], n, true
}

// ProducerSpec describes one producer of a load.
type ProducerSpec struct {
	Name       string
	Idempotent bool
}

// Load is producers running against a cluster until Stop.
type Load struct {
	a    *Auditor
	stop chan struct{}
	wg   sync.WaitGroup
}

// StartLoad starts one franz-go client per spec (acks=all, seeded with every
// address, idempotent or not), each producing records to topic as fast as
// acknowledgements allow (at most maxInFlight records buffered), until Stop
// or maxRecords each.
func (a *Auditor) StartLoad(t testing.TB, addrs []string, topic string, specs []ProducerSpec, maxRecords int) *Load {
	t.Helper()
	l := &Load{a: a, stop: make(chan struct{})}
	for _, sp := range specs {
		a.mu.Lock()
		a.idempotent[sp.Name] = sp.Idempotent
		a.mu.Unlock()
		opts := []kgo.Opt{
			kgo.SeedBrokers(addrs...),
			kgo.DefaultProduceTopic(topic),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.MaxBufferedRecords(200),
			kgo.ProducerLinger(5 * time.Millisecond),
			kgo.RecordDeliveryTimeout(45 * time.Second),
			kgo.ProduceRequestTimeout(10 * time.Second),
			kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
			kgo.MetadataMinAge(250 * time.Millisecond),
		}
		if !sp.Idempotent {
			opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(1))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatalf("producer %s: %v", sp.Name, err)
		}
		name := sp.Name
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer cl.Close()
			for seq := int64(0); seq < int64(maxRecords); seq++ {
				select {
				case <-l.stop:
					seq = int64(maxRecords)
					continue
				default:
				}
				s := seq
				a.sent.Add(1)
				// Produce blocks while 200 records wait for their answer;
				// each gets one within the delivery timeout.
				cl.Produce(context.Background(), &kgo.Record{Value: recordValue(name, s, 64)}, func(r *kgo.Record, err error) {
					a.onAck(name, s, r, err)
				})
			}
			// Every record gets its answer (acknowledgement or error),
			// bounded by the delivery timeout.
			fctx, fcancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer fcancel()
			_ = cl.Flush(fctx)
		}()
	}
	return l
}

// Stop ends production and waits until every record sent has its answer.
func (l *Load) Stop() {
	close(l.stop)
	l.wg.Wait()
}

// Report is the outcome of an audit.
type Report struct {
	Sent, Acked, Failed int
	FailedBy            map[string]int
	LogRecords          []int64 // per agent read
	Lost                int     // acknowledged but absent (or something else) at their offset
	DupIdempotent       int     // extra copies of an idempotent producer's record
	DupPlain            int     // extra copies of a non-idempotent producer's record (allowed)
	Gaps                int     // missing offsets below the end offset
	Mismatch            int     // offsets whose bytes differ between agents
	OrderViolations     int     // a producer's records out of order within a partition
	Foreign             int     // records no producer of this audit wrote
	FirstLost           *Ack    // for diagnosis
}

func (r Report) String() string {
	return fmt.Sprintf("sent %d, acked %d, failed %d, lost %d, idempotent duplicates %d, non-idempotent duplicates %d, gaps %d, cross-agent mismatches %d, order violations %d, foreign %d, log records per agent %v",
		r.Sent, r.Acked, r.Failed, r.Lost, r.DupIdempotent, r.DupPlain, r.Gaps, r.Mismatch, r.OrderViolations, r.Foreign, r.LogRecords)
}

// OK reports whether the invariants held.
func (r Report) OK() bool {
	return r.Lost == 0 && r.DupIdempotent == 0 && r.Gaps == 0 && r.Mismatch == 0 && r.OrderViolations == 0 && r.Foreign == 0
}

// logRecord is one offset's content as read through one agent.
type logRecord struct {
	key, value []byte
	ts         int64
	headers    string
}

func (x logRecord) equal(y logRecord) bool {
	return bytes.Equal(x.key, y.key) && bytes.Equal(x.value, y.value) && x.ts == y.ts && x.headers == y.headers
}

// Verify reads the whole topic through every address (each read pinned to
// one agent), then checks: every acknowledged record is at the offset it
// was acknowledged at; offsets are dense from the log start; every agent
// returns the same bytes for every offset; idempotent producers have no
// duplicate and keep their order per partition. Non-idempotent producers
// may duplicate (counted) but must keep their order too (one request in
// flight).
func (a *Auditor) Verify(t testing.TB, addrs []string, topic string) Report {
	t.Helper()
	a.mu.Lock()
	rep := Report{Sent: int(a.sent.Load()), Acked: len(a.acks), FailedBy: map[string]int{}}
	for k, v := range a.failed {
		rep.FailedBy[k] = v
		rep.Failed += v
	}
	acks := append([]Ack(nil), a.acks...)
	idem := map[string]bool{}
	for k, v := range a.idempotent {
		idem[k] = v
	}
	a.mu.Unlock()

	logs := make([]map[int32][]logRecord, len(addrs))
	for i, addr := range addrs {
		lg, gaps, err := readLog(addr, topic)
		if err != nil {
			t.Fatalf("audit: read %s through agent %d (%s): %v", topic, i, addr, err)
		}
		logs[i] = lg
		rep.Gaps += gaps
		n := 0
		for _, recs := range lg {
			n += len(recs)
		}
		rep.LogRecords = append(rep.LogRecords, int64(n))
	}
	// Same answer everywhere (invariant 3).
	for i := 1; i < len(logs); i++ {
		for p, recs := range logs[0] {
			other := logs[i][p]
			if len(other) != len(recs) {
				rep.Mismatch += abs(len(other) - len(recs))
				t.Errorf("audit: partition %d: agent 0 reads %d offsets, agent %d reads %d", p, len(recs), i, len(other))
			}
			for off := range min(len(other), len(recs)) {
				if !recs[off].equal(other[off]) {
					rep.Mismatch++
					if rep.Mismatch <= 5 {
						t.Errorf("audit: partition %d offset %d: agent 0 reads %q, agent %d reads %q", p, off, recs[off].value, i, other[off].value)
					}
				}
			}
		}
	}
	lg := logs[0]
	// Every acknowledgement holds (invariant 1).
	for _, ack := range acks {
		recs := lg[ack.Partition]
		want := recordValue(ack.Producer, ack.Seq, 64)
		if ack.Offset < 0 || ack.Offset >= int64(len(recs)) || !bytes.Equal(recs[ack.Offset].value, want) {
			rep.Lost++
			if rep.FirstLost == nil {
				a := ack
				rep.FirstLost = &a
			}
			if rep.Lost <= 5 {
				got := "nothing"
				if ack.Offset >= 0 && ack.Offset < int64(len(recs)) {
					got = fmt.Sprintf("%q", recs[ack.Offset].value)
				}
				t.Errorf("audit: %s #%d acknowledged at %d/%d; that offset holds %s", ack.Producer, ack.Seq, ack.Partition, ack.Offset, got)
			}
		}
	}
	// Duplicates and order (invariant 2).
	type pk struct {
		producer string
		seq      int64
	}
	type pp struct {
		producer string
		part     int32
	}
	seen := map[pk]int{}
	lastSeq := map[pp]int64{}
	parts := make([]int32, 0, len(lg))
	for p := range lg {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		for off, r := range lg[p] {
			prod, seq, ok := parseValue(r.value)
			if !ok {
				if r.value != nil { // nil: a gap, counted already
					rep.Foreign++
					t.Errorf("audit: %d/%d holds a record no producer wrote: %q", p, off, r.value)
				}
				continue
			}
			k := pk{prod, seq}
			seen[k]++
			if seen[k] > 1 {
				if idem[prod] {
					rep.DupIdempotent++
					if rep.DupIdempotent <= 5 {
						t.Errorf("audit: idempotent %s #%d again at %d/%d", prod, seq, p, off)
					}
				} else {
					rep.DupPlain++
				}
				continue
			}
			o := pp{prod, p}
			if last, ok := lastSeq[o]; ok && seq < last {
				rep.OrderViolations++
				if rep.OrderViolations <= 5 {
					t.Errorf("audit: %s #%d at %d/%d after #%d: out of order", prod, seq, p, off, last)
				}
			}
			lastSeq[o] = max(lastSeq[o], seq)
		}
	}
	return rep
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// readLog reads every partition of topic from its log start to its end
// offset through addr only. The result is indexed by offset (entries below
// the log start, or missing, are zero); gaps counts offsets in range that
// were not returned.
func readLog(addr, topic string) (map[int32][]logRecord, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.Dialer(cluster.DialTo(addr)))
	if err != nil {
		return nil, 0, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, 0, fmt.Errorf("list end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, 0, fmt.Errorf("list end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, 0, fmt.Errorf("list start offsets: %w", err)
	}
	out := map[int32][]logRecord{}
	want := map[int32]kgo.Offset{}
	remaining := 0
	ends.Each(func(o kadm.ListedOffset) {
		out[o.Partition] = make([]logRecord, o.Offset)
		if o.Offset > 0 {
			st := int64(0)
			if s, ok := starts.Lookup(topic, o.Partition); ok {
				st = s.Offset
			}
			want[o.Partition] = kgo.NewOffset().At(st)
			remaining += int(o.Offset - st)
		}
	})
	if remaining == 0 {
		return out, 0, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.Dialer(cluster.DialTo(addr)),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: want}),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	got := 0
	present := map[int32]map[int64]bool{}
	for p := range want {
		present[p] = map[int64]bool{}
	}
	// A partition is read when its last offset is (offsets below it that
	// never came are gaps).
	done := func() bool {
		for p := range want {
			if !present[p][int64(len(out[p]))-1] {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("read %d of %d records: %w", got, remaining, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.DeadlineExceeded) {
				continue
			}
			return nil, 0, fmt.Errorf("fetch %d: %w", fe.Partition, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			recs := out[r.Partition]
			if r.Offset < 0 || r.Offset >= int64(len(recs)) {
				return
			}
			var hs strings.Builder
			for _, h := range r.Headers {
				fmt.Fprintf(&hs, "%s=%x;", h.Key, h.Value)
			}
			recs[r.Offset] = logRecord{key: r.Key, value: r.Value, ts: r.Timestamp.UnixMilli(), headers: hs.String()}
			if !present[r.Partition][r.Offset] {
				present[r.Partition][r.Offset] = true
				got++
			}
		})
	}
	gaps := 0
	for p := range want {
		for off := int64(0); off < int64(len(out[p])); off++ {
			if !present[p][off] {
				if s, ok := starts.Lookup(topic, p); ok && off < s.Offset {
					continue
				}
				gaps++
			}
		}
	}
	return out, gaps, nil
}
