package cli

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/s3tier"
)

// TestRecoverAfterGracefulStop proves a graceful stop loses nothing to
// recover (its final manifest holds the last records, with no periodic
// manifest after them), that recover restores them at their offsets into
// an empty namespace and the next record takes the next offset, that it
// refuses a namespace holding keys and a bucket other than the one its
// manifest names (naming both) unless --new-bucket, that --dry-run prints
// the plan per topic and changes nothing, and that a corrupt newest
// manifest is an error naming it unless --skip-corrupt, which restores the
// one before and says what is lost.
func TestRecoverAfterGracefulStop(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	etcd := strings.Join(endpoints, ",")
	start := func(ns string) *Stack {
		st, err := StartStack(context.Background(), StackOptions{
			DataDir: filepath.Join(dir, ns), EtcdEndpoints: endpoints, EtcdNamespace: ns, Bucket: bucket,
			Engine:    engine.Config{FlushInterval: 20 * time.Millisecond},
			Agent:     agent.Config{Listen: "127.0.0.1:0", AutoCreateTopics: true, DefaultPartitions: 1, AgentTTL: 5 * time.Second},
			Lifecycle: lifecycle.Config{ManifestInterval: time.Hour},
		}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	stop := func(st *Stack) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st := start("/shale")
	if _, errs, code := run(t, "a\nb\nc\n", "produce", "-b", st.Agent.Addr().String(), "-t", "kept"); code != 0 {
		t.Fatalf("produce: %s", errs)
	}
	stop(st)

	recoverTo := func(ns string, extra ...string) (string, string, int) {
		return run(t, "", append([]string{"recover", "--etcd-endpoints", etcd, "--etcd-namespace", ns, "--bucket", bucket}, extra...)...)
	}
	// The bucket copied elsewhere: its manifest names the first one.
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.CopyFS(moved, os.DirFS(bucket)); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := run(t, "", "recover", "--etcd-endpoints", etcd, "--etcd-namespace", "/moved", "--bucket", moved); code == 0 ||
		!strings.Contains(errs, "was written for the bucket file://"+bucket) || !strings.Contains(errs, moved) || !strings.Contains(errs, "--new-bucket") {
		t.Fatalf("recover from a copied bucket: %d %s", code, errs)
	}
	if out, errs, code := run(t, "", "recover", "--etcd-endpoints", etcd, "--etcd-namespace", "/moved", "--bucket", moved, "--new-bucket"); code != 0 || !hasRow(out, "kept", "1", "3", "3") {
		t.Fatalf("recover --new-bucket: %d\n%s%s", code, out, errs)
	}
	// An etcd of another cluster (the one on the copy): refused, naming both buckets.
	if _, errs, code := recoverTo("/moved"); code == 0 || !strings.Contains(errs, "the cluster of the bucket file://"+moved) ||
		!strings.Contains(errs, "recover reads the bucket file://"+bucket) {
		t.Fatalf("recover into the etcd of another cluster: %d %s", code, errs)
	}
	out, errs, code := recoverTo("/restored", "--dry-run")
	// The plan: topic kept, 1 partition, 3 records, end offset 3.
	if code != 0 || !strings.Contains(out, "would restore meta/manifests/") || !hasRow(out, "kept", "1", "3", "3") {
		t.Fatalf("recover --dry-run: %d\n%s%s", code, out, errs)
	}
	if out, _, _ := run(t, "", "status", "--etcd-endpoints", etcd, "--etcd-namespace", "/restored"); strings.Contains(out, "kept") {
		t.Fatalf("recover --dry-run wrote to etcd:\n%s", out)
	}
	out, errs, code = recoverTo("/restored")
	if code != 0 || !strings.Contains(out, "restored meta/manifests/") || !strings.Contains(out, "topics             1") || !hasRow(out, "kept", "1", "3", "3") {
		t.Fatalf("recover: %d\n%s%s", code, out, errs)
	}
	if _, errs, code := recoverTo("/restored"); code == 0 || !strings.Contains(errs, "holds") || !strings.Contains(errs, "--force") || !strings.Contains(errs, "the cluster of the bucket file://") {
		t.Fatalf("recover into a namespace holding keys: %d %s", code, errs)
	}
	st = start("/restored")
	addr := st.Agent.Addr().String()
	if _, errs, code := run(t, "d\n", "produce", "-b", addr, "-t", "kept"); code != 0 {
		t.Fatalf("produce after recover: %s", errs)
	}
	out, errs, code = run(t, "", "consume", "-b", addr, "-t", "kept", "-n", "4", "-o", "json")
	for i, v := range []string{"a", "b", "c", "d"} {
		if want := `"offset":` + string(rune('0'+i)) + `,"timestamp"`; code != 0 || !strings.Contains(strings.Split(out, "\n")[i], want) ||
			!strings.Contains(strings.Split(out, "\n")[i], `"value":"`+v+`"`) {
			t.Fatalf("consume after recover (record %d: %s at offset %d): %d\n%s%s", i, v, i, code, out, errs)
		}
	}
	stop(st)
	if out, _, _ := run(t, "", "status", "--etcd-endpoints", etcd, "--etcd-namespace", "/restored"); !strings.Contains(out, "LAST MANIFEST") || strings.Contains(out, "none yet") {
		t.Fatalf("status after a graceful stop shows no manifest:\n%s", out)
	}

	store, err := s3tier.NewDirStore(bucket)
	if err != nil {
		t.Fatal(err)
	}
	list, err := lifecycle.ListManifests(context.Background(), store)
	if err != nil || len(list) < 2 {
		t.Fatalf("manifests %v %v", list, err)
	}
	newest := list[len(list)-1].Key
	path := filepath.Join(bucket, filepath.FromSlash(newest))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := recoverTo("/other"); code == 0 || !strings.Contains(errs, newest) || !strings.Contains(errs, "--skip-corrupt") {
		t.Fatalf("recover from a corrupt manifest: %d %s", code, errs)
	}
	// The manifest before the corrupt one holds the 3 records of before
	// the restart; the 4th, acknowledged after it, is reported lost.
	if out, errs, code := recoverTo("/other", "--skip-corrupt"); code != 0 || !strings.Contains(out, "skipped corrupt manifest "+newest) ||
		!strings.Contains(out, "are lost") || !hasRow(out, "kept", "1", "3", "3") {
		t.Fatalf("recover --skip-corrupt: %d\n%s%s", code, out, errs)
	}
	empty := t.TempDir()
	if _, errs, code := run(t, "", "recover", "--etcd-endpoints", etcd, "--etcd-namespace", "/none", "--bucket", empty); code == 0 || !strings.Contains(errs, "no recovery manifest") {
		t.Fatalf("recover from an empty bucket: %d %s", code, errs)
	}
}
