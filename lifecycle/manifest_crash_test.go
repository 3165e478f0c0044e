package lifecycle_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/manifest"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
)

// TestKilledManifestWriterLeavesOneThatRecovers SIGKILLs a process writing
// manifests back to back (a namespace of 4,000 keys, so a write takes a
// while) at random instants, 10 times, after one whole manifest was
// written in-process. After every kill the newest
// manifest in the bucket decodes whole and holds every key of the
// namespace, and at the end it restores into an empty namespace exactly:
// a manifest cut short by a crash never replaces the previous one.
func TestKilledManifestWriterLeavesOneThatRecovers(t *testing.T) {
	cli, endpoints := testenv.Etcd(t)
	bucket := t.TempDir()
	store, err := s3tier.NewDirStore(bucket)
	if err != nil {
		t.Fatal(err)
	}
	ctx := lcCtx(t)
	meta := metastore.New(cli, lcNS)
	if _, err := meta.CreateTopic(ctx, "kept", 3, nil); err != nil {
		t.Fatal(err)
	}
	const keys = 4000
	value := strings.Repeat("v", 200)
	for b := 0; b < keys; b += 100 { // 100 puts per transaction: a stock etcd takes 128
		var ops []clientv3.Op
		for i := b; i < b+100; i++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s/filler/%05d", lcNS, i), value))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	var want []metastore.KV
	if _, err := meta.Snapshot(ctx, 0, func(kv metastore.KV, _ string) error { want = append(want, kv); return nil }); err != nil {
		t.Fatal(err)
	}
	// The previous manifest, written whole before any kill: a kill that
	// lands before the child's first write completes (a slow start under
	// -race) must leave this one the newest, not an empty list.
	if _, err := lifecycle.WriteManifest(ctx, store, meta, "parent", time.Now(), 3*time.Second, 0, nil); err != nil {
		t.Fatal(err)
	}
	midWrite := 0
	for i := range 10 {
		passes, begun := killChild(t, i, "manifest", endpoints, bucket, time.Duration(100+rand.IntN(400))*time.Millisecond)
		if begun > passes {
			midWrite++
		}
		list, err := lifecycle.ListManifests(ctx, store)
		if err != nil || len(list) == 0 {
			t.Fatalf("kill %d: manifests %v, %v", i, list, err)
		}
		newest := list[len(list)-1].Key
		n := 0
		if _, _, err := lifecycle.ReadManifest(ctx, store, newest, manifest.Visitor{KV: func(string, []byte) error { n++; return nil }}); err != nil {
			t.Fatalf("kill %d (after %d whole writes): the newest manifest does not decode: %v", i, passes, err)
		}
		if n != len(want) {
			t.Fatalf("kill %d: newest manifest %s holds %d keys, the namespace %d", i, newest, n, len(want))
		}
	}
	if midWrite == 0 {
		t.Fatal("no kill landed mid-write: the test proved nothing about a write cut short")
	}
	list, _ := lifecycle.ListManifests(ctx, store)
	var got []metastore.KV
	if _, _, err := lifecycle.ReadManifest(ctx, store, list[len(list)-1].Key, manifest.Visitor{KV: func(k string, v []byte) error {
		got = append(got, metastore.KV{Key: k, Value: v})
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	dst := metastore.New(cli, "/restored")
	if err := dst.Restore(ctx, list[len(list)-1].Key, got, metastore.RestoreBatch{}, nil); err != nil {
		t.Fatal(err)
	}
	var back []metastore.KV
	if _, err := dst.Snapshot(ctx, 0, func(kv metastore.KV, _ string) error { back = append(back, kv); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(back) != len(want) {
		t.Fatalf("restored %d keys, want %d", len(back), len(want))
	}
	for i := range want {
		if back[i].Key != want[i].Key || (back[i].Key != "producer-id" && string(back[i].Value) != string(want[i].Value)) {
			t.Fatalf("restored key %d: %s=%q, want %s=%q", i, back[i].Key, back[i].Value, want[i].Key, want[i].Value)
		}
	}
	t.Logf("10 SIGKILLs, %d mid-write; the newest of %d manifests restored %d keys", midWrite, len(list), len(back))
}
