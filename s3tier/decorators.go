package s3tier

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
)

// WithPrefix returns a Store that keeps every key of s under prefix+"/";
// List results have the prefix stripped. Surrounding slashes of prefix are
// ignored, and an empty prefix returns s itself. An invalid prefix makes every
// call fail with ErrInvalidKey.
func WithPrefix(s Store, prefix string) Store {
	prefix = cleanPrefix(prefix)
	if prefix == "" {
		return s
	}
	return &prefixStore{inner: s, prefix: prefix, err: CheckKey(prefix)}
}

type prefixStore struct {
	inner  Store
	prefix string
	err    error // the prefix's CheckKey result
}

var _ Store = (*prefixStore)(nil)

func (p *prefixStore) full(key string) (string, error) {
	if p.err != nil {
		return "", fmt.Errorf("prefix: %w", p.err)
	}
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return joinKey(p.prefix, key), nil
}

func (p *prefixStore) Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	k, err := p.full(key)
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	return p.inner.Put(ctx, k, body, size)
}

func (p *prefixStore) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	k, err := p.full(key)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	return p.inner.GetRange(ctx, k, off, length)
}

func (p *prefixStore) Head(ctx context.Context, key string) (ObjectInfo, error) {
	k, err := p.full(key)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("head: %w", err)
	}
	info, err := p.inner.Head(ctx, k)
	info.Key = key
	return info, err
}

func (p *prefixStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if p.err != nil {
		return nil, fmt.Errorf("list: prefix: %w", p.err)
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	strip := p.prefix + "/"
	infos, err := p.inner.List(ctx, strip+prefix)
	if err != nil {
		return nil, err
	}
	for i := range infos {
		infos[i].Key = strings.TrimPrefix(infos[i].Key, strip)
	}
	return infos, nil
}

func (p *prefixStore) Delete(ctx context.Context, key string) error {
	k, err := p.full(key)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return p.inner.Delete(ctx, k)
}

func (p *prefixStore) String() string { return p.inner.String() + "/" + p.prefix }

// Counts is a snapshot of a CountingStore's counters. Calls count every call,
// failed ones included; bytes count only what was stored or read.
type Counts struct {
	Puts, Gets, Heads, Lists, Deletes int64
	Errors                            int64 // calls that returned an error
	BytesPut                          int64 // bytes of successful Puts
	BytesGot                          int64 // bytes read from GetRange bodies
}

// CountingStore counts the calls and bytes passing through it; safe for
// concurrent use. Read the counters with Counts.
type CountingStore struct {
	inner                             Store
	puts, gets, heads, lists, deletes atomic.Int64
	errors, bytesPut, bytesGot        atomic.Int64
}

var _ Store = (*CountingStore)(nil)

// Counting wraps s in a CountingStore.
func Counting(s Store) *CountingStore { return &CountingStore{inner: s} }

// Counts returns the current counters.
func (c *CountingStore) Counts() Counts {
	return Counts{
		Puts: c.puts.Load(), Gets: c.gets.Load(), Heads: c.heads.Load(),
		Lists: c.lists.Load(), Deletes: c.deletes.Load(), Errors: c.errors.Load(),
		BytesPut: c.bytesPut.Load(), BytesGot: c.bytesGot.Load(),
	}
}

func (c *CountingStore) count(err error) error {
	if err != nil {
		c.errors.Add(1)
	}
	return err
}

func (c *CountingStore) Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	c.puts.Add(1)
	if size < 0 {
		// Count the length, not the reads: retries re-read the body.
		if n, err := remaining(body); err == nil {
			size = n
		}
	}
	err := c.inner.Put(ctx, key, body, size)
	if err == nil {
		c.bytesPut.Add(max(size, 0))
	}
	return c.count(err)
}

func (c *CountingStore) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	c.gets.Add(1)
	rc, err := c.inner.GetRange(ctx, key, off, length)
	if err != nil {
		return nil, c.count(err)
	}
	return &countReader{rc: rc, n: &c.bytesGot}, nil
}

type countReader struct {
	rc io.ReadCloser
	n  *atomic.Int64
}

func (r *countReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func (r *countReader) Close() error { return r.rc.Close() }

func (c *CountingStore) Head(ctx context.Context, key string) (ObjectInfo, error) {
	c.heads.Add(1)
	info, err := c.inner.Head(ctx, key)
	return info, c.count(err)
}

func (c *CountingStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	c.lists.Add(1)
	infos, err := c.inner.List(ctx, prefix)
	return infos, c.count(err)
}

func (c *CountingStore) Delete(ctx context.Context, key string) error {
	c.deletes.Add(1)
	return c.count(c.inner.Delete(ctx, key))
}

func (c *CountingStore) String() string { return c.inner.String() }

// Faulty returns a Store that calls fault(op, key) before every operation
// (op is one of OpPut, OpGet, OpHead, OpList, OpDelete; for OpList, key is
// the prefix) and returns its error, when non-nil, instead of calling s. A
// fault on OpGet fails GetRange itself, not later reads. For tests.
func Faulty(s Store, fault func(op, key string) error) Store {
	return &faultyStore{inner: s, fault: fault}
}

type faultyStore struct {
	inner Store
	fault func(op, key string) error
}

var _ Store = (*faultyStore)(nil)

func (f *faultyStore) Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	if err := f.fault(OpPut, key); err != nil {
		return err
	}
	return f.inner.Put(ctx, key, body, size)
}

func (f *faultyStore) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := f.fault(OpGet, key); err != nil {
		return nil, err
	}
	return f.inner.GetRange(ctx, key, off, length)
}

func (f *faultyStore) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := f.fault(OpHead, key); err != nil {
		return ObjectInfo{}, err
	}
	return f.inner.Head(ctx, key)
}

func (f *faultyStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := f.fault(OpList, prefix); err != nil {
		return nil, err
	}
	return f.inner.List(ctx, prefix)
}

func (f *faultyStore) Delete(ctx context.Context, key string) error {
	if err := f.fault(OpDelete, key); err != nil {
		return err
	}
	return f.inner.Delete(ctx, key)
}

func (f *faultyStore) String() string { return f.inner.String() }
