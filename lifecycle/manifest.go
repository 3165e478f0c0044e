package lifecycle

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/shale-dev/shale/manifest"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
)

// Manifest defaults.
const (
	// DefaultManifestInterval is how often the manifest job snapshots the
	// namespace into the bucket: the recovery point of `shale recover`.
	DefaultManifestInterval = time.Minute
	// DefaultManifestKeep is how many manifests stay in the bucket: the
	// newest and the one before it (recover falls back to it if the newest
	// is corrupt).
	DefaultManifestKeep = 2
	// DefaultManifestPinTTL bounds one manifest write (snapshot and
	// upload): its pin, which holds garbage collection off, expires after
	// it, and the write gives up at half of it.
	DefaultManifestPinTTL = 2 * time.Minute
)

// ManifestStats describes a manifest written.
type ManifestStats struct {
	Key      string // its object key
	Revision int64  // the etcd revision of its snapshot
	Keys     int64  // etcd keys in it
	Objects  int64  // objects its index entries reference
	Bytes    int64  // its size in the bucket
	Expired  int    // older manifests deleted after it
}

// WriteManifest snapshots meta's namespace (metastore.Snapshot: every key
// not bound to a lease) into a manifest (package manifest) at
// manifest.Key(revision), then deletes all but the newest keep manifests.
//
// While it works it holds a manifest pin (metastore.PinManifest, pinTTL),
// so garbage collection deletes nothing in the meantime: an object the
// snapshot references may leave the index before the manifest is listed.
// The write gives up at pinTTL/2; if the pin is gone when the upload is
// done (it expired: a GC pass may have deleted what the manifest
// references), the manifest is deleted again and an error returned.
func WriteManifest(ctx context.Context, store s3tier.Store, meta *metastore.Store, writer string, now time.Time, pinTTL time.Duration, keep int, log *slog.Logger) (ManifestStats, error) {
	var st ManifestStats
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if pinTTL <= 0 {
		pinTTL = DefaultManifestPinTTL
	}
	if keep <= 0 {
		keep = DefaultManifestKeep
	}
	pin, err := meta.PinManifest(ctx, pinTTL)
	if err != nil {
		return st, fmt.Errorf("manifest: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = pin.Release(rctx)
	}()
	ctx, cancel := context.WithTimeout(ctx, pinTTL/2)
	defer cancel()

	h := manifest.Header{Namespace: meta.Namespace(), CreatedMs: now.UnixMilli(), Writer: writer}
	if info, err := meta.Cluster(ctx); err == nil {
		h.Bucket = info.Bucket
	} else if !errors.Is(err, metastore.ErrNoClusterRecord) {
		return st, fmt.Errorf("manifest: %w", err)
	}
	if h.Revision, err = meta.Revision(ctx); err != nil {
		return st, fmt.Errorf("manifest: %w", err)
	}
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, h)
	if err != nil {
		return st, fmt.Errorf("manifest: %w", err)
	}
	objects := make(map[string]bool)
	if _, err := meta.Snapshot(ctx, h.Revision, func(kv metastore.KV, object string) error {
		if object != "" {
			objects[object] = true
		}
		st.Keys++
		return w.KV(kv.Key, kv.Value)
	}); err != nil {
		return st, fmt.Errorf("manifest: %w", err)
	}
	for _, o := range slices.Sorted(maps.Keys(objects)) {
		if err := w.Object(o); err != nil {
			return st, fmt.Errorf("manifest: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return st, fmt.Errorf("manifest: %w", err)
	}
	st.Key, st.Revision, st.Objects, st.Bytes = manifest.Key(h.Revision), h.Revision, int64(len(objects)), int64(buf.Len())
	if err := store.Put(ctx, st.Key, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		return st, fmt.Errorf("manifest: %w", err)
	}
	if held, err := pin.Held(ctx); err != nil || !held {
		_ = store.Delete(context.WithoutCancel(ctx), st.Key)
		return st, fmt.Errorf("manifest: pin lost while writing %s (took over %v); deleted it again: %v", st.Key, pinTTL, err)
	}
	if err := meta.RecordManifest(ctx, metastore.ManifestRecord{Key: st.Key, Revision: st.Revision, CreatedMs: h.CreatedMs,
		Keys: st.Keys, Objects: st.Objects, Bytes: st.Bytes}); err != nil {
		return st, fmt.Errorf("manifest: %w", err)
	}
	list, err := ListManifests(ctx, store)
	if err != nil {
		return st, err
	}
	for len(list) > keep && list[0].Key != st.Key {
		if err := store.Delete(ctx, list[0].Key); err != nil && !s3tier.IsNotFound(err) {
			return st, fmt.Errorf("manifest: expire: %w", err)
		}
		st.Expired++
		list = list[1:]
	}
	log.Debug("manifest written", "key", st.Key, "keys", st.Keys, "objects", st.Objects, "bytes", st.Bytes, "expired", st.Expired)
	return st, nil
}

// ListManifests lists the manifests in the bucket, oldest first (other
// objects under manifest.Prefix are ignored).
func ListManifests(ctx context.Context, store s3tier.Store) ([]s3tier.ObjectInfo, error) {
	objs, err := store.List(ctx, manifest.Prefix)
	if err != nil {
		return nil, fmt.Errorf("manifest: list %s: %w", manifest.Prefix, err)
	}
	var out []s3tier.ObjectInfo
	for _, o := range objs {
		if _, ok := manifest.ParseKey(o.Key); ok {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b s3tier.ObjectInfo) int {
		ra, _ := manifest.ParseKey(a.Key)
		rb, _ := manifest.ParseKey(b.Key)
		return cmp.Compare(ra, rb)
	})
	return out, nil
}

// ReadManifest reads a whole manifest object and decodes it into v.
func ReadManifest(ctx context.Context, store s3tier.Store, key string, v manifest.Visitor) (manifest.Header, manifest.Counts, error) {
	rc, err := store.GetRange(ctx, key, 0, -1)
	if err != nil {
		return manifest.Header{}, manifest.Counts{}, fmt.Errorf("read manifest %s: %w", key, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return manifest.Header{}, manifest.Counts{}, fmt.Errorf("read manifest %s: %w", key, err)
	}
	h, c, err := manifest.Decode(data, 0, v)
	if err != nil {
		return h, c, fmt.Errorf("manifest %s: %w", key, err)
	}
	return h, c, nil
}

// manifestObjects adds to refs every object a manifest in the bucket
// references. A manifest deleted meanwhile (expired) is skipped; one that
// does not decode fails the call, so GC deletes nothing rather than what
// it might reference.
func manifestObjects(ctx context.Context, store s3tier.Store, refs map[string]bool) error {
	list, err := ListManifests(ctx, store)
	if err != nil {
		return err
	}
	for _, m := range list {
		_, _, err := ReadManifest(ctx, store, m.Key, manifest.Visitor{Object: func(k string) error { refs[k] = true; return nil }})
		if s3tier.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}
