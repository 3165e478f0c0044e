package lifecycle_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
)

// TestGCDeletesExactlyUnreferenced proves, with the bucket listed by an
// independent S3 client, that garbage collection deletes nothing within the
// grace period, and afterwards exactly the unreferenced objects under its
// prefixes: an upload never committed and a deleted topic's objects. A
// topic re-created under the deleted one's name sees none of its data.
func TestGCDeletesExactlyUnreferenced(t *testing.T) {
	srv := testenv.S3(t)
	cli, _ := testenv.Etcd(t)
	ctx := lcCtx(t)
	store := s3Store(ctx, t, srv, "")
	mc := srv.Minio(t)
	meta := metastore.New(cli, lcNS)
	keep, _ := meta.CreateTopic(ctx, "keep", 2, nil)
	doomed, _ := meta.CreateTopic(ctx, "doomed", 1, nil)
	e := newEngine(t, cli, store)
	ts := func(f, b int) int64 { return int64(f) }
	produceFlushes(t, e, keep, 3, 1, 10, ts)
	produceFlushes(t, e, doomed, 2, 1, 10, ts)
	put := func(key string) {
		if err := store.Put(ctx, key, bytes.NewReader([]byte("junk")), 4); err != nil {
			t.Fatal(err)
		}
	}
	put("wal/never-committed.obj")
	put("elsewhere/not-ours")
	if _, err := meta.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	_, refs := checkIndex(t, meta, store, keep)
	all := listBucket(t, mc, srv.Bucket)
	if len(all) != 3+2+2 || len(refs) != 3 {
		t.Fatalf("bucket %v, referenced %v: want 7 objects, 3 referenced", all, refs)
	}

	const grace = 10 * time.Minute
	st, err := lifecycle.CollectGarbage(ctx, store, meta, nil, time.Now(), grace, nil)
	if err != nil || st.Deleted != 0 {
		t.Fatalf("gc within the grace period: %+v, %v; want nothing deleted", st, err)
	}
	if got := listBucket(t, mc, srv.Bucket); !slices.Equal(got, all) {
		t.Fatalf("bucket changed within the grace period: %v -> %v", all, got)
	}
	st, err = lifecycle.CollectGarbage(ctx, store, meta, nil, time.Now().Add(grace+time.Minute), grace, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for k := range refs {
		want = append(want, k)
	}
	want = append(want, "elsewhere/not-ours")
	slices.Sort(want)
	if got := listBucket(t, mc, srv.Bucket); !slices.Equal(got, want) || st.Deleted != 3 {
		t.Fatalf("after gc (%+v) the bucket holds %v, want exactly %v", st, got, want)
	}
	checkIndex(t, meta, store, keep)

	// The re-created topic starts empty and reads only its own records.
	again, err := meta.CreateTopic(ctx, "doomed", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == doomed.ID {
		t.Fatal("re-created topic reuses the old id")
	}
	if off, _, err := e.ListOffset(ctx, again.ID, 0, engine.LatestTimestamp); err != nil || off != 0 {
		t.Fatalf("re-created topic: latest offset %d (%v), want 0", off, err)
	}
	produceFlushes(t, e, again, 1, 1, 3, ts)
	got := readFrom(t, newEngine(t, cli, store), again.ID, 0, 0)
	if len(got) != 1 {
		t.Fatalf("re-created topic reads %d batches, want only its own 1", len(got))
	}
}
