package icetable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	icebergio "github.com/apache/iceberg-go/io"

	"github.com/shale-dev/shale/s3tier"
)

// storeIO is iceberg-go's file IO over shale's object store: every file of
// a table (data, manifests, metadata) is read and written through the same
// s3tier.Store the agents use, so the table lives in the bucket with the
// topics, under the same credentials, decorators and metrics. Locations
// are URIs under the store's own (store.String()): base + "/" + key.
type storeIO struct {
	ctx   context.Context
	store s3tier.Store
	base  string // store.String()

	mu       sync.Mutex
	firstPut time.Time // the first write since the last commit (sinceCommit)
}

// clock is the time commits are aged by (tests move it).
var clock = time.Now

// wrote records that a write is starting, for the commit's age.
func (s *storeIO) wrote() {
	s.mu.Lock()
	if s.firstPut.IsZero() {
		s.firstPut = clock()
	}
	s.mu.Unlock()
}

// sinceCommit returns how long ago the first write since the last call
// began (0 if none), and starts counting again.
func (s *storeIO) sinceCommit() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d time.Duration
	if !s.firstPut.IsZero() {
		d = clock().Sub(s.firstPut)
	}
	s.firstPut = time.Time{}
	return d
}

var (
	_ icebergio.WriteFileIO = (*storeIO)(nil)
	_ icebergio.ReadFileIO  = (*storeIO)(nil)
)

func newStoreIO(ctx context.Context, store s3tier.Store) *storeIO {
	return &storeIO{ctx: ctx, store: store, base: baseURI(store)}
}

// baseURI is the store's URI (s3://bucket/prefix, file:///dir), without
// the endpoint String() appends in parentheses for S3 servers other than
// AWS: Iceberg metadata names files by bucket and key, the endpoint is
// the reader's configuration.
func baseURI(store s3tier.Store) string {
	s := store.String()
	if i := strings.Index(s, " ("); i >= 0 {
		s = s[:i]
	}
	return s
}

// Location is the URI of key in store, as Iceberg metadata names it.
func Location(store s3tier.Store, key string) string { return baseURI(store) + "/" + key }

// key maps a location to its store key.
func (s *storeIO) key(name string) (string, error) {
	if k, ok := strings.CutPrefix(name, s.base+"/"); ok {
		return k, nil
	}
	return "", &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("icetable: location outside %s: %w", s.base, fs.ErrInvalid)}
}

func pathErr(op, name string, err error) error {
	if s3tier.IsNotFound(err) {
		err = errors.Join(fs.ErrNotExist, err)
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

func (s *storeIO) Open(name string) (icebergio.File, error) {
	k, err := s.key(name)
	if err != nil {
		return nil, err
	}
	info, err := s.store.Head(s.ctx, k)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	f := &storeFile{io: s, key: k, info: info}
	f.SectionReader = io.NewSectionReader(f, 0, info.Size)
	return f, nil
}

func (s *storeIO) ReadFile(name string) ([]byte, error) {
	k, err := s.key(name)
	if err != nil {
		return nil, err
	}
	rc, err := s.store.GetRange(s.ctx, k, 0, -1)
	if err != nil {
		return nil, pathErr("read", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, pathErr("read", name, err)
	}
	return b, nil
}

func (s *storeIO) Remove(name string) error {
	k, err := s.key(name)
	if err != nil {
		return err
	}
	if err := s.store.Delete(s.ctx, k); err != nil {
		return pathErr("remove", name, err)
	}
	return nil
}

func (s *storeIO) WriteFile(name string, p []byte) error {
	k, err := s.key(name)
	if err != nil {
		return err
	}
	s.wrote()
	if err := s.store.Put(s.ctx, k, bytes.NewReader(p), int64(len(p))); err != nil {
		return pathErr("write", name, err)
	}
	return nil
}

// Create spools the file to a local temporary file and uploads it with one
// Put when it is closed (an object appears whole or not at all).
func (s *storeIO) Create(name string) (icebergio.FileWriter, error) {
	k, err := s.key(name)
	if err != nil {
		return nil, err
	}
	s.wrote()
	tmp, err := os.CreateTemp("", "shale-iceberg-*")
	if err != nil {
		return nil, pathErr("create", name, err)
	}
	return &spoolWriter{io: s, key: k, name: name, f: tmp}, nil
}

type spoolWriter struct {
	io        *storeIO
	key, name string
	f         *os.File
}

func (w *spoolWriter) Write(p []byte) (int, error)         { return w.f.Write(p) }
func (w *spoolWriter) ReadFrom(r io.Reader) (int64, error) { return io.Copy(w.f, r) }

func (w *spoolWriter) Close() error {
	defer os.Remove(w.f.Name())
	defer w.f.Close()
	size, err := w.f.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = w.f.Seek(0, io.SeekStart)
	}
	if err == nil {
		err = w.io.store.Put(w.io.ctx, w.key, w.f, size)
	}
	if err != nil {
		return pathErr("write", w.name, err)
	}
	return nil
}

// storeFile reads an object with ranged GETs.
type storeFile struct {
	*io.SectionReader
	io   *storeIO
	key  string
	info s3tier.ObjectInfo
}

func (f *storeFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.info.Size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), f.info.Size-off)
	rc, err := f.io.store.GetRange(f.io.ctx, f.key, off, n)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	got, err := io.ReadFull(rc, p[:n])
	if err == nil && n < int64(len(p)) {
		err = io.EOF
	}
	return got, err
}

func (f *storeFile) Close() error               { return nil }
func (f *storeFile) Stat() (fs.FileInfo, error) { return fileInfo{f.info}, nil }

type fileInfo struct{ o s3tier.ObjectInfo }

func (i fileInfo) Name() string       { return path.Base(i.o.Key) }
func (i fileInfo) Size() int64        { return i.o.Size }
func (i fileInfo) Mode() fs.FileMode  { return 0o444 }
func (i fileInfo) ModTime() time.Time { return i.o.LastModified }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }

// discard drops a file being written without uploading it.
func discard(w icebergio.FileWriter) {
	if s, ok := w.(*spoolWriter); ok {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}
