package agent_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent/agenttest"
)

// TestDeleteRecords proves DeleteRecords through kadm against two agents:
// the low watermark moves, ListOffsets earliest follows on the other agent,
// a fetch below it gets OFFSET_OUT_OF_RANGE (a consumer resetting to the
// earliest offset reads only what is left), an offset past the end is
// refused, and an offset below the start changes nothing.
func TestDeleteRecords(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	a := kadm.NewClient(c.Client(t, pinnedDialer(c.Agents[0].Addr)))
	b := kadm.NewClient(c.Client(t, pinnedDialer(c.Agents[1].Addr)))
	const topic = "trim"
	if _, err := a.CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	prod := c.Client(t, kgo.DefaultProduceTopic(topic))
	for i := range 10 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	del := func(off int64) kadm.DeleteRecordsResponse {
		t.Helper()
		o := kadm.Offsets{}
		o.AddOffset(topic, 0, off, -1)
		rs, err := a.DeleteRecords(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := rs.Lookup(topic, 0)
		return r
	}
	if r := del(6); r.Err != nil || r.LowWatermark != 6 {
		t.Fatalf("delete before 6: %+v", r)
	}
	lo, err := b.ListStartOffsets(ctx, topic)
	if o, _ := lo.Lookup(topic, 0); err != nil || o.Offset != 6 {
		t.Fatalf("earliest through the other agent: %+v %v, want 6", o, err)
	}
	if r := del(3); r.Err != nil || r.LowWatermark != 6 {
		t.Fatalf("delete before 3 after 6: %+v, want low watermark 6 unchanged", r)
	}
	if r := del(11); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete past the end: %+v, want OFFSET_OUT_OF_RANGE", r)
	}

	// A consumer asking for offset 0 is out of range and resets to the start.
	cons := c.Client(t, pinnedDialer(c.Agents[1].Addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []byte
	for len(got) < 4 && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < 6 {
				t.Errorf("consumed deleted offset %d", r.Offset)
			}
			got = append(got, r.Value[0])
		})
	}
	if string(got) != string([]byte{6, 7, 8, 9}) {
		t.Fatalf("consumed %v, want [6 7 8 9]", got)
	}
	if r := del(-1); r.Err != nil || r.LowWatermark != 10 {
		t.Fatalf("delete up to the high watermark: %+v", r)
	}
}
