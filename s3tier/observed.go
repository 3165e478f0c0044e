package s3tier

import (
	"context"
	"io"
	"time"
)

// Observed wraps a store so every request is reported to observe with its
// operation (OpPut, OpGet, OpHead, OpList, OpDelete), its error and its
// latency (for a GET: until the body is returned, not read). It is how an
// agent's metrics count the bucket's bill without the stores knowing.
func Observed(s Store, observe func(op string, err error, d time.Duration)) Store {
	return &observedStore{inner: s, observe: observe}
}

type observedStore struct {
	inner   Store
	observe func(op string, err error, d time.Duration)
}

func (o *observedStore) done(op string, start time.Time, err error) {
	o.observe(op, err, time.Since(start))
}

func (o *observedStore) Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	start := time.Now()
	err := o.inner.Put(ctx, key, body, size)
	o.done(OpPut, start, err)
	return err
}

func (o *observedStore) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := o.inner.GetRange(ctx, key, off, length)
	o.done(OpGet, start, err)
	return rc, err
}

func (o *observedStore) Head(ctx context.Context, key string) (ObjectInfo, error) {
	start := time.Now()
	info, err := o.inner.Head(ctx, key)
	o.done(OpHead, start, err)
	return info, err
}

func (o *observedStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	start := time.Now()
	objs, err := o.inner.List(ctx, prefix)
	o.done(OpList, start, err)
	return objs, err
}

func (o *observedStore) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := o.inner.Delete(ctx, key)
	o.done(OpDelete, start, err)
	return err
}

func (o *observedStore) String() string { return o.inner.String() }
