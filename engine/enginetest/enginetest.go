// Package enginetest holds the test helpers shared by the engine's tests
// and the lifecycle jobs' (and anything else that writes through an engine
// and reads back): a local object store, reading a partition to its end as
// a consumer would, comparing batches, closing an engine when a test ends,
// and opening a crash test's child's etcd and bucket. It does not import
// engine, so the engine's own (internal) tests can use it: an engine's
// Fetch is passed in as a Fetch, an engine as a Closer.
package enginetest

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
)

// DirStore is a local-directory object store under t's temporary directory.
func DirStore(t testing.TB) s3tier.Store {
	t.Helper()
	s, err := s3tier.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Closer is an engine as Started sees it (enginetest does not import
// engine).
type Closer interface{ Close(context.Context) error }

// Started takes what engine.New returned: it fails t on err, and otherwise
// closes e when t ends (10 s for the last flush) and returns it.
func Started[E Closer](t testing.TB, e E, err error) E {
	t.Helper()
	if err != nil {
		t.Fatalf("engine.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Close(ctx)
	})
	return e
}

// ChildStores opens, in a crash test's child process (the test binary run
// again), the etcd cluster and directory bucket its parent named in the
// environment: SHALE_ETCD (endpoints, comma-separated) and SHALE_BUCKET.
// The metastore uses namespace ns.
func ChildStores(ns string) (*metastore.Store, s3tier.Store, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(os.Getenv("SHALE_ETCD"), ","), DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, nil, err
	}
	store, err := s3tier.NewDirStore(os.Getenv("SHALE_BUCKET"))
	if err != nil {
		return nil, nil, err
	}
	return metastore.New(cli, ns), store, nil
}

// Fetch is one fetch of a partition from offset, at most maxBytes: the
// record batches served (absolute offsets) and the high watermark. Adapt an
// engine with func(ctx, off, max) { r, err := e.Fetch(ctx, id, p, off, max);
// return r.Records, r.HighWatermark, err }.
type Fetch func(ctx context.Context, offset int64, maxBytes int) (records []byte, highWatermark int64, err error)

// ReadFrom fetches a partition from off to its high watermark, maxBytes per
// fetch, and returns the batches as served. It fails t on a fetch error, a
// gap or overlap between batches, an empty fetch below the high watermark,
// or a read that does not end. The first batch may start before off (a
// compacted segment's chunk does); the ones before off are skipped.
func ReadFrom(t testing.TB, fetch Fetch, off int64, maxBytes int) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out [][]byte
	for range 1 << 20 {
		records, hw, err := fetch(ctx, off, maxBytes)
		if err != nil {
			t.Fatalf("fetch @%d: %v", off, err)
		}
		if len(records) == 0 {
			if off != hw {
				t.Fatalf("fetch @%d: empty below high watermark %d", off, hw)
			}
			return out
		}
		bs, err := segment.SplitBatches(records, true)
		if err != nil {
			t.Fatalf("fetched bytes: %v", err)
		}
		for _, b := range bs {
			end := b.Header.BaseOffset + b.Header.OffsetSpan()
			if end <= off {
				continue
			}
			if b.Header.BaseOffset != off && (len(out) > 0 || b.Header.BaseOffset > off) {
				t.Fatalf("batch at %d, want %d (gap or overlap)", b.Header.BaseOffset, off)
			}
			out = append(out, append([]byte(nil), b.Raw...))
			off = end
		}
	}
	t.Fatalf("read from %d did not end", off)
	return nil
}

// SameBatches fails t unless got and want hold the same batches, byte for
// byte, in the same order.
func SameBatches(t testing.TB, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d batches, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: batch %d differs", what, i)
		}
	}
}
