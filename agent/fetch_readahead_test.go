package agent_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/segment"
)

// TestFetchReadsAheadTheNextFetch proves that an agent serving a consumer
// that replays history reads the consumer's next fetch from the bucket
// once it has answered one, before that next fetch arrives: with a
// read-ahead budget that holds one fetch of two partitions (two spans each)
// and nothing more, the spans of the second fetch are prefetched while no
// request is in flight. It also proves the budget goes to what each
// partition's fetch reads before the spans past them (no partition's
// fetch needs a foreground GET), and that the records read are exact.
func TestFetchReadsAheadTheNextFetch(t *testing.T) {
	const perPart, valueSize = 6, 10_000
	c := agenttest.Start(t, agenttest.Options{Agents: 2, Engine: func(i int, cfg *engine.Config) {
		if i == 1 {
			cfg.ReadAheadBytes = 45_000 // four spans of one 10 kB record, not five
		}
	}})
	ctx := testCtx(t, time.Minute)
	const topic = "next-fetch"
	ct, err := c.Admin(t).CreateTopic(ctx, 2, -1, nil, topic)
	if err != nil || ct.Err != nil {
		t.Fatalf("create: %v %v", err, ct.Err)
	}
	prod := c.Client(t, pinnedDialer(c.Agents[0].Addr), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	for i := range perPart {
		for p := range int32(2) {
			// One record per produce: each is its own flush, so its own span.
			v := bytes.Repeat([]byte{byte('a' + i), byte(p)}, valueSize/2)
			if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: v}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}

	rc := dialRaw(t, c.Agents[1].Addr) // an agent that did not write the topic
	eng := c.Agents[1].Engine
	fetch := func(offsets [2]int64) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.Version = 12
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 100, 1, 1<<20
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		for p, off := range offsets {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = int32(p), off, valueSize+500 // one record; the plan holds two spans
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		return rc.roundTrip(req).(*kmsg.FetchResponse)
	}
	var next [2]int64
	read := func() {
		t.Helper()
		resp := fetch(next)
		for _, rp := range resp.Topics[0].Partitions {
			if rp.ErrorCode != 0 {
				t.Fatalf("partition %d: error %d", rp.Partition, rp.ErrorCode)
			}
			bs, err := segment.SplitBatches(rp.RecordBatches, true)
			if err != nil || len(bs) == 0 {
				t.Fatalf("partition %d at %d: %d batches, %v", rp.Partition, next[rp.Partition], len(bs), err)
			}
			for _, b := range bs {
				if b.Header.BaseOffset != next[rp.Partition] {
					t.Fatalf("partition %d: batch at %d, want %d", rp.Partition, b.Header.BaseOffset, next[rp.Partition])
				}
				want := bytes.Repeat([]byte{byte('a' + next[rp.Partition]), byte(rp.Partition)}, valueSize/2)
				if !bytes.Contains(b.Raw, want) {
					t.Fatalf("partition %d offset %d: not the record produced", rp.Partition, b.Header.BaseOffset)
				}
				next[rp.Partition]++
			}
		}
	}
	read()
	// The first fetch prefetched its own spans (0 and 1 of each
	// partition); answering it started the next fetch's (2 of each).
	deadline := time.Now().Add(10 * time.Second)
	for eng.Snapshot().ReadAheadSpans < 6 {
		if time.Now().After(deadline) {
			t.Fatalf("after one fetch and no other request, %d spans read ahead, want 6 (%+v)", eng.Snapshot().ReadAheadSpans, eng.Snapshot())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for next[0] < perPart || next[1] < perPart {
		read()
	}
	if s := eng.Snapshot(); s.CacheMisses != 0 {
		t.Fatalf("%d foreground GETs: some fetch did not find its spans read ahead (%+v)", s.CacheMisses, s)
	}
}
