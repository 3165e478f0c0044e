package cluster

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestNullAndEmptyRoundTrip proves null keys, null values and null header
// values come back null, and empty ones empty, exactly as the producer sent
// them: produced through agent 0, consumed through agent 1 (a tombstone is
// not an empty value, nor a missing key an empty one).
func TestNullAndEmptyRoundTrip(t *testing.T) {
	c := Start(t, Options{Agents: 2})
	const topic = "nulls"
	c.CreateTopic(t, 0, topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sent := []*kgo.Record{
		{Key: nil, Value: []byte("null key")},
		{Key: []byte{}, Value: []byte("empty key")},
		{Key: []byte("null value"), Value: nil},
		{Key: []byte("empty value"), Value: []byte{}},
		{Key: nil, Value: nil},
		{Key: []byte("headers"), Value: []byte("v"), Headers: []kgo.RecordHeader{{Key: "null", Value: nil}, {Key: "empty", Value: []byte{}}}},
	}
	prod := c.Client(t, kgo.SeedBrokers(c.Addr(0)), kgo.Dialer(DialTo(c.Addr(0))), kgo.DefaultProduceTopic(topic))
	if err := prod.ProduceSync(ctx, sent...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons := c.Client(t, kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(DialTo(c.Addr(1))),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	for len(got) < len(sent) {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(got), len(sent))
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch: %v", fe.Err)
		}
		got = append(got, fs.Records()...)
	}
	same := func(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }
	for i, s := range sent {
		g := got[i]
		if !same(g.Key, s.Key) || !same(g.Value, s.Value) || len(g.Headers) != len(s.Headers) {
			t.Errorf("record %d: key %q (nil %v) value %q (nil %v); sent key %q (nil %v) value %q (nil %v)",
				i, g.Key, g.Key == nil, g.Value, g.Value == nil, s.Key, s.Key == nil, s.Value, s.Value == nil)
			continue
		}
		for j, h := range s.Headers {
			if g.Headers[j].Key != h.Key || !same(g.Headers[j].Value, h.Value) {
				t.Errorf("record %d header %d: %q=%q (nil %v), sent %q=%q (nil %v)", i, j,
					g.Headers[j].Key, g.Headers[j].Value, g.Headers[j].Value == nil, h.Key, h.Value, h.Value == nil)
			}
		}
	}
}
