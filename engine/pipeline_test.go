package engine

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// stalledSecond is a store whose PUT of the engine's second sealed object
// (key "...-t-000002-...") blocks until release is called, then fails when
// fail is set; other PUTs pass and are counted.
type stalledSecond struct {
	s3tier.Store
	gate    chan struct{}
	once    sync.Once
	fail    bool
	mu      sync.Mutex
	otherOK int
}

func newStalledSecond(t *testing.T, fail bool) *stalledSecond {
	st := &stalledSecond{gate: make(chan struct{}), fail: fail}
	st.Store = s3tier.Faulty(dirStore(t), func(op, key string) error {
		if op != s3tier.OpPut {
			return nil
		}
		if strings.Contains(key, "-t-000002-") {
			<-st.gate
			if st.fail {
				return errors.New("injected: the second object's PUT fails")
			}
			return nil
		}
		st.mu.Lock()
		st.otherOK++
		st.mu.Unlock()
		return nil
	})
	t.Cleanup(st.release)
	return st
}

func (s *stalledSecond) release() { s.once.Do(func() { close(s.gate) }) }

func (s *stalledSecond) others() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.otherOK
}

// pipelineWithStall seals four one-batch objects of one partition while the
// second one's PUT hangs, and checks that the third and fourth, although
// uploaded, are not visible (the partition's committed end stays after the
// first) until the second is resolved.
func pipelineWithStall(t *testing.T, fail bool) (*Engine, metastore.Topic, []*Pending) {
	t.Helper()
	cli, _ := testenv.Etcd(t)
	st := newStalledSecond(t, fail)
	e := testEngine(t, cli, st, func(c *Config) {
		c.Name = "t"
		c.FlushBytes = 1 // one batch per object
		c.UploadTimeout = 3 * time.Second
	})
	tp := createTopic(t, cli, "pipeline", 1)
	ctx := context.Background()
	var pend []*Pending
	for i := 0; i < 4; i++ {
		pend = append(pend, e.Produce(ctx, tp.ID, 0, segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Value: value(0, i)})))
	}
	if _, err := pend[0].Wait(ctx); err != nil {
		t.Fatalf("first object: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.others() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("objects 1, 3 and 4 not uploaded (%d PUTs)", st.others())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a wrong commit to happen
	state, err := metastore.New(cli, testNS).PartitionState(ctx, tp.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := state.NextOffset; got != 2 {
		t.Fatalf("with the second PUT hanging, the partition ends at %d, want 2 (only the first object visible)", got)
	}
	for i := 1; i < 4; i++ {
		select {
		case <-pend[i].Done():
			t.Fatalf("produce %d answered while the second PUT hangs", i)
		default:
		}
	}
	st.release()
	return e, tp, pend
}

// TestPipelineHungPutKeepsOrder proves that a PUT hanging in the middle of
// the pipeline keeps later, already uploaded objects invisible; once it
// completes, the objects commit in seal order (dense offsets 0, 2, 4, 6),
// the three waiting ones in one commit pass.
func TestPipelineHungPutKeepsOrder(t *testing.T) {
	e, tp, pend := pipelineWithStall(t, false)
	for i, p := range pend {
		res, err := p.Wait(context.Background())
		if err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		if res.BaseOffset != int64(2*i) {
			t.Fatalf("produce %d at offset %d, want %d", i, res.BaseOffset, 2*i)
		}
	}
	// The pass's counters move after its producers are answered: wait for them.
	deadline := time.Now().Add(10 * time.Second)
	for e.Snapshot().CommittedObjects < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := e.Snapshot(); s.CommittedObjects != 4 || s.CommitPasses != 2 {
		t.Fatalf("%d objects in %d commit passes, want 4 in 2 (objects 2-4 together)", s.CommittedObjects, s.CommitPasses)
	}
	got := readAll(t, e, tp.ID, 0)
	for i := range got {
		want := segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Value: value(0, i)})
		if !sameExceptBase(got[i], want) {
			t.Fatalf("batch at offset %d is not produce %d", 2*i, i)
		}
	}
}

// TestPipelineFailedPutNeverVisible proves that when the PUT in the middle
// of the pipeline fails for good, its producers get KAFKA_STORAGE_ERROR and
// its records never become visible, while the objects after it commit
// after the first one (offsets stay dense: 0, 2, 4).
func TestPipelineFailedPutNeverVisible(t *testing.T) {
	e, tp, pend := pipelineWithStall(t, true)
	if _, err := pend[1].Wait(context.Background()); !errors.Is(err, kerr.KafkaStorageError) {
		t.Fatalf("produce 1 with a failed PUT: %v, want KAFKA_STORAGE_ERROR", err)
	}
	for i, want := range map[int]int64{2: 2, 3: 4} {
		res, err := pend[i].Wait(context.Background())
		if err != nil || res.BaseOffset != want {
			t.Fatalf("produce %d: offset %d, %v; want %d", i, res.BaseOffset, err, want)
		}
	}
	got := readAll(t, e, tp.ID, 0)
	if len(got) != 3 {
		t.Fatalf("read %d batches, want 3", len(got))
	}
	for i, seq := range []int{0, 2, 3} {
		if !sameExceptBase(got[i], segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Value: value(0, seq)})) {
			t.Fatalf("batch %d is not produce %d", i, seq)
		}
	}
}

// hangFirstPut is a store whose first PUT of each key hangs until its
// context ends (a connection the store stopped answering); later PUTs of
// the key go through.
type hangFirstPut struct {
	s3tier.Store
	mu   sync.Mutex
	seen map[string]bool
}

func (h *hangFirstPut) Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	h.mu.Lock()
	first := !h.seen[key]
	h.seen[key] = true
	h.mu.Unlock()
	if first {
		<-ctx.Done()
		return ctx.Err()
	}
	return h.Store.Put(ctx, key, body, size)
}

// TestUploadHedgesHungPut proves that a PUT the store stops answering does
// not hold the ack for the attempt's timeout (5 s): a second PUT of the
// same object races it after the hedge delay, the ack comes from that one,
// no attempt fails, and the records read back.
func TestUploadHedgesHungPut(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	st := &hangFirstPut{Store: dirStore(t), seen: map[string]bool{}}
	e := testEngine(t, cli, st, func(c *Config) { c.UploadHedgeAfter = 50 * time.Millisecond })
	tp := createTopic(t, cli, "hedge", 1)
	ctx, cancel := context.WithTimeout(context.Background(), minAttemptTimeout-time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		if _, err := e.Produce(ctx, tp.ID, 0, segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Value: value(0, i)})).Wait(ctx); err != nil {
			t.Fatalf("produce %d with its first PUT hung: %v (want the hedged PUT's ack before the attempt timeout)", i, err)
		}
	}
	s := e.Snapshot()
	if s.UploadHedges < 3 || s.UploadRetries != 0 {
		t.Fatalf("%d hedged PUTs and %d retried attempts, want >= 3 and 0", s.UploadHedges, s.UploadRetries)
	}
	if got := readAll(t, e, tp.ID, 0); len(got) != 3 {
		t.Fatalf("read %d batches back, want 3", len(got))
	}
}

func TestHedgeDelay(t *testing.T) {
	for _, c := range []struct {
		after time.Duration
		size  int64
		want  time.Duration
	}{
		{time.Second, 0, time.Second},
		{time.Second, 4 << 20, time.Second + 125*time.Millisecond},
		{time.Second, 64 << 20, 3 * time.Second},
		{-1, 4 << 20, 0},
	} {
		if got := hedgeDelay(c.after, c.size); got != c.want {
			t.Errorf("hedgeDelay(%v, %d) = %v, want %v", c.after, c.size, got, c.want)
		}
	}
}
