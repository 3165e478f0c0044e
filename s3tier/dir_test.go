package s3tier_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/s3tier/storetest"
)

// dirInspector reads the files under each store's root directly.
type dirInspector struct {
	mu    sync.Mutex
	roots map[s3tier.Store]string
}

func (d *dirInspector) newStore(t *testing.T) s3tier.Store {
	t.Helper()
	root := t.TempDir()
	s, err := s3tier.NewDirStore(root)
	if err != nil {
		t.Fatalf("NewDirStore: %v", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.roots == nil {
		d.roots = map[s3tier.Store]string{}
	}
	d.roots[s] = root
	return s
}

func (d *dirInspector) Object(t *testing.T, s s3tier.Store, key string) ([]byte, bool) {
	t.Helper()
	d.mu.Lock()
	root := d.roots[s]
	d.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("inspect %s: %v", key, err)
	}
	return b, true
}

// PendingUploads counts leftover temporary files, the dir store's analogue
// of an unfinished upload.
func (d *dirInspector) PendingUploads(t *testing.T, s s3tier.Store) int {
	t.Helper()
	d.mu.Lock()
	root := d.roots[s]
	d.mu.Unlock()
	n := 0
	err := filepath.WalkDir(root, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(e.Name(), s3tier.ReservedPrefix) {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return n
}

// TestDirStore proves the local-directory store meets every Store contract,
// checked against the files on disk.
func TestDirStore(t *testing.T) {
	in := &dirInspector{}
	storetest.Run(t, in.newStore, in)
}

// TestDirStoreString proves String names the absolute root as a file URL.
func TestDirStoreString(t *testing.T) {
	root := t.TempDir()
	s, err := s3tier.NewDirStore(root)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "file://"+filepath.ToSlash(root); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

// TestDirStoreReopen proves objects survive reopening the directory, as the
// embedded default needs across restarts.
func TestDirStoreReopen(t *testing.T) {
	root := t.TempDir()
	s1, err := s3tier.NewDirStore(root)
	if err != nil {
		t.Fatal(err)
	}
	data := storetest.Data(1, 1234)
	if err := s1.Put(t.Context(), "t/0/obj", bytesReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	s2, err := s3tier.NewDirStore(root)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s2.Head(t.Context(), "t/0/obj")
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("Head after reopen = %+v, %v", info, err)
	}
}

// TestDirStoreIgnoresTempFiles proves leftovers of a crashed Put are never
// listed or read as objects.
func TestDirStoreIgnoresTempFiles(t *testing.T) {
	root := t.TempDir()
	s, err := s3tier.NewDirStore(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "t"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "t", s3tier.ReservedPrefix+"123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(t.Context(), "")
	if err != nil || len(list) != 0 {
		t.Fatalf("List = %+v, %v; want empty", list, err)
	}
}
