package engine

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/shale-dev/shale/segment"
)

// chunkCache is the local read cache on disk: whole objects this agent
// wrote (adopted from the spool after commit) and byte ranges it fetched
// from the bucket. Objects are immutable, so a cached byte is never stale.
// Least recently used files are evicted past the byte budget. The cache is
// wiped at start (invariant 6: nothing here cannot be re-read).
type chunkCache struct {
	dir string
	max int64

	mu    sync.Mutex
	used  int64
	lru   *list.List // of *cacheFile, front = most recent
	whole map[string]*list.Element
	parts map[rangeKey]*list.Element
}

type rangeKey struct {
	key       string
	pos, size int64
}

type cacheFile struct {
	path  string
	size  int64
	key   string
	whole bool
	rk    rangeKey
}

func newChunkCache(dir string, max int64) *chunkCache {
	return &chunkCache{dir: dir, max: max, lru: list.New(), whole: map[string]*list.Element{}, parts: map[rangeKey]*list.Element{}}
}

func (c *chunkCache) fileName(key string, suffix string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(c.dir, hex.EncodeToString(h[:12])+suffix)
}

// adoptObject links a spooled object into the cache (a hard link: the spool
// file stays usable until its owner removes it).
func (c *chunkCache) adoptObject(key, spoolPath string, size int64) {
	if size > c.max {
		return
	}
	dst := c.fileName(key, ".obj")
	_ = os.Remove(dst)
	if err := os.Link(spoolPath, dst); err != nil {
		return
	}
	c.addWhole(key, dst, size)
}

// addWhole registers the cache file dst as object key's whole content.
func (c *chunkCache) addWhole(key, dst string, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.whole[key]; ok {
		c.removeLocked(old)
	}
	c.whole[key] = c.lru.PushFront(&cacheFile{path: dst, size: size, key: key, whole: true})
	c.used += size
	c.evictLocked()
}

// putObject writes an object held in memory into the cache.
func (c *chunkCache) putObject(key string, data *segment.Pieces) {
	size := data.Size()
	if size > c.max {
		return
	}
	dst := c.fileName(key, ".obj")
	if err := writeFile(dst, data); err != nil {
		_ = os.Remove(dst)
		return
	}
	c.addWhole(key, dst, size)
}

// writeFile writes data to a new file at path.
func writeFile(path string, data io.WriterTo) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = data.WriteTo(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// read returns the bytes [pos, pos+size) of key if cached.
func (c *chunkCache) read(key string, pos, size int64) ([]byte, bool) {
	c.mu.Lock()
	var path string
	off := int64(0)
	if el, ok := c.whole[key]; ok && pos+size <= el.Value.(*cacheFile).size {
		c.lru.MoveToFront(el)
		path, off = el.Value.(*cacheFile).path, pos
	} else if el, ok := c.parts[rangeKey{key, pos, size}]; ok {
		c.lru.MoveToFront(el)
		path = el.Value.(*cacheFile).path
	}
	c.mu.Unlock()
	if path == "" {
		return nil, false
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, false // evicted meanwhile
	}
	defer f.Close()
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return nil, false
	}
	return buf, true
}

// has reports whether [pos, pos+size) of key is cached.
func (c *chunkCache) has(key string, pos, size int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.whole[key]; ok && pos+size <= el.Value.(*cacheFile).size {
		return true
	}
	_, ok := c.parts[rangeKey{key, pos, size}]
	return ok
}

// putRange caches bytes fetched from the bucket.
func (c *chunkCache) putRange(key string, pos, size int64, data []byte) {
	if size > c.max/4 {
		return
	}
	rk := rangeKey{key, pos, size}
	c.mu.Lock()
	if _, ok := c.parts[rk]; ok {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	path := c.fileName(key, fmt.Sprintf("-%d-%d.rng", pos, size))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.parts[rk]; ok {
		return
	}
	c.parts[rk] = c.lru.PushFront(&cacheFile{path: path, size: size, key: key, rk: rk})
	c.used += size
	c.evictLocked()
}

func (c *chunkCache) evictLocked() {
	for c.used > c.max {
		el := c.lru.Back()
		if el == nil {
			return
		}
		c.removeLocked(el)
	}
}

func (c *chunkCache) removeLocked(el *list.Element) {
	f := el.Value.(*cacheFile)
	c.lru.Remove(el)
	if f.whole {
		delete(c.whole, f.key)
	} else {
		delete(c.parts, f.rk)
	}
	c.used -= f.size
	_ = os.Remove(f.path)
}
