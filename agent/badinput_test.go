package agent_test

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/segment/segmenttest"
)

func produceReq(version int16, topic string, partition int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = version
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func produceCode(t *testing.T, rc *rawConn, req *kmsg.ProduceRequest) int16 {
	t.Helper()
	resp := rc.roundTrip(req).(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("produce response %+v", resp)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// messageV1 encodes a legacy (magic 1) message set of one record.
func messageV1(value []byte) []byte {
	var m []byte
	m = append(m, 1, 0)                                                  // magic, attributes
	m = binary.BigEndian.AppendUint64(m, uint64(time.Now().UnixMilli())) // timestamp
	m = binary.BigEndian.AppendUint32(m, 0xffffffff)                     // null key
	m = binary.BigEndian.AppendUint32(m, uint32(len(value)))
	m = append(m, value...)
	msg := binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(m))
	msg = append(msg, m...)
	set := binary.BigEndian.AppendUint64(nil, 0)
	set = binary.BigEndian.AppendUint32(set, uint32(len(msg)))
	return append(set, msg...)
}

// checkHealthy proves a normal client still produces and consumes through
// the agent at addr.
func checkHealthy(t *testing.T, c *agenttest.Cluster, addr, topic string) {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	prod := c.Client(t, pinnedDialer(addr), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	if err := prod.ProduceSync(ctx, kgo.StringRecord("still alive")).FirstErr(); err != nil {
		t.Fatalf("produce after bad input: %v", err)
	}
	cons := c.Client(t, pinnedDialer(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume after bad input: %v", ctx.Err())
		}
		found := false
		fs.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == "still alive" })
		if found {
			return
		}
	}
}

// TestBadFrames proves that malformed frames close the connection without
// allocating what they claim, and leave the agent serving other clients.
func TestBadFrames(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	addr := c.Agents[0].Addr
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	tests := []struct {
		name  string
		bytes []byte
		half  bool // close our side after writing
	}{
		{"random bytes", random(4096), true},
		{"random frame body", frame(random(512)), false},
		{"length 2 GiB", binary.BigEndian.AppendUint32(nil, 0x7fffffff), false},
		{"negative length", binary.BigEndian.AppendUint32(nil, 0x80000000), false},
		{"zero length", binary.BigEndian.AppendUint32(nil, 0), false},
		{"header cut short", frame([]byte{0, 3, 0, 1, 0, 0}), false},
		{"truncated frame", append(binary.BigEndian.AppendUint32(nil, 100), random(10)...), true},
		{"unknown API key", frame([]byte{0x03, 0xe8, 0, 0, 0, 0, 0, 1, 0xff, 0xff}), false},
		{"version unknown to kmsg", frame([]byte{0, 0, 0x7f, 0, 0, 0, 0, 1, 0xff, 0xff}), false},
		{"truncated metadata body", frame([]byte{0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0, 5}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			if err := rc.write(tc.bytes); err != nil {
				t.Fatalf("write: %v", err)
			}
			if tc.half {
				if err := rc.c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			rc.expectClosed()
			// A new connection is served.
			v := kmsg.NewPtrApiVersionsRequest()
			if resp := dialRaw(t, addr).roundTrip(v).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
				t.Fatalf("ApiVersions after bad input: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
		})
	}
	checkHealthy(t, c, addr, "healthy-frames")
}

// TestUnsupportedRequests proves requests shale does not serve get
// UNSUPPORTED_VERSION where the response can carry it, a closed connection
// otherwise, and never a hang.
func TestUnsupportedRequests(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	addr := c.Agents[0].Addr

	t.Run("api versions too new", func(t *testing.T) {
		rc := dialRaw(t, addr)
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 99 // header v2, body never parsed
		rc.corr++
		body := []byte{0, 18, 0, 99}
		body = binary.BigEndian.AppendUint32(body, uint32(rc.corr))
		body = append(body, 0xff, 0xff, 0)
		if err := rc.write(frame(body)); err != nil {
			t.Fatal(err)
		}
		corr, raw, err := rc.readFrame(false)
		if err != nil || corr != rc.corr {
			t.Fatalf("read: corr %d err %v", corr, err)
		}
		resp := kmsg.NewPtrApiVersionsResponse() // v0 format
		if err := resp.ReadFrom(raw); err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != kerr.UnsupportedVersion.Code {
			t.Fatalf("error %d, want UNSUPPORTED_VERSION", resp.ErrorCode)
		}
		found := false
		for _, k := range resp.ApiKeys {
			found = found || k.ApiKey == 18 && k.MaxVersion >= 3
		}
		if !found {
			t.Fatalf("ApiVersions missing from %+v", resp.ApiKeys)
		}
	})
	t.Run("unserved key with error field", func(t *testing.T) {
		req := kmsg.NewPtrDescribeDelegationTokenRequest()
		req.Version = 1
		resp := dialRaw(t, addr).roundTrip(req).(*kmsg.DescribeDelegationTokenResponse)
		if resp.ErrorCode != kerr.UnsupportedVersion.Code {
			t.Fatalf("DescribeDelegationToken error %d, want UNSUPPORTED_VERSION", resp.ErrorCode)
		}
	})
	t.Run("unserved key without error field", func(t *testing.T) {
		rc := dialRaw(t, addr)
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		rc.send(req)
		rc.expectClosed()
	})
	t.Run("produce v2", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.send(produceReq(2, "x", 0, nil))
		rc.expectClosed()
	})
	t.Run("fetch v3 has no error field", func(t *testing.T) {
		rc := dialRaw(t, addr)
		req := kmsg.NewPtrFetchRequest()
		req.Version = 3
		rc.send(req)
		rc.expectClosed()
	})
	checkHealthy(t, c, addr, "healthy-unsupported")
}

// TestProduceErrors proves produce problems get Kafka's error codes and
// leave the connection usable.
func TestProduceErrors(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	addr := c.Agents[0].Addr
	ctx := testCtx(t, time.Minute)
	if _, err := c.Admin(t).CreateTopic(ctx, 2, -1, nil, "bad"); err != nil {
		t.Fatal(err)
	}
	good := segmenttest.Batch(segmenttest.BatchOptions{Records: 3, Value: []byte("v"), Timestamp: time.Now().UnixMilli()})
	wrongCRC := append([]byte(nil), good...)
	wrongCRC[len(wrongCRC)-1] ^= 0xff
	huge := segmenttest.Batch(segmenttest.BatchOptions{Value: make([]byte, 1100<<10)})

	rc := dialRaw(t, addr) // one connection for all: each error leaves it usable
	tests := []struct {
		name string
		req  *kmsg.ProduceRequest
		want *kerr.Error
	}{
		{"unknown topic", produceReq(9, "no-such-topic", 0, good), kerr.UnknownTopicOrPartition},
		{"unknown partition", produceReq(9, "bad", 7, good), kerr.UnknownTopicOrPartition},
		{"negative partition", produceReq(9, "bad", -1, good), kerr.UnknownTopicOrPartition},
		{"wrong CRC", produceReq(9, "bad", 0, wrongCRC), kerr.CorruptMessage},
		{"oversized batch", produceReq(9, "bad", 0, huge), kerr.MessageTooLarge},
		{"message format v1", produceReq(9, "bad", 0, messageV1([]byte("old"))), kerr.InvalidRecord},
		{"no records", produceReq(9, "bad", 0, nil), kerr.InvalidRecord},
		{"garbage records", produceReq(9, "bad", 0, []byte("not a batch at all")), kerr.InvalidRecord}, // its "magic" byte is not 2
		{"good v3", produceReq(3, "bad", 0, good), nil},
		{"good v9", produceReq(9, "bad", 1, good), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := produceCode(t, rc, tc.req)
			if !errors.Is(kerr.ErrorForCode(got), tc.want) && !(tc.want == nil && got == 0) {
				t.Fatalf("error %v, want %v", kerr.ErrorForCode(got), tc.want)
			}
		})
	}
	t.Run("unknown topic id", func(t *testing.T) {
		req := produceReq(13, "", 0, good)
		req.Topics[0].TopicID = [16]byte{1, 2, 3}
		if got := produceCode(t, rc, req); got != kerr.UnknownTopicID.Code {
			t.Fatalf("error %v, want UNKNOWN_TOPIC_ID", kerr.ErrorForCode(got))
		}
	})
	t.Run("invalid acks", func(t *testing.T) {
		req := produceReq(9, "bad", 0, good)
		req.Acks = 2
		if got := produceCode(t, rc, req); got != kerr.InvalidRequiredAcks.Code {
			t.Fatalf("error %v, want INVALID_REQUIRED_ACKS", kerr.ErrorForCode(got))
		}
	})
	t.Run("transactional", func(t *testing.T) {
		txnBatch := segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Transactional: true, Idempotent: true, ProducerID: 4000})
		req := produceReq(9, "bad", 0, txnBatch)
		req.TransactionID = kmsg.StringPtr("txn-never-initialized")
		if got := produceCode(t, rc, req); got != kerr.InvalidProducerIDMapping.Code {
			t.Fatalf("transactional batch of an unknown transactional id: error %v, want INVALID_PRODUCER_ID_MAPPING", kerr.ErrorForCode(got))
		}
		req = produceReq(9, "bad", 0, txnBatch)
		if got := produceCode(t, rc, req); got != kerr.InvalidRecord.Code {
			t.Fatalf("transactional batch without a transactional id: error %v, want INVALID_RECORD", kerr.ErrorForCode(got))
		}
	})
	t.Run("acks=0 refused closes", func(t *testing.T) {
		rc0 := dialRaw(t, addr)
		req := produceReq(9, "no-such-topic", 0, good)
		req.Acks = 0
		rc0.send(req)
		rc0.expectClosed()
	})
	t.Run("acks=0 accepted gets no answer", func(t *testing.T) {
		rc0 := dialRaw(t, addr)
		req := produceReq(9, "bad", 0, good)
		req.Acks = 0
		rc0.send(req)
		// The next answer on the connection is the ApiVersions one.
		v := kmsg.NewPtrApiVersionsRequest()
		if resp := rc0.roundTrip(v).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
			t.Fatalf("ApiVersions error %d", resp.ErrorCode)
		}
	})
	checkHealthy(t, c, addr, "healthy-produce")
}

// TestFetchErrors proves fetch problems get Kafka's error codes.
func TestFetchErrors(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	addr := c.Agents[0].Addr
	ctx := testCtx(t, time.Minute)
	if _, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, "f"); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, addr)
	good := segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Timestamp: time.Now().UnixMilli()})
	if code := produceCode(t, rc, produceReq(9, "f", 0, good)); code != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(code))
	}
	fetch := func(topic string, partition int32, offset int64, mutate func(*kmsg.FetchRequest)) *kmsg.FetchResponse {
		req := kmsg.NewPtrFetchRequest()
		req.Version = 12
		req.MaxWaitMillis = 100
		req.MinBytes = 1
		req.MaxBytes = 1 << 20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = partition, offset, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		if mutate != nil {
			mutate(req)
		}
		return rc.roundTrip(req).(*kmsg.FetchResponse)
	}
	partCode := func(resp *kmsg.FetchResponse) int16 {
		t.Helper()
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch response %+v", resp)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := partCode(fetch("f", 0, 5, nil)); code != kerr.OffsetOutOfRange.Code {
		t.Errorf("offset past the end: %v, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(code))
	}
	if code := partCode(fetch("f", 0, -7, nil)); code != kerr.OffsetOutOfRange.Code {
		t.Errorf("negative offset: %v, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(code))
	}
	if code := partCode(fetch("nope", 0, 0, nil)); code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown topic: %v", kerr.ErrorForCode(code))
	}
	if code := partCode(fetch("f", 3, 0, nil)); code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown partition: %v", kerr.ErrorForCode(code))
	}
	resp := fetch("f", 0, 0, nil)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.HighWatermark != 2 || p.LastStableOffset != 2 || len(p.RecordBatches) == 0 || p.PreferredReadReplica != -1 {
		t.Errorf("fetch from 0: %+v", p)
	}
	resp = fetch("f", 0, 0, func(r *kmsg.FetchRequest) { r.SessionID = 42; r.SessionEpoch = 3 })
	if resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Errorf("unknown session: %v, want FETCH_SESSION_ID_NOT_FOUND", kerr.ErrorForCode(resp.ErrorCode))
	}
	resp = fetch("f", 0, 2, func(r *kmsg.FetchRequest) { r.SessionEpoch = 0 }) // asks for a session (fetch_session_test.go)
	if resp.SessionID == 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Errorf("session request: %+v", resp)
	}
}

// TestFaultHook proves the fault hook closes the connection for the keys it
// intercepts and leaves other requests alone.
func TestFaultHook(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agent: func(_ int, cfg *agent.Config) {
		cfg.FaultHook = func(key int16) error {
			if key == kmsg.Metadata.Int16() {
				return errors.New("injected")
			}
			return nil
		}
	}})
	rc := dialRaw(t, c.Agents[0].Addr)
	if resp := rc.roundTrip(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions: %d", resp.ErrorCode)
	}
	rc.send(kmsg.NewPtrMetadataRequest())
	rc.expectClosed()
}
