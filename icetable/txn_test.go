package icetable_test

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/replay/replaytest"
)

// TestMaterializeSkipsAbortedTransactions proves a table holds what a
// read_committed consumer reads: the records of a committed transaction
// and plain records, not those of an aborted transaction nor the
// transaction markers; and that records of a transaction still open are
// not materialized until it ends (the job stops at the last stable
// offset).
func TestMaterializeSkipsAbortedTransactions(t *testing.T) {
	ctx := replaytest.Ctx(t)
	f, tp := topicFixture(t, ctx, "txns", 2, icetable.ConfigMode, string(icetable.ModeKeyValue))
	c := f.C
	txn := c.Client(t, kgo.TransactionalID("ice-txn"), kgo.DefaultProduceTopic(f.Topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	plain := c.Client(t, kgo.DefaultProduceTopic(f.Topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	batch := func(commit bool, tag string) {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			if err := txn.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 2), Value: fmt.Appendf(nil, "%s-%d", tag, i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	batch(true, "committed")
	batch(false, "aborted")
	for i := range 2 {
		if err := plain.ProduceSync(ctx, &kgo.Record{Partition: int32(i), Value: []byte("plain")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A transaction left open: its records stay out of the table.
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var st icetable.Stats
	if err := icetable.MaterializeTopic(ctx, c.Store, c.Meta, tp, icetable.Config{}, &st); err != nil {
		t.Fatal(err)
	}
	// readCommitted reads n records with a read_committed consumer.
	readCommitted := func(n int) []replaytest.Rec {
		cl := c.Client(t, kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeTopics(f.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cl.Close()
		var out []replaytest.Rec
		for len(out) < n {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("read_committed consumer: %d of %d records", len(out), n)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if string(r.Value) != "plain" && !strings.HasPrefix(string(r.Value), "committed-") && string(r.Value) != "open" {
					t.Fatalf("read_committed consumer read %q", r.Value)
				}
				out = append(out, replaytest.Rec{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Key: r.Key, Value: r.Value})
			})
		}
		slices.SortFunc(out, func(a, b replaytest.Rec) int {
			return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
		})
		return out
	}
	want := readCommitted(6) // 4 committed, 2 plain
	got := scan(t, ctx, c.Store, c.Meta, tp)
	replaytest.CompareRecs(t, "table with a transaction open", got, want)
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if err := icetable.MaterializeTopic(ctx, c.Store, c.Meta, tp, icetable.Config{}, &st); err != nil {
		t.Fatal(err)
	}
	want = readCommitted(7)
	replaytest.CompareRecs(t, "table after the open transaction committed", scan(t, ctx, c.Store, c.Meta, tp), want)
}
