package icetable_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/replay/replaytest"
)

// TestIcebergJobRuns proves the lifecycle Runner runs the iceberg job on
// its own interval once elected: with a 1-hour lifecycle interval and a
// 50 ms iceberg interval, the topic's table catches up with its log, then
// with records produced after that first pass, and holds what the Kafka
// consumer read.
func TestIcebergJobRuns(t *testing.T) {
	f := replaytest.NewFixture(t, 10)
	ctx := replaytest.Ctx(t)
	tp := kvTopic(t, ctx, f.C.Meta, f.Topic)
	r, err := lifecycle.New(lifecycle.Config{Holder: "test", Interval: time.Hour, IcebergInterval: 50 * time.Millisecond,
		LeaseTTL: 2 * time.Second, Iceberg: icetable.Config{CommitBytes: 8 << 10}}, f.C.Store, f.C.Meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(r.Close)
	waitRows := func(n int) {
		for {
			st, err := icetable.Status(ctx, f.C.Store, f.C.Meta, tp, time.Now())
			if err == nil && st.Lag == 0 && st.Rows == int64(n) {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("table never caught up with %d records: %+v %v", n, st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitRows(len(f.Want))
	// Records produced after the first pass need a second one.
	prod := f.C.Client(t, kgo.DefaultProduceTopic(f.Topic))
	for i := range 20 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "late %d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	all := consumeTopic(t, ctx, f, f.Parts)
	waitRows(len(all))
	tbl, err := icetable.Load(ctx, f.C.Store, f.C.Meta, tp)
	if err != nil {
		t.Fatal(err)
	}
	replaytest.CompareRecs(t, "iceberg-go scan", scanTable(t, ctx, tbl), all)
}
