package s3tier

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (possibly wrapped) when an object does not exist.
// Check with IsNotFound, which also recognises the implementations' native
// not-found errors.
var ErrNotFound = errors.New("s3tier: object not found")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// Store is the object store shale keeps every record byte in.
//
// Contracts, common to every implementation:
//   - Put is atomic and idempotent: a reader sees either no object or the
//     whole object, never a prefix; putting the same key twice with the same
//     bytes is harmless. Put reads body until io.EOF; size is its length in
//     bytes (used to pick single-part vs multipart upload).
//   - After Put returns nil the object is durable and visible to every
//     subsequent Get, Head and List from any process (strong read-after-write).
//   - GetRange returns exactly length bytes starting at off; length < 0 means
//     "to the end". A range past the end of the object is an error.
//     The caller closes the reader.
//   - List returns every object whose key starts with prefix, sorted by key,
//     recursively (no delimiter).
//   - Delete of a missing key is not an error (idempotent).
//   - Every method honours ctx cancellation.
//   - A missing object yields an error for which IsNotFound is true.
type Store interface {
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error
	GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	Head(ctx context.Context, key string) (ObjectInfo, error)
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	Delete(ctx context.Context, key string) error
	// String names the store for logs and errors, e.g. "s3://bucket/prefix"
	// or "file:///path". It never contains credentials.
	String() string
}

// IsNotFound reports whether err means the object does not exist.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrNotFound)
}

// Errors and key rules added to the contract above.
//
//   - Keys are slash-separated relative paths: not empty, no leading or
//     trailing "/", no empty, "." or ".." segment, no NUL byte, valid UTF-8,
//     at most MaxKeyLen bytes, and no segment starting with ReservedPrefix.
//     Every implementation rejects other keys with an error wrapping
//     ErrInvalidKey (see CheckKey), so all stores accept the same key set.
//   - A store cannot hold both "a" and "a/b" (the local-directory store and
//     POSIX-backed S3 gateways cannot represent it); shale's keys never do.
//   - GetRange requires 0 <= off <= size and, when length >= 0,
//     off+length <= size; anything else fails with an error wrapping
//     ErrInvalidRange. length == 0, or off == size with length < 0, yields an
//     empty body.
//   - Put with size < 0 means "unknown": the store finds the length itself
//     (by seeking). A body whose length differs from a non-negative size is
//     an error and stores nothing.

// ErrInvalidKey is wrapped by errors for keys outside the rules above.
var ErrInvalidKey = errors.New("s3tier: invalid key")

// ErrInvalidRange is wrapped by GetRange errors for ranges outside the object.
var ErrInvalidRange = errors.New("s3tier: invalid range")

// Operation names passed to Faulty hooks and used in error messages.
const (
	OpPut    = "put"
	OpGet    = "get"
	OpHead   = "head"
	OpList   = "list"
	OpDelete = "delete"
)
