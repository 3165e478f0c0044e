package interop

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/tests/cluster"
)

// TestKillAgentLosesNoAcknowledgedRecord proves DESIGN invariants 1-3 with
// a real SIGKILL: a franz-go idempotent acks=all producer that knows both
// agents produces continuously; after about 2,000 acknowledgements agent A
// is killed; production continues through agent B to 6,000 acknowledgements.
// Read back through B, every acknowledged record is at the partition and
// offset it was acknowledged at, every partition's offsets are dense from 0,
// and no record appears twice.
func TestKillAgentLosesNoAcknowledgedRecord(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic = "kill9"
	c.CreateTopic(t, 1, topic, numPartitions)
	killDuringProduce(t, c, topic)
}

// TestKillAgentRecompressingTopic proves the same of a topic whose
// compression.type (zstd) makes the agents recompress the producer's
// (snappy) batches: retries through agent B after the SIGKILL of A are
// de-duplicated (recompression keeps the producer ID, epoch and
// sequences), and what is read back is exactly what was acknowledged.
func TestKillAgentRecompressingTopic(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic = "kill9-zstd"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(c.Client(t)).CreateTopic(ctx, numPartitions, 1, map[string]*string{"compression.type": kmsg.StringPtr("zstd")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	killDuringProduce(t, c, topic)
	for p := range int32(numPartitions) {
		checkStoredCodec(t, c, 1, topic, p, segment.CompressionZstd)
	}
}

// killDuringProduce is the body of the kill tests: produce, kill agent 0,
// produce on, audit what agent 1 serves.
func killDuringProduce(t *testing.T, c *cluster.Cluster, topic string) {
	t.Helper()
	const (
		killAfter = 2_000
		wantAcks  = 6_000
		maxSent   = 50_000 // bound on records produced in all
		bound     = 120 * time.Second
	)

	cl := c.Client(t,
		kgo.DefaultProduceTopic(topic),
		kgo.MaxBufferedRecords(200), // keep records in flight around the kill
		kgo.ProducerLinger(0),
		kgo.RetryTimeout(bound),
	)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()

	var (
		mu       sync.Mutex
		acks     = map[string]Pos{} // value -> acknowledged position
		failed   []string
		killed   = make(chan struct{})
		reached  = make(chan struct{})
		killOnce sync.Once
		doneOnce sync.Once
	)
	onAck := func(r *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", r.Value, err))
			return
		}
		acks[string(r.Value)] = Pos{r.Partition, r.Offset}
		if len(acks) >= killAfter {
			killOnce.Do(func() { close(killed) })
		}
		if len(acks) >= wantAcks {
			doneOnce.Do(func() { close(reached) })
		}
	}

	// Produce continuously until enough acknowledgements (or the bound).
	produced := make(chan int, 1)
	go func() {
		n := 0
		defer func() { produced <- n }()
		for ; n < maxSent; n++ {
			select {
			case <-reached:
				return
			case <-ctx.Done():
				return
			default:
			}
			v := fmt.Sprintf("kill-%06d", n)
			cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprintf("key-%05d", n)), Value: []byte(v)}, onAck)
		}
	}()

	select {
	case <-killed:
	case <-ctx.Done():
		t.Fatalf("only %d acknowledgements before the kill within %v", countAcks(&mu, acks), bound)
	}
	c.Kill(0)
	ackedAtKill := countAcks(&mu, acks)
	t.Logf("killed agent 0 (%s) after %d acknowledgements", c.Addr(0), ackedAtKill)

	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatalf("%d acknowledgements within %v (%d at the kill); production through the surviving agent stalled", countAcks(&mu, acks), bound, ackedAtKill)
	}
	n := <-produced
	// Every record produced gets its answer (ack or error) before reading.
	fctx, fcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer fcancel()
	if err := cl.Flush(fctx); err != nil {
		t.Errorf("flush after the kill: %v", err)
	}
	mu.Lock()
	t.Logf("produced %d records: %d acknowledged, %d failed", n, len(acks), len(failed))
	for k, f := range failed {
		if k == 5 {
			break
		}
		t.Logf("failed (allowed: not acknowledged): %s", f)
	}
	final := make(map[string]Pos, len(acks))
	for v, p := range acks {
		final[v] = p
	}
	mu.Unlock()

	// Read everything through the survivor, up to the end offsets it lists.
	ends := endOffsets(t, c.Addr(1), topic)
	var total int64
	for _, e := range ends {
		total += e
	}
	got := consumeAll(t, c.Addr(1), topic, int(total))
	byPos := map[Pos]Record{}
	seen := map[string]Pos{}
	perPart := map[int32][]int64{}
	for _, r := range got {
		p := Pos{r.Partition, r.Offset}
		byPos[p] = r
		perPart[r.Partition] = append(perPart[r.Partition], r.Offset)
		if prev, dup := seen[r.Value]; dup {
			t.Errorf("record %q at %d/%d and again at %d/%d: duplicate from an idempotent producer", r.Value, prev.Partition, prev.Offset, r.Partition, r.Offset)
		}
		seen[r.Value] = p
	}
	for part := range int32(numPartitions) {
		offs := perPart[part]
		sort.Slice(offs, func(a, b int) bool { return offs[a] < offs[b] })
		for k, o := range offs {
			if o != int64(k) {
				t.Errorf("partition %d: offset #%d is %d: offsets not dense from 0", part, k, o)
				break
			}
		}
		if int64(len(offs)) != ends[part] {
			t.Errorf("partition %d: read %d records, end offset %d", part, len(offs), ends[part])
		}
	}
	lost := 0
	for v, p := range final {
		r, ok := byPos[p]
		switch {
		case !ok:
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged record %q at %d/%d is missing", v, p.Partition, p.Offset)
			}
		case r.Value != v:
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged record %q at %d/%d: that offset holds %q", v, p.Partition, p.Offset, r.Value)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged records lost or moved", lost, len(final))
	}
}

func countAcks(mu *sync.Mutex, acks map[string]Pos) int {
	mu.Lock()
	defer mu.Unlock()
	return len(acks)
}
