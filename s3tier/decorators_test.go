package s3tier_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/s3tier/storetest"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func newDir(t *testing.T) s3tier.Store {
	t.Helper()
	s, err := s3tier.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatalf("NewDirStore: %v", err)
	}
	return s
}

// TestDecoratorsMeetContract proves WithPrefix, Counting, Observed and a
// pass-through Faulty store still meet every Store contract.
func TestDecoratorsMeetContract(t *testing.T) {
	t.Run("WithPrefix", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) s3tier.Store { return s3tier.WithPrefix(newDir(t), "/p/q/") }, nil)
	})
	t.Run("Counting", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) s3tier.Store { return s3tier.Counting(newDir(t)) }, nil)
	})
	t.Run("Observed", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) s3tier.Store {
			return s3tier.Observed(newDir(t), func(string, error, time.Duration) {})
		}, nil)
	})
	t.Run("Faulty", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) s3tier.Store {
			return s3tier.Faulty(newDir(t), func(op, key string) error { return nil })
		}, nil)
	})
}

// TestObservedReportsEveryRequest proves Observed reports each operation
// once, with its error.
func TestObservedReportsEveryRequest(t *testing.T) {
	got := map[string]int{}
	errs := 0
	s := s3tier.Observed(newDir(t), func(op string, err error, _ time.Duration) {
		got[op]++
		if err != nil {
			errs++
		}
	})
	ctx := context.Background()
	if err := s.Put(ctx, "a", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	rc, err := s.GetRange(ctx, "a", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	_, _ = s.Head(ctx, "missing")
	_, _ = s.List(ctx, "")
	_ = s.Delete(ctx, "a")
	want := map[string]int{s3tier.OpPut: 1, s3tier.OpGet: 1, s3tier.OpHead: 1, s3tier.OpList: 1, s3tier.OpDelete: 1}
	for op, n := range want {
		if got[op] != n {
			t.Errorf("%s reported %d times, want %d", op, got[op], n)
		}
	}
	if errs != 1 {
		t.Errorf("%d errors reported, want 1 (the missing Head)", errs)
	}
}

// TestWithPrefix proves keys land under the prefix in the inner store and
// List strips it.
func TestWithPrefix(t *testing.T) {
	inner := newDir(t)
	s := s3tier.WithPrefix(inner, "tenant/")
	if err := s.Put(t.Context(), "a/b", bytesReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := inner.Head(t.Context(), "tenant/a/b"); err != nil {
		t.Fatalf("inner Head(tenant/a/b): %v", err)
	}
	list, err := s.List(t.Context(), "")
	if err != nil || len(list) != 1 || list[0].Key != "a/b" {
		t.Fatalf("List = %+v, %v; want [a/b]", list, err)
	}
	if info, err := s.Head(t.Context(), "a/b"); err != nil || info.Key != "a/b" {
		t.Fatalf("Head = %+v, %v; want key a/b", info, err)
	}
	if !strings.HasSuffix(s.String(), "/tenant") {
		t.Fatalf("String() = %q, want it to end in /tenant", s.String())
	}
	if got := s3tier.WithPrefix(inner, ""); got != inner {
		t.Fatal("WithPrefix with empty prefix should return the store itself")
	}
	bad := s3tier.WithPrefix(inner, "../x")
	if err := bad.Put(t.Context(), "k", bytesReader(nil), 0); !errors.Is(err, s3tier.ErrInvalidKey) {
		t.Fatalf("Put under invalid prefix: %v, want ErrInvalidKey", err)
	}
}

// TestCounting proves every call and every byte put or read is counted.
func TestCounting(t *testing.T) {
	c := s3tier.Counting(newDir(t))
	ctx := t.Context()
	data := storetest.Data(1, 1000)
	if err := c.Put(ctx, "k", bytesReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "k2", bytesReader(data), -1); err != nil {
		t.Fatal(err)
	}
	rc, err := c.GetRange(ctx, "k", 100, 300)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	_, _ = c.Head(ctx, "k")
	_, _ = c.Head(ctx, "missing")
	_, _ = c.List(ctx, "")
	_ = c.Delete(ctx, "k")
	want := s3tier.Counts{Puts: 2, Gets: 1, Heads: 2, Lists: 1, Deletes: 1, Errors: 1, BytesPut: 2000, BytesGot: 300}
	if got := c.Counts(); got != want {
		t.Fatalf("Counts() = %+v, want %+v", got, want)
	}
}

// TestFaulty proves an injected fault is returned instead of calling the
// inner store, per operation.
func TestFaulty(t *testing.T) {
	inner := newDir(t)
	boom := errors.New("boom")
	var seen []string
	s := s3tier.Faulty(inner, func(op, key string) error {
		seen = append(seen, op+" "+key)
		if op == s3tier.OpPut && key == "fail" {
			return boom
		}
		return nil
	})
	ctx := t.Context()
	if err := s.Put(ctx, "fail", bytesReader([]byte("x")), 1); !errors.Is(err, boom) {
		t.Fatalf("Put(fail) = %v, want boom", err)
	}
	if _, err := inner.Head(ctx, "fail"); !s3tier.IsNotFound(err) {
		t.Fatalf("faulted Put reached the inner store: %v", err)
	}
	if err := s.Put(ctx, "ok", bytesReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	_, _ = s.List(ctx, "o")
	want := []string{"put fail", "put ok", "list o"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("fault hook saw %q, want %q", seen, want)
	}
}

// TestCheckKey proves the key rules: what is accepted and what is not.
func TestCheckKey(t *testing.T) {
	for _, tc := range []struct {
		key     string
		wantErr bool
	}{
		{"a", false}, {"topic/0/00000000000000000042.obj", false}, {".hidden", false}, {"a..b", false},
		{"", true}, {"/a", true}, {"a/", true}, {"a//b", true}, {"a/../b", true}, {"./a", true},
		{"a\x00", true}, {"\xff", true}, {s3tier.ReservedPrefix + "x", true}, {strings.Repeat("a", s3tier.MaxKeyLen+1), true},
	} {
		err := s3tier.CheckKey(tc.key)
		if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, s3tier.ErrInvalidKey)) {
			t.Errorf("CheckKey(%q) = %v, want error %v", tc.key, err, tc.wantErr)
		}
	}
}
