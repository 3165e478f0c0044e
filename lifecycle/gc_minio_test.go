package lifecycle_test

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
)

// TestGCPaginatesOnMinIO proves garbage collection on MinIO sees a bucket
// of more than 1,000 keys (one S3 listing page): it deletes exactly the
// 1,100 unreferenced objects, every one, and keeps every referenced one.
func TestGCPaginatesOnMinIO(t *testing.T) {
	srv := testenv.MinIO(t)
	cli, _ := testenv.Etcd(t)
	ctx := lcCtx(t)
	store := s3Store(ctx, t, srv, "cluster")
	meta := metastore.New(cli, lcNS)
	keep, err := meta.CreateTopic(ctx, "keep", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	produceFlushes(t, newEngine(t, cli, store), keep, 3, 1, 10, func(f, b int) int64 { return int64(f) })
	const junk = 1100
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		perr error
	)
	sem := make(chan struct{}, 16)
	for i := range junk {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := store.Put(ctx, fmt.Sprintf("wal/junk-%04d.obj", i), bytes.NewReader([]byte("junk")), 4); err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if perr != nil {
		t.Fatal(perr)
	}
	_, refs := checkIndex(t, meta, store, keep)
	mc := srv.Minio(t)
	if all := listBucket(t, mc, srv.Bucket); len(all) != junk+len(refs) || len(refs) != 3 {
		t.Fatalf("bucket holds %d objects, %d referenced; want %d and 3", len(all), len(refs), junk+3)
	}
	const grace = time.Minute
	st, err := lifecycle.CollectGarbage(ctx, store, meta, nil, time.Now().Add(grace+time.Minute), grace, nil)
	if err != nil || st.Deleted != junk {
		t.Fatalf("gc: %+v, %v; want %d deleted", st, err, junk)
	}
	var want []string
	for k := range refs {
		want = append(want, "cluster/"+k)
	}
	slices.Sort(want)
	if got := listBucket(t, mc, srv.Bucket); !slices.Equal(got, want) {
		t.Fatalf("after gc the bucket holds %d objects (%.5v...), want exactly the %d referenced %v", len(got), got, len(want), want)
	}
	checkIndex(t, meta, store, keep)
}
