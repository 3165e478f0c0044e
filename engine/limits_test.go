package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// TestCommitOverEtcdLimitsFailsAtOnce proves a commit etcd refuses for its
// size (an engine whose MaxTxnOps exceeds the server's --max-txn-ops of
// 128) is not retried: every produce in it fails with UNKNOWN_SERVER_ERROR
// instead of REQUEST_TIMED_OUT after the retry budget, and nothing of it is
// committed, so an engine within the limits then writes every partition at
// offset 0 and reads back only its own batch.
func TestCommitOverEtcdLimitsFailsAtOnce(t *testing.T) {
	const parts = 100 // one object, 3 operations per partition: 300 > 128
	cli, _ := testenv.Etcd(t)
	store := dirStore(t)
	tp := createTopic(t, cli, "limits", parts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	over := testEngine(t, cli, store, func(c *Config) { c.MaxTxnOps = 1024; c.FlushInterval = time.Hour })
	pending := make([]*Pending, parts)
	for p := range pending {
		pending[p] = over.Produce(ctx, tp.ID, int32(p), segmenttest.Batch(segmenttest.BatchOptions{Value: value(1, p)}))
	}
	if err := over.Flush(ctx); err != nil {
		t.Logf("flush: %v", err)
	}
	for p, pd := range pending {
		if _, err := pd.Wait(ctx); !errors.Is(err, kerr.UnknownServerError) {
			t.Fatalf("partition %d, commit of %d ops refused by etcd: %v, want UNKNOWN_SERVER_ERROR", p, 3*parts, err)
		}
	}
	if s := over.Snapshot(); s.CommitTxns != 1 {
		t.Fatalf("%d commit transactions sent, want 1: a refused commit was retried", s.CommitTxns)
	}

	within := testEngine(t, cli, store, nil)
	for p := range int32(parts) {
		raw := segmenttest.Batch(segmenttest.BatchOptions{Value: value(2, int(p))})
		if res := produce(t, within, tp.ID, p, raw); res.BaseOffset != 0 {
			t.Fatalf("partition %d: base offset %d after the refused commit, want 0", p, res.BaseOffset)
		}
		got := readAll(t, within, tp.ID, p)
		if len(got) != 1 || !sameExceptBase(got[0], raw) {
			t.Fatalf("partition %d: read %d batches, want only the one written within the limits", p, len(got))
		}
	}
}
