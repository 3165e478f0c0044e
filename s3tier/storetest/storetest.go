// Package storetest is the acceptance suite every s3tier.Store passes: one
// exported Run that checks each contract written in s3tier/store.go. Run it
// from the implementation's tests, giving a constructor for fresh, empty
// stores and, when one exists, an independent Inspector of what was stored.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shale-dev/shale/s3tier"
)

// LargeSize is the size of the object used to exercise multipart uploads:
// configure the store under test with a multipart threshold (and part size)
// below it, e.g. 5 MiB for S3.
const LargeSize = 12 << 20

// Inspector is an independent view of what a Store holds, bypassing the
// Store's own code (for S3: another client reading the bucket).
type Inspector interface {
	// Object returns the bytes stored under the store-relative key, and
	// false when there is no such object.
	Object(t *testing.T, s s3tier.Store, key string) ([]byte, bool)
	// PendingUploads returns the number of unfinished multipart uploads
	// under s; 0 for stores without multipart uploads.
	PendingUploads(t *testing.T, s s3tier.Store) int
}

// Run checks every Store contract. newStore must return a fresh, empty
// store on each call; inspect may be nil.
func Run(t *testing.T, newStore func(t *testing.T) s3tier.Store, inspect Inspector) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s s3tier.Store, in Inspector)
	}{
		{"PutGet", testPutGet},
		{"Ranges", testRanges},
		{"EmptyObject", testEmptyObject},
		{"Head", testHead},
		{"List", testList},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"Overwrite", testOverwrite},
		{"PutBodyPosition", testPutBodyPosition},
		{"PutSizeMismatch", testPutSizeMismatch},
		{"InvalidKeys", testInvalidKeys},
		{"LargeObject", testLargeObject},
		{"ConcurrentPuts", testConcurrentPuts},
		{"CanceledContext", testCanceledContext},
		{"CancelDuringPut", testCancelDuringPut},
		{"CancelDuringRead", testCancelDuringRead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t), inspect)
		})
	}
}

// Data returns n deterministic pseudo-random bytes for seed.
func Data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func put(t *testing.T, s s3tier.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

func get(t *testing.T, s s3tier.Store, key string, off, length int64) []byte {
	t.Helper()
	rc, err := s.GetRange(t.Context(), key, off, length)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): %v", key, off, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): read: %v", key, off, length, err)
	}
	return b
}

// checkBytes compares without printing megabytes on failure.
func checkBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: got %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
}

func checkInspected(t *testing.T, s s3tier.Store, in Inspector, key string, want []byte) {
	t.Helper()
	if in == nil {
		return
	}
	got, ok := in.Object(t, s, key)
	if !ok {
		t.Fatalf("inspector: %q not found", key)
	}
	checkBytes(t, "inspector: "+key, got, want)
}

func checkGone(t *testing.T, s s3tier.Store, in Inspector, key string) {
	t.Helper()
	if _, err := s.Head(t.Context(), key); !s3tier.IsNotFound(err) {
		t.Fatalf("Head(%q) = %v, want not found", key, err)
	}
	if in != nil {
		if _, ok := in.Object(t, s, key); ok {
			t.Fatalf("inspector: %q exists, want none", key)
		}
	}
}

func checkNoPendingUploads(t *testing.T, s s3tier.Store, in Inspector) {
	t.Helper()
	if in == nil {
		return
	}
	if n := in.PendingUploads(t, s); n != 0 {
		t.Fatalf("%d unfinished multipart uploads left behind", n)
	}
}

// testPutGet proves a Put object reads back whole and byte-identical, and
// that Put is idempotent.
func testPutGet(t *testing.T, s s3tier.Store, in Inspector) {
	data := Data(1, 100_000)
	put(t, s, "topic/0/obj", data)
	checkBytes(t, "GetRange(0, -1)", get(t, s, "topic/0/obj", 0, -1), data)
	checkInspected(t, s, in, "topic/0/obj", data)
	put(t, s, "topic/0/obj", data) // same bytes again: harmless
	checkBytes(t, "after second Put", get(t, s, "topic/0/obj", 0, -1), data)
}

// testRanges proves GetRange returns exactly the requested bytes and rejects
// ranges outside the object with ErrInvalidRange (never not-found).
func testRanges(t *testing.T, s s3tier.Store, _ Inspector) {
	const size = 1000
	data := Data(2, size)
	put(t, s, "r", data)
	for _, tc := range []struct {
		name        string
		off, length int64
		wantErr     bool
		want        []byte
	}{
		{name: "first byte", off: 0, length: 1, want: data[:1]},
		{name: "last byte", off: size - 1, length: 1, want: data[size-1:]},
		{name: "middle", off: 100, length: 250, want: data[100:350]},
		{name: "whole exact", off: 0, length: size, want: data},
		{name: "to end", off: 400, length: -1, want: data[400:]},
		{name: "last byte to end", off: size - 1, length: -1, want: data[size-1:]},
		{name: "empty at end", off: size, length: -1, want: []byte{}},
		{name: "zero length", off: 10, length: 0, want: []byte{}},
		{name: "zero length at end", off: size, length: 0, want: []byte{}},
		{name: "negative offset", off: -1, length: 1, wantErr: true},
		{name: "past end", off: size + 1, length: -1, wantErr: true},
		{name: "past end zero length", off: size + 1, length: 0, wantErr: true},
		{name: "starts at end", off: size, length: 1, wantErr: true},
		{name: "ends past end", off: size - 10, length: 11, wantErr: true},
		{name: "longer than object", off: 0, length: size + 1, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := s.GetRange(t.Context(), "r", tc.off, tc.length)
			if tc.wantErr {
				if err == nil {
					b, rerr := io.ReadAll(rc)
					rc.Close()
					t.Fatalf("GetRange(%d, %d) = %d bytes (read error %v), want error", tc.off, tc.length, len(b), rerr)
				}
				if !errors.Is(err, s3tier.ErrInvalidRange) || s3tier.IsNotFound(err) {
					t.Fatalf("GetRange(%d, %d) error %v, want ErrInvalidRange", tc.off, tc.length, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetRange(%d, %d): %v", tc.off, tc.length, err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			checkBytes(t, "range", got, tc.want)
		})
	}
}

// testEmptyObject proves a zero-byte object is an object: listed, sized 0,
// readable as empty, and only empty ranges are valid on it.
func testEmptyObject(t *testing.T, s s3tier.Store, in Inspector) {
	put(t, s, "e/empty", nil)
	info, err := s.Head(t.Context(), "e/empty")
	if err != nil || info.Size != 0 {
		t.Fatalf("Head = %+v, %v; want size 0", info, err)
	}
	if got := get(t, s, "e/empty", 0, -1); len(got) != 0 {
		t.Fatalf("GetRange(0, -1) = %d bytes, want 0", len(got))
	}
	if got := get(t, s, "e/empty", 0, 0); len(got) != 0 {
		t.Fatalf("GetRange(0, 0) = %d bytes, want 0", len(got))
	}
	if _, err := s.GetRange(t.Context(), "e/empty", 0, 1); !errors.Is(err, s3tier.ErrInvalidRange) {
		t.Fatalf("GetRange(0, 1) error %v, want ErrInvalidRange", err)
	}
	list, err := s.List(t.Context(), "e/")
	if err != nil || len(list) != 1 || list[0].Key != "e/empty" || list[0].Size != 0 {
		t.Fatalf("List = %+v, %v; want [e/empty size 0]", list, err)
	}
	checkInspected(t, s, in, "e/empty", []byte{})
}

// testHead proves Head reports the key, size and a modification time.
func testHead(t *testing.T, s s3tier.Store, _ Inspector) {
	put(t, s, "h/obj", Data(3, 4321))
	info, err := s.Head(t.Context(), "h/obj")
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if info.Key != "h/obj" || info.Size != 4321 || info.LastModified.IsZero() {
		t.Fatalf("Head = %+v, want key h/obj, size 4321, a modification time", info)
	}
}

// testList proves List is recursive, filtered by plain string prefix
// (partial segments included) and sorted by key bytes.
func testList(t *testing.T, s s3tier.Store, _ Inspector) {
	sizes := map[string]int{
		"a/1": 1, "a/2": 2, "a/b/3": 3, "a-c": 4, "a.b": 5, "ab": 6, "b/x/y/z": 7, "b/x0": 8,
	}
	for k, n := range sizes {
		put(t, s, k, Data(uint64(n), n))
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a-c", "a.b", "a/1", "a/2", "a/b/3", "ab", "b/x/y/z", "b/x0"}},
		{"a", []string{"a-c", "a.b", "a/1", "a/2", "a/b/3", "ab"}},
		{"a/", []string{"a/1", "a/2", "a/b/3"}},
		{"a/b", []string{"a/b/3"}},
		{"a/b/", []string{"a/b/3"}},
		{"b/x", []string{"b/x/y/z", "b/x0"}},
		{"b/x/", []string{"b/x/y/z"}},
		{"b/x/y/z", []string{"b/x/y/z"}},
		{"a/1/", nil},
		{"zz", nil},
		{"nothing/here/", nil},
	} {
		list, err := s.List(t.Context(), tc.prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", tc.prefix, err)
		}
		var got []string
		for _, o := range list {
			got = append(got, o.Key)
			if int64(sizes[o.Key]) != o.Size {
				t.Errorf("List(%q): %s has size %d, want %d", tc.prefix, o.Key, o.Size, sizes[o.Key])
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

// testDelete proves Delete removes the object from Get, Head and List, is
// idempotent, and leaves the key reusable.
func testDelete(t *testing.T, s s3tier.Store, in Inspector) {
	ctx := t.Context()
	put(t, s, "d/x/1", []byte("one"))
	put(t, s, "d/y", []byte("two"))
	if err := s.Delete(ctx, "d/x/1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkGone(t, s, in, "d/x/1")
	if _, err := s.GetRange(ctx, "d/x/1", 0, -1); !s3tier.IsNotFound(err) {
		t.Fatalf("GetRange after Delete: %v, want not found", err)
	}
	if list, err := s.List(ctx, "d/"); err != nil || len(list) != 1 || list[0].Key != "d/y" {
		t.Fatalf("List after Delete = %+v, %v; want [d/y]", list, err)
	}
	for _, key := range []string{"d/x/1", "never/existed", "d/x"} {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("Delete(%q) of a missing key: %v", key, err)
		}
	}
	if err := s.Delete(ctx, "d/y"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if list, err := s.List(ctx, ""); err != nil || len(list) != 0 {
		t.Fatalf("List after deleting all = %+v, %v; want empty", list, err)
	}
	put(t, s, "d/x/1", []byte("again"))
	checkBytes(t, "re-put", get(t, s, "d/x/1", 0, -1), []byte("again"))
}

// testNotFound proves every read of a missing key fails with IsNotFound and
// names the key.
func testNotFound(t *testing.T, s s3tier.Store, _ Inspector) {
	ctx := t.Context()
	put(t, s, "nf/present", []byte("x"))
	const key = "nf/missing"
	_, errGet := s.GetRange(ctx, key, 0, -1)
	_, errRange := s.GetRange(ctx, key, 1, 5)
	_, errZero := s.GetRange(ctx, key, 0, 0)
	_, errHead := s.Head(ctx, key)
	_, errUnder := s.Head(ctx, "nf/present/below")
	for name, err := range map[string]error{
		"GetRange(0,-1)": errGet, "GetRange(1,5)": errRange, "GetRange(0,0)": errZero,
		"Head": errHead, "Head below an object": errUnder,
	} {
		if !s3tier.IsNotFound(err) {
			t.Errorf("%s: error %v, want IsNotFound", name, err)
		} else if !strings.Contains(err.Error(), "nf/") {
			t.Errorf("%s: error %q does not name the key", name, err)
		}
	}
}

// testOverwrite proves a second Put replaces the object entirely, shorter
// content included.
func testOverwrite(t *testing.T, s s3tier.Store, in Inspector) {
	long, short := Data(4, 5000), Data(5, 100)
	put(t, s, "o", long)
	put(t, s, "o", short)
	checkBytes(t, "after overwrite", get(t, s, "o", 0, -1), short)
	if info, err := s.Head(t.Context(), "o"); err != nil || info.Size != int64(len(short)) {
		t.Fatalf("Head = %+v, %v; want size %d", info, err, len(short))
	}
	checkInspected(t, s, in, "o", short)
}

// testPutBodyPosition proves Put stores the body from its current position
// to EOF, and that size < 0 means "find the length".
func testPutBodyPosition(t *testing.T, s s3tier.Store, in Inspector) {
	data := Data(6, 3000)
	r := bytes.NewReader(data)
	if _, err := r.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "pos", r, 2000); err != nil {
		t.Fatalf("Put from offset 1000: %v", err)
	}
	checkBytes(t, "Put from offset 1000", get(t, s, "pos", 0, -1), data[1000:])
	if err := s.Put(t.Context(), "unknown", bytes.NewReader(data), -1); err != nil {
		t.Fatalf("Put with size -1: %v", err)
	}
	checkBytes(t, "Put with size -1", get(t, s, "unknown", 0, -1), data)
	checkInspected(t, s, in, "unknown", data)
}

// testPutSizeMismatch proves a body whose length differs from size fails
// and stores nothing.
func testPutSizeMismatch(t *testing.T, s s3tier.Store, in Inspector) {
	data := Data(7, 1000)
	for _, size := range []int64{999, 1001} {
		key := fmt.Sprintf("mismatch/%d", size)
		if err := s.Put(t.Context(), key, bytes.NewReader(data), size); err == nil {
			t.Fatalf("Put(%d bytes, size %d) succeeded, want error", len(data), size)
		}
		checkGone(t, s, in, key)
	}
}

// testInvalidKeys proves every method rejects keys outside the key rules
// with ErrInvalidKey.
func testInvalidKeys(t *testing.T, s s3tier.Store, _ Inspector) {
	ctx := t.Context()
	for _, key := range []string{
		"", "/abs", "trailing/", "a//b", "..", "../escape", "a/../b", "a/./b", ".",
		"nul\x00", "bad\xffutf8", "a/" + s3tier.ReservedPrefix + "x", strings.Repeat("k", s3tier.MaxKeyLen+1),
	} {
		errs := map[string]error{}
		errs["Put"] = s.Put(ctx, key, bytes.NewReader([]byte("x")), 1)
		_, errs["GetRange"] = s.GetRange(ctx, key, 0, -1)
		_, errs["Head"] = s.Head(ctx, key)
		errs["Delete"] = s.Delete(ctx, key)
		for op, err := range errs {
			if !errors.Is(err, s3tier.ErrInvalidKey) {
				t.Errorf("%s(%q) error %v, want ErrInvalidKey", op, key, err)
			}
		}
	}
	for _, prefix := range []string{"/abs", "a//", "../", "a/../", "."} {
		if _, err := s.List(ctx, prefix); !errors.Is(err, s3tier.ErrInvalidKey) {
			t.Errorf("List(%q) error %v, want ErrInvalidKey", prefix, err)
		}
	}
	if list, err := s.List(ctx, ""); err != nil || len(list) != 0 {
		t.Fatalf("List after invalid Puts = %+v, %v; want empty", list, err)
	}
}

// testLargeObject proves an object above the multipart threshold is stored
// byte-identical, readable across part boundaries, with no upload left over.
func testLargeObject(t *testing.T, s s3tier.Store, in Inspector) {
	data := Data(8, LargeSize)
	put(t, s, "big/obj", data)
	if info, err := s.Head(t.Context(), "big/obj"); err != nil || info.Size != LargeSize {
		t.Fatalf("Head = %+v, %v; want size %d", info, err, LargeSize)
	}
	checkBytes(t, "whole", get(t, s, "big/obj", 0, -1), data)
	for _, off := range []int64{5<<20 - 10, 8<<20 - 10, LargeSize - 20} {
		checkBytes(t, fmt.Sprintf("range at %d", off), get(t, s, "big/obj", off, 20), data[off:off+20])
	}
	checkInspected(t, s, in, "big/obj", data)
	// A body that only reads and seeks (no ReadAt: copied a part at a
	// time), and one that reads at offsets, from a position past its start.
	plain := struct{ io.ReadSeeker }{bytes.NewReader(data)}
	if err := s.Put(t.Context(), "big/plain", plain, LargeSize); err != nil {
		t.Fatalf("Put from a plain reader: %v", err)
	}
	checkBytes(t, "plain reader", get(t, s, "big/plain", 0, -1), data)
	r := bytes.NewReader(data)
	if _, err := r.Seek(1<<20, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "big/pos", r, LargeSize-1<<20); err != nil {
		t.Fatalf("Put from offset 1 MiB: %v", err)
	}
	checkBytes(t, "from offset 1 MiB", get(t, s, "big/pos", 0, -1), data[1<<20:])
	if r.Len() != 0 {
		t.Fatalf("body left at %d bytes from its end, want at its end (as read)", r.Len())
	}
	checkNoPendingUploads(t, s, in)
}

// testConcurrentPuts proves concurrent Puts of different keys all land.
func testConcurrentPuts(t *testing.T, s s3tier.Store, _ Inspector) {
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			data := Data(uint64(100+i), 10_000+i)
			errs[i] = s.Put(t.Context(), fmt.Sprintf("conc/%02d/obj", i), bytes.NewReader(data), int64(len(data)))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	for i := range n {
		checkBytes(t, fmt.Sprint("object ", i), get(t, s, fmt.Sprintf("conc/%02d/obj", i), 0, -1), Data(uint64(100+i), 10_000+i))
	}
	if list, err := s.List(t.Context(), "conc/"); err != nil || len(list) != n {
		t.Fatalf("List = %d objects, %v; want %d", len(list), err, n)
	}
}

// testCanceledContext proves every method fails with context.Canceled on a
// canceled context, and a canceled Put stores nothing.
func testCanceledContext(t *testing.T, s s3tier.Store, in Inspector) {
	put(t, s, "c/present", []byte("x"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	errs := map[string]error{}
	errs["Put"] = s.Put(ctx, "c/new", bytes.NewReader([]byte("data")), 4)
	_, errs["GetRange"] = s.GetRange(ctx, "c/present", 0, -1)
	_, errs["Head"] = s.Head(ctx, "c/present")
	_, errs["List"] = s.List(ctx, "")
	errs["Delete"] = s.Delete(ctx, "c/present")
	for op, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with canceled context: error %v, want context.Canceled", op, err)
		}
	}
	checkGone(t, s, in, "c/new")
}

// cancelingReader cancels ctx once more than after bytes were read. Its
// count is atomic: ReadAt may run in parallel (io.ReaderAt's contract), as
// a multipart upload reading its parts in place does.
type cancelingReader struct {
	*bytes.Reader
	read   atomic.Int64
	after  int64
	cancel context.CancelFunc
}

// ReadAt counts too: a store may read the body's parts at their offsets.
func (r *cancelingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.Reader.ReadAt(p, off)
	r.count(n)
	return n, err
}

func (r *cancelingReader) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	r.count(n)
	return n, err
}

func (r *cancelingReader) count(n int) {
	if r.read.Add(int64(n)) > r.after {
		r.cancel()
	}
}

// testCancelDuringPut proves a Put canceled halfway through a large body
// fails, leaves no object (atomicity) and no unfinished upload.
func testCancelDuringPut(t *testing.T, s s3tier.Store, in Inspector) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	body := &cancelingReader{Reader: bytes.NewReader(Data(9, LargeSize)), after: LargeSize / 2, cancel: cancel}
	if err := s.Put(ctx, "cp/obj", body, LargeSize); err == nil {
		t.Fatal("Put canceled halfway succeeded, want error")
	}
	checkGone(t, s, in, "cp/obj")
	checkNoPendingUploads(t, s, in)
}

// testCancelDuringRead proves canceling the context stops a GetRange body
// that is being read.
func testCancelDuringRead(t *testing.T, s s3tier.Store, _ Inspector) {
	put(t, s, "cr/obj", Data(10, LargeSize))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rc, err := s.GetRange(ctx, "cr/obj", 0, -1)
	if err != nil {
		t.Fatalf("GetRange: %v", err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1024)); err != nil {
		t.Fatalf("read before cancel: %v", err)
	}
	cancel()
	if n, err := io.Copy(io.Discard, rc); err == nil {
		t.Fatalf("read %d more bytes after cancel without error", n)
	}
}
