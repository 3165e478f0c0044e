package lifecycle_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shale-dev/shale/engine/enginetest"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/manifest"
	"github.com/shale-dev/shale/metastore"
)

// TestManifestHoldsNamespace proves a manifest holds every unleased key of
// the namespace with its value (topics, states, index entries) and the
// objects its entries reference, and none of the leased keys (the agent
// registration), and that only the newest two manifests stay.
func TestManifestHoldsNamespace(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	ctx := lcCtx(t)
	store := enginetest.DirStore(t)
	meta := metastore.New(cli, lcNS)
	tp, err := meta.CreateTopic(ctx, "m", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, cli, store) // registers nothing; the agent key below is leased
	produceFlushes(t, e, tp, 2, 1, 5, func(f, b int) int64 { return int64(f) })
	sess, err := meta.RegisterAgent(ctx, metastore.AgentInfo{NodeID: -1, Host: "h", Port: 1}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(ctx)
	_, refs := checkIndex(t, meta, store, tp)

	var st lifecycle.ManifestStats
	for range 3 {
		if st, err = lifecycle.WriteManifest(ctx, store, meta, "test", time.Now(), 0, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	list, err := lifecycle.ListManifests(ctx, store)
	if err != nil || len(list) != 2 || list[1].Key != st.Key {
		t.Fatalf("manifests %v (%v): want the newest two, ending with %s", list, err, st.Key)
	}
	var keys, objs []string
	h, c, err := lifecycle.ReadManifest(ctx, store, st.Key, manifest.Visitor{
		Object: func(k string) error { objs = append(objs, k); return nil },
		KV:     func(k string, v []byte) error { keys = append(keys, k); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if h.Revision != st.Revision || h.Namespace != lcNS || c.Keys != int64(len(keys)) {
		t.Fatalf("header %+v counts %+v", h, c)
	}
	var want []string
	for k := range refs {
		want = append(want, k)
	}
	slices.Sort(want)
	if !slices.Equal(objs, want) {
		t.Fatalf("manifest objects %v, index references %v", objs, want)
	}
	var wantKeys []string
	_, err = meta.Snapshot(ctx, 0, func(kv metastore.KV, _ string) error { wantKeys = append(wantKeys, kv.Key); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("manifest keys %v, namespace %v", keys, wantKeys)
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "agents/") || strings.HasPrefix(k, "manifest-pins/") {
			t.Fatalf("leased key %s in the manifest", k)
		}
	}
	if n := countKind(keys, metastore.KindIndex); n != 4 {
		t.Fatalf("%d index keys in the manifest, want 4", n)
	}
}

func countKind(keys []string, kind string) int {
	n := 0
	for _, k := range keys {
		if metastore.SnapshotKind(k) == kind {
			n++
		}
	}
	return n
}

// TestGCKeepsManifestObjects proves the GC rule: an object no index entry
// references any more is kept while a manifest in the bucket references
// it, is not deleted while a manifest is being written (pinned), and goes
// once the manifests referencing it have expired.
func TestGCKeepsManifestObjects(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	ctx := lcCtx(t)
	store := enginetest.DirStore(t)
	meta := metastore.New(cli, lcNS)
	tp, _ := meta.CreateTopic(ctx, "g", 1, nil)
	produceFlushes(t, newEngine(t, cli, store), tp, 1, 1, 5, func(f, b int) int64 { return 0 })
	_, refs := checkIndex(t, meta, store, tp)
	if len(refs) != 1 {
		t.Fatalf("referenced %v", refs)
	}
	if _, err := lifecycle.WriteManifest(ctx, store, meta, "test", time.Now(), 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := meta.DeleteTopic(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour) // past every grace period
	objects := func() int {
		l, err := store.List(ctx, "wal/")
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}
	gc := func() lifecycle.GCStats {
		st, err := lifecycle.CollectGarbage(ctx, store, meta, nil, later, time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := gc(); st.Deleted != 0 || objects() != 1 {
		t.Fatalf("gc deleted an object the manifest references: %+v", st)
	}
	pin, err := meta.PinManifest(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the topic's object leaves both kept manifests
		if _, err := lifecycle.WriteManifest(ctx, store, meta, "test", time.Now(), 0, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if st := gc(); st.Deleted != 0 || objects() != 1 {
		t.Fatalf("gc deleted while a manifest was pinned: %+v", st)
	}
	if err := pin.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if st := gc(); st.Deleted != 1 || objects() != 0 {
		t.Fatalf("gc after the manifests expired: %+v, %d objects left; want the object deleted", st, objects())
	}
}
