package s3tier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// dirStore keeps each object in a file under root; the key is the file's
// slash-separated path relative to root.
type dirStore struct {
	root string // absolute, cleaned
}

var _ Store = (*dirStore)(nil)

// NewDirStore returns a Store that keeps objects as files under root,
// creating root if needed. Put is atomic (temporary file, fsync, rename,
// fsync of the directory), so an object survives a crash once Put returns.
// Leftover temporary files of crashed Puts are named ReservedPrefix+"*"; List
// never returns them.
func NewDirStore(root string) (Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("dir store %s: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("dir store %s: %w", abs, err)
	}
	return &dirStore{root: abs}, nil
}

func (d *dirStore) String() string { return "file://" + filepath.ToSlash(d.root) }

func (d *dirStore) path(key string) string {
	return filepath.Join(d.root, filepath.FromSlash(key))
}

func (d *dirStore) Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := d.put(ctx, key, body, size); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func (d *dirStore) put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	dst := d.path(key)
	dir := filepath.Dir(dst)
	var tmp *os.File
	// A concurrent Delete may remove an emptied parent directory between
	// mkdirAllSync and CreateTemp; a couple of attempts always win.
	for attempt := 0; ; attempt++ {
		err := d.mkdirAllSync(dir)
		if err == nil {
			tmp, err = os.CreateTemp(dir, ReservedPrefix+"*")
		}
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt >= 3 {
			return err
		}
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, ctxReader{ctx: ctx, r: body})
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("body has %d bytes, size says %d", n, size)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	committed = true
	return syncDir(dir)
}

// mkdirAllSync creates dir and its missing parents below root, syncing each
// parent so the new entries are durable.
func (d *dirStore) mkdirAllSync(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is an object, not a directory", dir)
		}
		return nil
	}
	rel, err := filepath.Rel(d.root, dir)
	if err != nil {
		return err
	}
	cur := d.root
	for seg := range strings.SplitSeq(rel, string(filepath.Separator)) {
		next := filepath.Join(cur, seg)
		err := os.Mkdir(next, 0o755)
		switch {
		case err == nil:
			if err := syncDir(cur); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
			// Another Put created it, or it is an object (rename will fail).
		default:
			return err
		}
		cur = next
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// open opens key's file, returning a wrapped ErrNotFound when it is missing
// or is a directory.
func (d *dirStore) open(key string) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(d.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil, nil, fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return f, fi, nil
}

// isNotDir reports ENOTDIR, which opening "a/b" yields when "a" is a file.
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR)
}

func (d *dirStore) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	f, fi, err := d.open(key)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	n, err := checkRange(key, fi.Size(), off, length)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("get: %w", err)
	}
	return &fileRange{r: ctxReader{ctx: ctx, r: io.NewSectionReader(f, off, n)}, f: f}, nil
}

type fileRange struct {
	r io.Reader
	f *os.File
}

func (r *fileRange) Read(p []byte) (int, error) { return r.r.Read(p) }
func (r *fileRange) Close() error               { return r.f.Close() }

func (d *dirStore) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := CheckKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("head: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("head %s: %w", key, err)
	}
	fi, err := os.Stat(d.path(key))
	if err != nil || !fi.Mode().IsRegular() {
		if err == nil || errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return ObjectInfo{}, fmt.Errorf("head %s: %w", key, ErrNotFound)
		}
		return ObjectInfo{}, fmt.Errorf("head %s: %w", key, err)
	}
	return ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime()}, nil
}

func (d *dirStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	// Walk only the deepest directory the prefix names completely.
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = d.path(prefix[:i])
	}
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
				return nil // prefix directory absent, or removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(e.Name(), ReservedPrefix) {
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted while walking
		}
		if err != nil {
			return err
		}
		out = append(out, ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q in %s: %w", prefix, d, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (d *dirStore) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	p := d.path(key)
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return nil // a directory is a prefix, not an object
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	dir := filepath.Dir(p)
	if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	// Remove emptied parents, best effort: a failure only leaves a directory.
	for dir != d.root && strings.HasPrefix(dir, d.root) {
		if os.Remove(dir) != nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	return nil
}

// ctxReader fails reads once ctx is done, so long copies stop promptly.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
