package cost

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const gib = int64(1) << 30

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestComputeKnownBucket proves the estimate on a bucket of known size,
// against figures worked out by hand:
//
//	object A 64 GiB: topic a references 48 GiB, b 16 GiB -> a 48, b 16 GiB
//	object S 32 GiB: a compacted segment of a            -> a 32 GiB
//	object G  4 GiB: referenced by nothing               -> garbage
//	a ref of b to object M, absent from the listing      -> no bucket bytes
//	bucket: a 80 GiB, b 16 GiB, garbage 4 GiB, total 100 GiB, 3 objects
//	storage $/month at 0.023: a 1.84, b 0.368, garbage 0.092, total 2.30
//	requests 12,000 PUT and 600,000 GET a day; shares a 80/96 = 5/6, b 1/6:
//	  a 10,000 PUT 500,000 GET: (10000*0.005 + 500000*0.0004)/1000*30 = 7.50
//	  b  2,000 PUT 100,000 GET: (2000*0.005 + 100000*0.0004)/1000*30  = 1.50
//	  total                     (60 + 240)/1000*30                    = 9.00
//	egress 10 GiB a day: 300 GiB a month * 0.09 = 27.00
//	total $/month: 2.30 + 9.00 + 27.00 = 38.30
func TestComputeKnownBucket(t *testing.T) {
	topics := []TopicIndex{
		{Name: "b", Partitions: 1, LogicalBytes: 16*gib + 100, IndexKeys: 2},
		{Name: "a", Partitions: 2, LogicalBytes: 80 * gib, IndexKeys: 3, Segments: 1, DroppedOffsets: 7},
	}
	refs := []Ref{
		{Topic: "a", Key: "A", Bytes: 30 * gib}, {Topic: "a", Key: "A", Bytes: 18 * gib},
		{Topic: "b", Key: "A", Bytes: 16 * gib},
		{Topic: "a", Key: "S", Bytes: 32*gib - 4096},
		{Topic: "b", Key: "M", Bytes: 100},
	}
	objects := []Object{{"A", 64 * gib}, {"G", 4 * gib}, {"S", 32 * gib}}
	// Compaction replaced 10 entries by 1 segment: 5 keys now, 14 before.
	req := Requests{Known: true, PutPerDay: 12000, GetPerDay: 600000, EgressPerDay: float64(10 * gib),
		Lifecycle: Lifecycle{EntriesReplaced: 10, Segments: 1}}
	r := Compute(topics, refs, objects, req, DefaultPrices)

	if len(r.Topics) != 2 || r.Topics[0].Name != "a" || r.Topics[1].Name != "b" {
		t.Fatalf("topics %+v, want a then b", r.Topics)
	}
	a, b := r.Topics[0], r.Topics[1]
	for _, c := range []struct {
		what      string
		got, want int64
	}{
		{"a bucket", a.BucketBytes, 80 * gib}, {"b bucket", b.BucketBytes, 16 * gib},
		{"a objects", int64(a.Objects), 2}, {"b objects", int64(b.Objects), 1},
		{"a index keys", int64(a.IndexKeys), 3}, {"a segments", int64(a.Segments), 1},
		{"garbage bytes", r.Garbage.BucketBytes, 4 * gib}, {"garbage objects", int64(r.Garbage.Objects), 1},
		{"total bucket", r.Total.BucketBytes, 100 * gib}, {"total objects", int64(r.Total.Objects), 3},
		{"total logical", r.Total.LogicalBytes, 96*gib + 100}, {"total index keys", int64(r.Total.IndexKeys), 5},
		{"total dropped", r.Total.Dropped, 7}, {"keys before compaction", int64(r.IndexKeysBeforeCompaction), 14},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}
	near(t, "a put/day", a.PutPerDay, 10000)
	near(t, "a get/day", a.GetPerDay, 500000)
	near(t, "b put/day", b.PutPerDay, 2000)
	near(t, "b get/day", b.GetPerDay, 100000)
	near(t, "a storage", a.Cost.Storage, 1.84)
	near(t, "b storage", b.Cost.Storage, 0.368)
	near(t, "garbage storage", r.Garbage.Cost.Storage, 0.092)
	near(t, "total storage", r.Total.Cost.Storage, 2.30)
	near(t, "a requests", a.Cost.Requests, 7.50)
	near(t, "b requests", b.Cost.Requests, 1.50)
	near(t, "total requests", r.Total.Cost.Requests, 9.00)
	near(t, "total egress", r.Total.Cost.Egress, 27.00)
	near(t, "total", r.Total.Cost.Total, 38.30)
	near(t, "a total", a.Cost.Total, 1.84+7.50)
}

// TestComputeUnknownRequests proves that without metrics no request cost
// is invented, and an empty bucket costs nothing.
func TestComputeUnknownRequests(t *testing.T) {
	r := Compute([]TopicIndex{{Name: "t"}}, nil, nil, Requests{PutPerDay: 5}, DefaultPrices)
	if r.Total.PutPerDay != 0 || r.Total.Cost.Total != 0 || r.Topics[0].Cost.Total != 0 {
		t.Errorf("unknown requests priced: %+v", r)
	}
}

// TestParseMetricsAndPerDay proves which counters are read (put+list as
// PUT-class, get+head as GET-class, delete ignored) and both rate methods.
func TestParseMetricsAndPerDay(t *testing.T) {
	text := `# HELP shale_s3_requests_total x
shale_s3_requests_total{op="put"} 80
shale_s3_requests_total{op="list"} 20
shale_s3_requests_total{op="get"} 45
shale_s3_requests_total{op="head"} 5
shale_s3_requests_total{op="delete"} 1000
shale_bytes_out_total 4096
shale_compaction_entries_replaced_total 12
shale_compaction_segments_total 2
shale_gc_objects_deleted_total 3
shale_gc_bytes_deleted_total 3000
shale_retention_offsets_dropped_total 40
process_start_time_seconds 1.7e+09
`
	c, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.Put != 100 || c.Get != 50 || c.OutBytes != 4096 || c.Start.Unix() != 1.7e9 ||
		c.Lifecycle != (Lifecycle{EntriesReplaced: 12, Segments: 2, GCObjects: 3, GCBytes: 3000, RetentionOffsets: 40}) {
		t.Fatalf("parsed %+v", c)
	}
	// 12 hours of uptime: half a day, so twice the counts per day.
	put, get, out, ok := PerDay(c, nil, 0, c.Start.Add(12*time.Hour))
	if !ok || put != 200 || get != 100 || out != 8192 {
		t.Errorf("since start: %v %v %v %v", put, get, out, ok)
	}
	// 10 more PUTs in a 10 s window: one a second, 86,400 a day.
	later := c
	later.Put += 10
	put, get, _, ok = PerDay(c, &later, 10*time.Second, time.Time{})
	if !ok || put != 86400 || get != 0 {
		t.Errorf("window: %v %v %v", put, get, ok)
	}
	if _, _, _, ok := PerDay(Counters{Put: 1}, nil, 0, time.Now()); ok {
		t.Error("a rate without a start time or window")
	}
}

// TestLoadPrices proves a file overrides only the keys it sets, and that
// unknown keys and negative prices are refused.
func TestLoadPrices(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, err := LoadPrices(write("minio.yaml", "name: own disks\nstorage_gb_month: 0.004\nput_per_1000: 0\nget_per_1000: 0\n"), DefaultPrices)
	if err != nil || p.StorageGBMonth != 0.004 || p.PutPer1000 != 0 || p.EgressGB != 0.09 || p.Name != "own disks" {
		t.Errorf("yaml: %+v %v", p, err)
	}
	p, err = LoadPrices(write("r2.json", `{"egress_gb": 0}`), DefaultPrices)
	if err != nil || p.EgressGB != 0 || p.StorageGBMonth != 0.023 {
		t.Errorf("json: %+v %v", p, err)
	}
	if _, err := LoadPrices(write("typo.yaml", "storage_gb: 1\n"), DefaultPrices); err == nil {
		t.Error("unknown key accepted")
	}
	if _, err := LoadPrices(write("neg.yaml", "get_per_1000: -1\n"), DefaultPrices); err == nil {
		t.Error("negative price accepted")
	}
}

// FuzzParseMetrics proves any /metrics body parses without a panic.
func FuzzParseMetrics(f *testing.F) {
	f.Add("shale_s3_requests_total{op=\"put\"} 3\nprocess_start_time_seconds 1e9\n")
	f.Add("process_start_time_seconds NaN\nx\n{ }\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseMetrics(strings.NewReader(s))
	})
}

// TestComputeSharesAddUp proves that an object split three ways in
// thirds gives whole bytes that add up to its size: 100 B as 33 + 33 + 34.
func TestComputeSharesAddUp(t *testing.T) {
	topics := []TopicIndex{{Name: "x"}, {Name: "y"}, {Name: "z"}, {Name: "empty"}}
	refs := []Ref{{"x", "O", 10}, {"y", "O", 10}, {"z", "O", 10}}
	r := Compute(topics, refs, []Object{{"O", 100}}, Requests{}, DefaultPrices)
	var sum int64
	for _, u := range r.Topics {
		if u.BucketBytes < 0 || (u.Name == "empty" && u.BucketBytes != 0) {
			t.Errorf("%s: %d B", u.Name, u.BucketBytes)
		}
		sum += u.BucketBytes
	}
	if sum != 100 || r.Total.BucketBytes != 100 {
		t.Errorf("shares add up to %d, total %d; want 100", sum, r.Total.BucketBytes)
	}
}

// TestManifestsAreNotGarbage proves recovery manifests (under MetaPrefix)
// are priced apart: not garbage, in the bucket total.
func TestManifestsAreNotGarbage(t *testing.T) {
	objects := []Object{{"wal/x", 100}, {MetaPrefix + "manifests/00000000000000000001.shm", 10}}
	r := Compute(nil, nil, objects, Requests{}, DefaultPrices)
	if r.Garbage.Objects != 1 || r.Garbage.BucketBytes != 100 || r.Manifests.Objects != 1 || r.Manifests.BucketBytes != 10 || r.Total.BucketBytes != 110 {
		t.Fatalf("garbage %+v manifests %+v total %+v", r.Garbage, r.Manifests, r.Total)
	}
}
