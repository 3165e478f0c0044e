package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/semaphore"

	"github.com/shale-dev/shale/metastore"
)

// TestReadBodyBoundedAllocation proves a frame that declares 90 MiB but
// sends 10 bytes costs far less than 90 MiB of memory.
func TestReadBodyBoundedAllocation(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, held, err := readBody(context.Background(), semaphore.NewWeighted(100<<20), strings.NewReader("0123456789"), 90<<20)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v, want unexpected EOF", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("allocated %d bytes for a 10-byte body", grew)
	}
	if held > 256<<10 {
		t.Fatalf("accounted %d bytes for a 10-byte body", held)
	}
}

// TestReadBodyMemoryFollowsBytes proves a slow client that declares a large
// frame holds request memory only for what it sent: while it trickles,
// another request can take most of the budget (before, the declared size was
// reserved up front and, the semaphore being FIFO, a second large
// declaration queued every other connection behind it). Once it sends the
// rest it waits for memory holding none, and completes when memory frees.
func TestReadBodyMemoryFollowsBytes(t *testing.T) {
	const budget, declared = 4 << 20, 3 << 20
	mem := semaphore.NewWeighted(budget)
	pr, pw := io.Pipe()
	type result struct {
		body []byte
		held int64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		b, h, err := readBody(context.Background(), mem, pr, declared)
		done <- result{b, h, err}
	}()
	if _, err := pw.Write([]byte("slow")); err != nil {
		t.Fatal(err)
	}
	// The trickler holds at most its first step: 3 MiB are still free.
	if !mem.TryAcquire(3 << 20) {
		t.Fatal("a slow 3 MiB declaration holds memory it has not received")
	}
	// It cannot grow now; it gives back what it holds and waits.
	go func() { _, _ = pw.Write(make([]byte, declared-4)) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("read completed without memory: held %d, err %v", r.held, r.err)
	default:
	}
	mem.Release(3 << 20)
	select {
	case r := <-done:
		if r.err != nil || len(r.body) != declared || r.held != declared {
			t.Fatalf("got %d bytes, held %d, err %v", len(r.body), r.held, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read never completed after memory was freed")
	}
}

// TestReadBodyAllocs proves a large frame is read with little more
// allocated than the frame itself: the buffer doubles only until an
// eighth has arrived, then takes the whole size (doubling all the way
// allocated 2x the frame, half of it a dead copy at the end).
func TestReadBodyAllocs(t *testing.T) {
	const n = 64 << 20
	r := bytes.NewReader(make([]byte, n))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, _, err := readBody(context.Background(), semaphore.NewWeighted(1<<30), r, n)
	runtime.ReadMemStats(&after)
	if err != nil || len(got) != n {
		t.Fatalf("read %d bytes, err %v", len(got), err)
	}
	grew := after.TotalAlloc - before.TotalAlloc
	t.Logf("read a %d MiB frame allocating %.2fx its size", n>>20, float64(grew)/n)
	if grew > n*13/10 {
		t.Fatalf("allocated %d MiB for a %d MiB frame, want at most 1.3x", grew>>20, n>>20)
	}
}

// TestReadBodyExact proves readBody returns exactly the declared bytes
// whatever the read sizes, and leaves the rest unread.
func TestReadBodyExact(t *testing.T) {
	for _, n := range []int{1, 1000, 256 << 10, 600 << 10} {
		data := bytes.Repeat([]byte("abcdefg"), n/7+2)
		r := bytes.NewReader(data)
		got, _, err := readBody(context.Background(), semaphore.NewWeighted(1<<30), iotest.HalfReader(r), n)
		if err != nil || !bytes.Equal(got, data[:n]) {
			t.Fatalf("n=%d: err %v, got %d bytes (equal %v)", n, err, len(got), bytes.Equal(got, data[:n]))
		}
		if r.Len() != len(data)-n {
			t.Fatalf("n=%d: read %d bytes past the body", n, len(data)-n-r.Len())
		}
	}
}

// TestValidateTopicConfig proves configs are checked by name, type and the
// limits of what shale can honour.
func TestValidateTopicConfig(t *testing.T) {
	s := func(v string) *string { return &v }
	tests := []struct {
		name    string
		value   *string
		wantErr bool
	}{
		{"retention.ms", s("-1"), false},
		{"retention.ms", s("86400000"), false},
		{"retention.ms", s("-2"), true},
		{"retention.ms", s("day"), true},
		{"retention.bytes", s("1073741824"), false},
		{"cleanup.policy", s("delete"), false},
		{"cleanup.policy", s(" delete "), false},
		{"cleanup.policy", s("delete,delete"), false},
		{"cleanup.policy", s("compact"), false},
		{"cleanup.policy", s("delete,compact"), false},
		{"cleanup.policy", s("compact, delete"), false},
		{"cleanup.policy", s("Delete"), true},
		{"cleanup.policy", s(""), true},
		{"cleanup.policy", s(","), true},
		{"cleanup.policy", s("delete,shred"), true},
		{"min.cleanable.dirty.ratio", s("0"), false},
		{"min.cleanable.dirty.ratio", s("1"), false},
		{"min.cleanable.dirty.ratio", s("0.25"), false},
		{"min.cleanable.dirty.ratio", s("1.01"), true},
		{"min.cleanable.dirty.ratio", s("-0.5"), true},
		{"min.cleanable.dirty.ratio", s("NaN"), true},
		{"min.compaction.lag.ms", s("0"), false},
		{"min.compaction.lag.ms", s("-1"), true},
		{"max.compaction.lag.ms", s("0"), true},
		{"max.compaction.lag.ms", s("9223372036854775807"), false},
		{"delete.retention.ms", s("86400000"), false},
		{"delete.retention.ms", s("-1"), true},
		{"segment.ms", s("3600000"), false},
		{"segment.bytes", s("104857600"), false},
		{"min.insync.replicas", s("2"), false},
		{"min.insync.replicas", s("0"), true},
		{"compression.type", s("producer"), false},
		{"compression.type", s("zstd"), false},
		{"compression.type", s("uncompressed"), false},
		{"compression.type", s("gzip"), false},
		{"compression.type", s("snappy"), false},
		{"compression.type", s("lz4"), false},
		{"compression.type", s("none"), true},
		{"compression.type", s("brotli"), true},
		{"compression.gzip.level", s("-1"), false},
		{"compression.gzip.level", s("9"), false},
		{"compression.gzip.level", s("0"), true},
		{"compression.gzip.level", s("10"), true},
		{"compression.lz4.level", s("17"), false},
		{"compression.lz4.level", s("18"), true},
		{"compression.zstd.level", s("-131072"), false},
		{"compression.zstd.level", s("22"), false},
		{"compression.zstd.level", s("23"), true},
		{"message.format.version", s("0.10.0"), false},
		{"message.format.version", s("2.8"), false},
		{"message.format.version", s("3.0-IV1"), false},
		{"message.format.version", s("latest"), true},
		{"remote.storage.enable", s("true"), false},
		{"local.retention.ms", s("-2"), false},
		{"local.retention.bytes", s("-3"), true},
		{"message.timestamp.type", s("CreateTime"), false},
		{"message.timestamp.type", s("LogAppendTime"), true},
		{"max.message.bytes", s("2097152"), false},
		{"max.message.bytes", s("99999999999"), true},
		{"min.cleanable.dirty.ratio", s("0.3"), false},
		{"min.cleanable.dirty.ratio", s("2"), true},
		{"preallocate", s("TRUE"), false},
		{"preallocate", s("yes"), true},
		{"segment.bytes", s("1048576"), false},
		{"no.such.config", s("1"), true},
		{"retention.ms", nil, true},
	}
	for _, tc := range tests {
		err := validateTopicConfig(tc.name, tc.value)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s=%v: err %v, want error %v", tc.name, tc.value, err, tc.wantErr)
		}
	}
}

// TestApplyIncremental proves the incremental operations and that list
// operations validate their result.
func TestApplyIncremental(t *testing.T) {
	op := func(name string, o kmsg.IncrementalAlterConfigOp, v *string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op, c.Value = name, o, v
		return c
	}
	s := func(v string) *string { return &v }
	cur := map[string]string{"retention.ms": "5", "segment.bytes": "1048576"}
	got, err := applyIncremental(cur, []kmsg.IncrementalAlterConfigsRequestResourceConfig{
		op("retention.ms", kmsg.IncrementalAlterConfigOpSet, s("10")),
		op("segment.bytes", kmsg.IncrementalAlterConfigOpDelete, nil),
		op("leader.replication.throttled.replicas", kmsg.IncrementalAlterConfigOpAppend, s("0:1,0:2")),
		op("leader.replication.throttled.replicas", kmsg.IncrementalAlterConfigOpSubtract, s("0:1")),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"retention.ms": "10", "leader.replication.throttled.replicas": "0:2"}
	if len(got) != len(want) || got["retention.ms"] != "10" || got["leader.replication.throttled.replicas"] != "0:2" {
		t.Fatalf("got %v, want %v", got, want)
	}
	if cur["retention.ms"] != "5" {
		t.Fatal("the current configs were modified")
	}
	for _, bad := range []kmsg.IncrementalAlterConfigsRequestResourceConfig{
		op("cleanup.policy", kmsg.IncrementalAlterConfigOpAppend, s("shred")),
		op("retention.ms", kmsg.IncrementalAlterConfigOpAppend, s("1")),
		op("retention.ms", kmsg.IncrementalAlterConfigOpSet, s("x")),
		op("retention.ms", 9, s("1")),
	} {
		if _, err := applyIncremental(cur, []kmsg.IncrementalAlterConfigsRequestResourceConfig{bad}); !errors.Is(err, errConfig) {
			t.Errorf("%s op %d %v: err %v, want errConfig", bad.Name, bad.Op, *bad.Value, err)
		}
	}
}

// TestLeaderFor proves consecutive partitions of a topic are spread over the
// agents and the choice is the same on every call.
func TestLeaderFor(t *testing.T) {
	agents := []metastore.AgentInfo{{NodeID: 1}, {NodeID: 2}, {NodeID: 5}}
	seen := map[int32]int{}
	for p := range int32(30) {
		l := leaderFor(agents, "orders", p)
		if l != leaderFor(agents, "orders", p) {
			t.Fatal("leaderFor is not deterministic")
		}
		seen[l]++
	}
	for _, a := range agents {
		if seen[a.NodeID] != 10 {
			t.Fatalf("leaders %v, want 10 partitions per agent", seen)
		}
	}
	if leaderFor(nil, "x", 0) != -1 {
		t.Fatal("no agents should give leader -1")
	}
}

// TestRegistry proves ApiVersions advertises exactly the registered ranges,
// all within what kmsg can decode, and that the main APIs are served from
// their record-batch-v2 versions.
func TestRegistry(t *testing.T) {
	resp := apiVersionsResponse(3)
	if len(resp.ApiKeys) != len(apis) {
		t.Fatalf("advertised %d keys, registered %d", len(resp.ApiKeys), len(apis))
	}
	for _, k := range resp.ApiKeys {
		a := apis[k.ApiKey]
		if a.minVersion != k.MinVersion || a.maxVersion != k.MaxVersion {
			t.Errorf("%s: advertised %d-%d, registered %d-%d", kmsg.NameForKey(k.ApiKey), k.MinVersion, k.MaxVersion, a.minVersion, a.maxVersion)
		}
		if k.MaxVersion > kmsg.RequestForKey(k.ApiKey).MaxVersion() {
			t.Errorf("%s: max %d beyond kmsg", kmsg.NameForKey(k.ApiKey), k.MaxVersion)
		}
	}
	for key, wantMin := range map[kmsg.Key]int16{kmsg.Produce: 3, kmsg.Fetch: 4, kmsg.ListOffsets: 1, kmsg.Metadata: 0, kmsg.ApiVersions: 0} {
		if a, ok := apis[key.Int16()]; !ok || a.minVersion != wantMin {
			t.Errorf("%s: served from %d (registered %v), want %d", key.Name(), a.minVersion, ok, wantMin)
		}
	}
}

// TestUnsupportedResponse proves an UNSUPPORTED_VERSION answer is built only
// when the response carries a top-level error code at that version.
func TestUnsupportedResponse(t *testing.T) {
	tests := []struct {
		req  kmsg.Request
		ver  int16
		want bool
	}{
		{kmsg.NewPtrFindCoordinatorRequest(), 0, true},
		{kmsg.NewPtrFindCoordinatorRequest(), 4, false}, // errors moved into the coordinator list
		{kmsg.NewPtrJoinGroupRequest(), 5, true},
		{kmsg.NewPtrFetchRequest(), 3, false}, // ErrorCode is v7+
		{kmsg.NewPtrFetchRequest(), 7, true},
		{kmsg.NewPtrOffsetCommitRequest(), 2, false},
		{kmsg.NewPtrProduceRequest(), 2, false},
	}
	for _, tc := range tests {
		tc.req.SetVersion(tc.ver)
		resp := unsupportedResponse(tc.req)
		if (resp != nil) != tc.want {
			t.Errorf("%s v%d: answered %v, want %v", kmsg.NameForKey(tc.req.Key()), tc.ver, resp != nil, tc.want)
		}
	}
}

// TestErrCode proves the error mapping.
func TestErrCode(t *testing.T) {
	log := testLogger()
	tests := []struct {
		err  error
		want int16
	}{
		{nil, 0},
		{kerr.CorruptMessage, kerr.CorruptMessage.Code},
		{errors.Join(errors.New("wrapped"), kerr.OffsetOutOfRange), kerr.OffsetOutOfRange.Code},
		{metastore.ErrTopicNotFound, kerr.UnknownTopicOrPartition.Code},
		{errors.New("etcd is down"), kerr.UnknownServerError.Code},
	}
	for _, tc := range tests {
		if got := errCode(log, "test", tc.err); got != tc.want {
			t.Errorf("errCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestRegisterRefusesMissingPermission proves an API cannot be registered
// without a permission: register panics at start-up.
func TestRegisterRefusesMissingPermission(t *testing.T) {
	key := kmsg.UnregisterBroker
	defer func() {
		delete(apis, key.Int16())
		if recover() == nil {
			t.Fatal("register accepted an API without a permission")
		}
	}()
	register(key, 0, 0, func(*Server, context.Context, *reqCtx, *kmsg.UnregisterBrokerRequest) (reply, error) {
		return reply{}, nil
	}, permission[*kmsg.UnregisterBrokerRequest]{})
}
