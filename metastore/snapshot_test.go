package metastore_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
)

// TestRestoreResumesAndRaisesProducerIDs proves Restore writes a snapshot
// back key for key (in transactions of a few keys), that a restore of the
// same source runs again over a half-written namespace (resume) while
// another source is refused (ErrRestoreBusy), and that the producer ID
// counter comes back raised by RestoreGapProducerIDs.
func TestRestoreResumesAndRaisesProducerIDs(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	ctx := testCtx(t)
	src := metastore.New(cli, "/src")
	if _, err := src.CreateTopic(ctx, "t", 3, nil); err != nil {
		t.Fatal(err)
	}
	pid, err := src.AllocateProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var kvs []metastore.KV
	if _, err := src.Snapshot(ctx, 0, func(kv metastore.KV, _ string) error { kvs = append(kvs, kv); return nil }); err != nil {
		t.Fatal(err)
	}
	dst := metastore.New(cli, "/dst")
	// A first restore killed after its first transaction: simulated by
	// restoring a prefix under the marker, then failing another source.
	calls := 0
	if err := dst.Restore(ctx, "m1", kvs[:1], metastore.RestoreBatch{MaxOps: 1}, func(int) { calls++ }); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("progress called %d times", calls)
	}
	if err := dst.Restore(ctx, "m2", kvs, metastore.RestoreBatch{MaxOps: 2}, nil); err != nil {
		t.Fatalf("a finished restore left its marker: %v", err)
	}
	// Marker held by an unfinished restore of m3: m4 is refused, m3 resumes.
	if _, err := cli.Put(ctx, "/dst/recovering", "m3"); err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(ctx, "m4", kvs, metastore.RestoreBatch{}, nil); !errors.Is(err, metastore.ErrRestoreBusy) {
		t.Fatalf("restore of another source over an unfinished one: %v", err)
	}
	if err := dst.Restore(ctx, "m3", kvs, metastore.RestoreBatch{MaxOps: 2}, nil); err != nil {
		t.Fatal(err)
	}
	if m, err := dst.RecoveringMarker(ctx); err != nil || m != "" {
		t.Fatalf("marker after the resumed restore: %q %v", m, err)
	}
	var back []metastore.KV
	if _, err := dst.Snapshot(ctx, 0, func(kv metastore.KV, _ string) error { back = append(back, kv); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(back) != len(kvs) {
		t.Fatalf("restored %d keys, snapshot had %d", len(back), len(kvs))
	}
	for i := range kvs {
		if back[i].Key != kvs[i].Key {
			t.Fatalf("key %d: %s, want %s", i, back[i].Key, kvs[i].Key)
		}
		if kvs[i].Key == "producer-id" {
			was, _ := strconv.ParseInt(string(kvs[i].Value), 10, 64)
			now, _ := strconv.ParseInt(string(back[i].Value), 10, 64)
			if now != was+metastore.RestoreGapProducerIDs || was <= pid {
				t.Fatalf("producer-id %d restored as %d (handed out %d)", was, now, pid)
			}
		} else if string(back[i].Value) != string(kvs[i].Value) {
			t.Fatalf("%s: %q, want %q", kvs[i].Key, back[i].Value, kvs[i].Value)
		}
	}
	if next, err := dst.AllocateProducerID(ctx); err != nil || next <= pid {
		t.Fatalf("first producer ID after restore %d (%v), one before was %d", next, err, pid)
	}
}

// TestSnapshotKeepsConsumerGroupType proves a KIP-848 group's type record
// (groups/<g>/type) is in the snapshot the manifest job writes, so a group
// rebuilt by `shale recover` is still listed as a consumer group, while
// the coordinator's leased key is not.
func TestSnapshotKeepsConsumerGroupType(t *testing.T) {
	f := newExpiryFixture(t)
	f.commit("g848", 1, time.Now(), false, time.Time{})
	if err := f.s.RecordGroupType(f.ctx, "g848", f.sess.Lease(), metastore.GroupTypeConsumer); err != nil {
		t.Fatal(err)
	}
	if err := f.s.ReleaseGroupCoordinator(f.ctx, "g848", f.sess.Lease(), time.Now()); err != nil {
		t.Fatal(err)
	}
	var kvs []metastore.KV
	if _, err := f.s.Snapshot(f.ctx, 0, func(kv metastore.KV, _ string) error { kvs = append(kvs, kv); return nil }); err != nil {
		t.Fatal(err)
	}
	dst := metastore.New(f.cli, "/restored")
	if err := dst.Restore(f.ctx, "m", kvs, metastore.RestoreBatch{}, nil); err != nil {
		t.Fatal(err)
	}
	if typ, err := dst.GroupType(f.ctx, "g848"); err != nil || typ != metastore.GroupTypeConsumer {
		t.Fatalf("restored group type %q (%v), want %q", typ, err, metastore.GroupTypeConsumer)
	}
	groups, err := dst.ListGroups(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].Name != "g848" || groups[0].Type != metastore.GroupTypeConsumer || !groups[0].HasOffsets {
		t.Fatalf("restored groups %+v, want g848 listed as a consumer group with offsets", groups)
	}
}

// TestAgentsAndRestoreExcludeEachOther proves the fence between `shale
// recover` and agents: BeginRestore sets its marker only on an empty
// namespace (or resumes its own source), and RecordCluster, which every
// agent calls before it serves, refuses while the marker is set (a
// restore running or killed midway), before and after the restore has
// written the cluster record itself; a finished restore lets agents in.
func TestAgentsAndRestoreExcludeEachOther(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	ctx := testCtx(t)
	info := metastore.ClusterInfo{Bucket: "s3://b/p", CreatedMs: 1}

	// An agent first: the restore is refused, nothing written.
	busy := metastore.New(cli, "/busy")
	if _, err := busy.RecordCluster(ctx, info); err != nil {
		t.Fatal(err)
	}
	if err := busy.BeginRestore(ctx, "m1"); !errors.Is(err, metastore.ErrNotEmpty) {
		t.Fatalf("BeginRestore on a namespace an agent recorded: %v, want ErrNotEmpty", err)
	}
	if m, err := busy.RecoveringMarker(ctx); err != nil || m != "" {
		t.Fatalf("marker after a refused BeginRestore: %q %v", m, err)
	}

	// A restore first: agents are refused until it finishes.
	s := metastore.New(cli, "/r")
	if err := s.BeginRestore(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordCluster(ctx, info); !errors.Is(err, metastore.ErrRecovering) || !strings.Contains(err.Error(), "m1") {
		t.Fatalf("an agent's RecordCluster during a restore: %v, want ErrRecovering naming m1", err)
	}
	if err := s.BeginRestore(ctx, "m2"); !errors.Is(err, metastore.ErrRestoreBusy) {
		t.Fatalf("BeginRestore of another source: %v, want ErrRestoreBusy", err)
	}
	if err := s.BeginRestore(ctx, "m1"); err != nil {
		t.Fatalf("BeginRestore resuming its own source: %v", err)
	}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	kvs := []metastore.KV{{Key: metastore.ClusterKey, Value: b}, {Key: "x", Value: []byte("1")}}
	// Killed after the cluster record was written: still refused.
	if err := s.Restore(ctx, "m1", kvs[:1], metastore.RestoreBatch{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/r/recovering", "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordCluster(ctx, info); !errors.Is(err, metastore.ErrRecovering) {
		t.Fatalf("RecordCluster on a half-restored namespace holding the cluster record: %v, want ErrRecovering", err)
	}
	if err := s.Restore(ctx, "m1", kvs, metastore.RestoreBatch{}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.RecordCluster(ctx, info); err != nil || got.Bucket != info.Bucket {
		t.Fatalf("RecordCluster after the restore finished: %+v %v", got, err)
	}
}
