package agent_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
)

// sessionlessFetch is a Fetch of one partition as kafka-go's Client.Fetch
// sends it: SessionID -1, SessionEpoch -1 (FINAL_EPOCH).
func sessionlessFetch(version int16, topic string, id [16]byte, partition int32, offset int64, maxWaitMs int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = version
	req.ReplicaID = -1
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWaitMs, 1, 1<<20
	req.SessionID, req.SessionEpoch = -1, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = partition, offset, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// TestFetchesPipelinedOnOneConnection proves sessionless fetches written
// back to back on one connection, before any answer is read, are answered
// in request order, each with the records at its own offset: records
// written through one agent, fetched through another, on Fetch v7 and v18
// alternately, with a long poll at the log's end in the middle of the
// pipeline (it answers empty when its wait ends, and the fetches behind it
// are answered after it). kafka-go's Client gives each in-flight request a
// connection of its own (TestKafkaGoClientFetch); Kafka's protocol allows
// pipelining, which franz-go and librdkafka use for produce, and a server
// must answer a connection's requests in order.
func TestFetchesPipelinedOnOneConnection(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	const topic, n = "pipelined-fetch", 12
	ct, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, topic)
	if err != nil || ct.Err != nil {
		t.Fatalf("create: %v %v", err, ct.Err)
	}
	prod := c.Client(t, pinnedDialer(c.Agents[0].Addr), kgo.DefaultProduceTopic(topic))
	for i := range n { // one batch per record: a fetch at offset i starts with record i
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	rc := dialRaw(t, c.Agents[1].Addr)
	type sent struct {
		corr    int32
		version int16
		offset  int64
	}
	var pipeline []sent
	for i := range n + 1 {
		v := []int16{7, 18}[i%2]
		off, wait := int64(i), int32(100)
		if i == n/2 {
			off, wait = n, 300 // at the log's end: waits, then answers empty
		} else if i > n/2 {
			off = int64(i - 1)
		}
		pipeline = append(pipeline, sent{rc.send(sessionlessFetch(v, topic, ct.ID, 0, off, wait)), v, off})
	}
	for i, s := range pipeline {
		corr, body, err := rc.readFrame(s.version >= 12)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if corr != s.corr {
			t.Fatalf("answer %d has correlation ID %d, want %d (answers out of request order)", i, corr, s.corr)
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = s.version
		if err := resp.ReadFrom(body); err != nil {
			t.Fatalf("answer %d (v%d): %v", i, s.version, err)
		}
		if resp.ErrorCode != 0 || resp.SessionID != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("answer %d (v%d): %v, session %d, %+v", i, s.version, kerr.ErrorForCode(resp.ErrorCode), resp.SessionID, resp.Topics)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.HighWatermark != n {
			t.Fatalf("answer %d (v%d): %v, high watermark %d, want %d", i, s.version, kerr.ErrorForCode(p.ErrorCode), p.HighWatermark, n)
		}
		if s.offset == n {
			if len(p.RecordBatches) != 0 {
				t.Fatalf("answer %d: fetch at the log's end returned %d bytes", i, len(p.RecordBatches))
			}
			continue
		}
		var b kmsg.RecordBatch
		if err := b.ReadFrom(p.RecordBatches); err != nil {
			t.Fatalf("answer %d (v%d): first batch: %v (%d bytes)", i, s.version, err, len(p.RecordBatches))
		}
		if b.FirstOffset != s.offset || b.NumRecords != 1 {
			t.Fatalf("answer %d (v%d): fetch at %d starts with a batch at %d of %d records", i, s.version, s.offset, b.FirstOffset, b.NumRecords)
		}
	}
}

// TestFetchErrorAnswersNamePartitions proves a sessionless fetch (as
// kafka-go's Client.Fetch sends it) that Kafka answers with a partition
// error names the topic and partition with that error, at the top level
// NONE: an unknown topic by name (v7, v12), an unknown topic ID (v13, v18),
// a partition the topic lacks (each with offsets -1, as Kafka's
// FetchResponse.partitionResponse), and an offset past the end, so no
// client mistakes the answer for a missing topic or an empty partition.
func TestFetchErrorAnswersNamePartitions(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	ct, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, "named")
	if err != nil || ct.Err != nil {
		t.Fatalf("create: %v %v", err, ct.Err)
	}
	prod := c.Client(t, kgo.DefaultProduceTopic("named"))
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, c.Agents[0].Addr)
	// shale answers OFFSET_OUT_OF_RANGE with the log's offsets (fetch.go),
	// where Kafka's broker sends -1: not checked here.
	const anyHW = -2
	unknownID := [16]byte{1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15, 16}
	for _, tc := range []struct {
		version   int16
		topic     string
		id        [16]byte
		partition int32
		offset    int64
		want      *kerr.Error
		hw        int64
	}{
		{7, "no-such-topic", [16]byte{}, 0, 0, kerr.UnknownTopicOrPartition, -1},
		{12, "no-such-topic", [16]byte{}, 0, 0, kerr.UnknownTopicOrPartition, -1},
		{13, "", unknownID, 0, 0, kerr.UnknownTopicID, -1},
		{18, "", unknownID, 0, 0, kerr.UnknownTopicID, -1},
		{7, "named", [16]byte{}, 4, 0, kerr.UnknownTopicOrPartition, -1},
		{18, "", ct.ID, 4, 0, kerr.UnknownTopicOrPartition, -1},
		{7, "named", [16]byte{}, 0, 9, kerr.OffsetOutOfRange, anyHW},
		{18, "", ct.ID, 0, 9, kerr.OffsetOutOfRange, anyHW},
	} {
		what := fmt.Sprintf("v%d %q %x partition %d offset %d", tc.version, tc.topic, tc.id[:2], tc.partition, tc.offset)
		resp := rc.roundTrip(sessionlessFetch(tc.version, tc.topic, tc.id, tc.partition, tc.offset, 50)).(*kmsg.FetchResponse)
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("%s: top-level %v with %d topics, want NONE naming the topic", what, kerr.ErrorForCode(resp.ErrorCode), len(resp.Topics))
		}
		rt, p := resp.Topics[0], resp.Topics[0].Partitions[0]
		if tc.version >= 13 && rt.TopicID != tc.id || tc.version < 13 && rt.Topic != tc.topic || p.Partition != tc.partition {
			t.Fatalf("%s: answer names %q %x partition %d", what, rt.Topic, rt.TopicID, p.Partition)
		}
		if p.ErrorCode != tc.want.Code || tc.hw != anyHW && (p.HighWatermark != tc.hw || p.LastStableOffset != tc.hw || p.LogStartOffset != tc.hw) {
			t.Fatalf("%s: %v, offsets %d/%d/%d (high watermark, last stable, log start); want %v, %d", what, kerr.ErrorForCode(p.ErrorCode), p.HighWatermark, p.LastStableOffset, p.LogStartOffset, tc.want, tc.hw)
		}
	}
}
