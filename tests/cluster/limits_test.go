package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestThousandPartitionsAtEtcdDefaultLimits proves a 1,000-partition topic
// works on an etcd at a stock server's limits (128 operations per
// transaction, 1.5 MiB per request; Start's etcd process): one record produced
// to every partition through agent 0, mostly sealed in the same objects,
// must commit in transactions the server accepts (etcd refuses a larger
// one, and the produce then fails), and agent 1 reads every record back at
// offset 0 of its partition. Committing a group's offsets for all 1,000
// partitions at once, deleting that group and deleting the topic fit too.
func TestThousandPartitionsAtEtcdDefaultLimits(t *testing.T) {
	const topic, parts = "wide", 1000
	c := Start(t, Options{Agents: 2, Args: []string{"--flush-interval", "200ms"}})
	c.CreateTopic(t, 0, topic, parts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	prod := c.Client(t, kgo.SeedBrokers(c.Addr(0)), kgo.Dialer(DialTo(c.Addr(0))), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(50*time.Millisecond))
	recs := make([]*kgo.Record, parts)
	for p := range parts {
		recs[p] = &kgo.Record{Partition: int32(p), Value: []byte(fmt.Sprintf("p%04d", p))}
	}
	// A commit etcd refuses for its size fails its produces at once
	// (UNKNOWN_SERVER_ERROR); other failures are retried, so bound the wait
	// rather than hang until the test timeout.
	produced := make(chan error, 1)
	go func() { produced <- prod.ProduceSync(ctx, recs...).FirstErr() }()
	select {
	case err := <-produced:
		if err != nil {
			t.Fatalf("produce one record to each of %d partitions: %v", parts, err)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("produce to %d partitions unanswered after 90s: a commit etcd refuses (over 128 operations or 1.5 MiB)?", parts)
	}
	for _, r := range recs {
		if r.Offset != 0 {
			t.Fatalf("partition %d: record acknowledged at offset %d, want 0", r.Partition, r.Offset)
		}
	}

	adm := kadm.NewClient(c.Client(t, kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(DialTo(c.Addr(1)))))
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ends.Each(func(o kadm.ListedOffset) {
		n++
		if o.Err != nil || o.Offset != 1 {
			t.Errorf("partition %d: end offset %d, %v through agent 1; want 1", o.Partition, o.Offset, o.Err)
		}
	})
	if n != parts {
		t.Fatalf("agent 1 listed %d partitions, want %d", n, parts)
	}
	cons := c.Client(t, kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(DialTo(c.Addr(1))),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[int32]string{}
	for len(got) < parts {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records through agent 1", len(got), parts)
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) { got[r.Partition] = string(r.Value) })
	}
	for p := range int32(parts) {
		if want := fmt.Sprintf("p%04d", p); got[p] != want {
			t.Errorf("partition %d read %q, want %q", p, got[p], want)
		}
	}

	// A group's offsets for every partition, committed in one request,
	// then the group and the topic deleted: each fits etcd's limits too.
	var offs kadm.Offsets
	for p := range int32(parts) {
		offs.Add(kadm.Offset{Topic: topic, Partition: p, At: 1, LeaderEpoch: -1})
	}
	cr, err := adm.CommitOffsets(ctx, "wide-group", offs)
	if err != nil || cr.Error() != nil {
		t.Fatalf("commit %d offsets in one request: %v %v", parts, err, cr.Error())
	}
	fetched, err := adm.FetchOffsets(ctx, "wide-group")
	if err != nil || fetched.Error() != nil {
		t.Fatalf("fetch offsets: %v %v", err, fetched.Error())
	}
	if n := len(fetched.Offsets()[topic]); n != parts {
		t.Fatalf("group has %d committed offsets, want %d", n, parts)
	}
	if dg, err := adm.DeleteGroups(ctx, "wide-group"); err != nil || dg.Error() != nil {
		t.Fatalf("delete a group with %d offsets: %v %v", parts, err, dg.Error())
	}
	if dt, err := adm.DeleteTopics(ctx, topic); err != nil || dt.Error() != nil {
		t.Fatalf("delete a %d-partition topic: %v %v", parts, err, dt.Error())
	}
}
