package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
)

// TestRecoverCorruptObjects proves, on MinIO, what recover does with data
// objects the manifest references that are damaged: one whose footer has a
// flipped byte (its CRC fails) and one cut short. Without --skip-corrupt
// it fails naming both objects and the flag, and restores nothing; with
// it, it restores the rest and lists, per partition, the offsets each
// object held. The partition that lost a middle range keeps its other
// records at their offsets (a consumer reading from the start skips the
// gap), the one that lost its first records starts after them, and a new
// record takes the next offset, never a lost one. It also proves
// --verify-data catches a flipped record byte that the footer check cannot
// see. recover only reads: the objects are byte for byte as damaged.
func TestRecoverCorruptObjects(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	s3 := testenv.MinIO(t)
	mc := s3.Minio(t)
	ctx := context.Background()
	etcd := strings.Join(endpoints, ",")
	bucket := "s3://" + s3.Bucket + "/c"
	s3args := []string{"--bucket", bucket, "--s3-endpoint", s3.Endpoint, "--s3-region", s3.Region,
		"--s3-access-key", s3.AccessKey, "--s3-secret-key", s3.SecretKey}
	start := func(ns string) *Stack {
		st, err := StartStack(ctx, StackOptions{
			DataDir: t.TempDir(), EtcdEndpoints: endpoints, EtcdNamespace: ns, Bucket: bucket,
			S3Endpoint: s3.Endpoint, S3Region: s3.Region, S3AccessKey: s3.AccessKey, S3SecretKey: s3.SecretKey,
			Engine:    engine.Config{FlushInterval: 20 * time.Millisecond},
			Agent:     agent.Config{Listen: "127.0.0.1:0", AutoCreateTopics: true, DefaultPartitions: 1, AgentTTL: 5 * time.Second},
			Lifecycle: lifecycle.Config{Interval: time.Hour, ManifestInterval: time.Hour},
		}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	stop := func(st *Stack) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st := start("/shale")
	addr := st.Agent.Addr().String()
	// Each produce run is flushed into an object of its own.
	for _, r := range []struct{ topic, lines string }{
		{"mid", "a\nb\nc\n"}, {"mid", "d\ne\n"}, {"mid", "f\ng\n"}, {"head", "x\ny\n"}, {"head", "z\n"},
	} {
		if _, errs, code := run(t, r.lines, "produce", "-b", addr, "-t", r.topic); code != 0 {
			t.Fatalf("produce %s: %s", r.topic, errs)
		}
	}
	objectAt := func(topic string, offset int64) string {
		tp, err := st.Meta.GetTopic(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		es, err := st.Meta.FindEntries(ctx, tp.ID, 0, offset, 1)
		if err != nil || len(es) != 1 || es[0].BaseOffset != offset {
			t.Fatalf("index of %s at %d: %+v %v", topic, offset, es, err)
		}
		return es[0].ObjectKey
	}
	midObj, headObj, goodObj := objectAt("mid", 3), objectAt("head", 0), objectAt("mid", 5)
	if midObj == headObj || midObj == objectAt("mid", 0) || midObj == goodObj {
		t.Fatalf("produce runs share objects: %s %s %s", midObj, headObj, goodObj)
	}
	stop(st)

	get := func(key string) []byte {
		o, err := mc.GetObject(ctx, s3.Bucket, "c/"+key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		b, err := io.ReadAll(o)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	put := func(key string, b []byte) {
		if _, err := mc.PutObject(ctx, s3.Bucket, "c/"+key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	midData, headData := get(midObj), get(headObj)
	midData[len(midData)-30] ^= 0xff // a footer byte: the footer CRC fails
	headData = headData[:len(headData)/2]
	put(midObj, midData)
	put(headObj, headData)

	recoverTo := func(ns string, extra ...string) (string, string, int) {
		return run(t, "", append(append([]string{"recover", "--etcd-endpoints", etcd, "--etcd-namespace", ns}, s3args...), extra...)...)
	}
	_, errs, code := recoverTo("/restored")
	if code == 0 || !strings.Contains(errs, "2 objects the manifest") || !strings.Contains(errs, midObj+": ") ||
		!strings.Contains(errs, "footer CRC mismatch") || !strings.Contains(errs, headObj+": ") || !strings.Contains(errs, "--skip-corrupt") {
		t.Fatalf("recover with corrupt objects: %d %s", code, errs)
	}
	if n, err := metastore.New(testenv.EtcdClient(t, endpoints), "/restored").CountKeys(ctx); err != nil || n != 0 {
		t.Fatalf("a failed recover wrote %d keys (%v)", n, err)
	}
	t.Logf("recover:\n%s", errs)
	out, errs, code := recoverTo("/restored", "--skip-corrupt")
	// mid lost 3-4 (of 0-6, 5 records left), head lost 0-1 (its log start
	// is now 2: 1 record left).
	if code != 0 || !strings.Contains(out, "skipped 2 corrupt or missing objects") || !hasRow(out, "mid", "0", "3-4", "2", midObj) ||
		!hasRow(out, "head", "0", "0-1", "2", headObj) || !hasRow(out, "mid", "1", "5", "7") || !hasRow(out, "head", "1", "1", "3") ||
		!strings.Contains(errs, "skipping "+midObj) {
		t.Fatalf("recover --skip-corrupt: %d\n%s%s", code, out, errs)
	}
	t.Logf("recover --skip-corrupt:\n%s%s", errs, out)
	if !bytes.Equal(get(midObj), midData) || !bytes.Equal(get(headObj), headData) {
		t.Fatal("recover modified an object")
	}

	st = start("/restored")
	addr = st.Agent.Addr().String()
	consume := func(topic, from string, n int, want ...string) {
		t.Helper()
		out, errs, code := run(t, "", "consume", "-b", addr, "-t", topic, "--from", from, "-n", fmt.Sprint(n), "-o", "json")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != len(want) {
			t.Fatalf("consume %s: %d\n%s%s", topic, code, out, errs)
		}
		for i, w := range want {
			off, v, _ := strings.Cut(w, "=")
			if !strings.Contains(lines[i], `"offset":`+off+`,`) || !strings.Contains(lines[i], `"value":"`+v+`"`) {
				t.Fatalf("consume %s record %d: %s, want offset %s value %s", topic, i, lines[i], off, v)
			}
		}
	}
	if _, errs, code := run(t, "h\n", "produce", "-b", addr, "-t", "mid"); code != 0 {
		t.Fatalf("produce after recover: %s", errs)
	}
	if _, errs, code := run(t, "w\n", "produce", "-b", addr, "-t", "head"); code != 0 {
		t.Fatalf("produce after recover: %s", errs)
	}
	consume("mid", "earliest", 6, "0=a", "1=b", "2=c", "5=f", "6=g", "7=h")
	consume("mid", "2", 3, "2=c", "5=f", "6=g")
	// A fetch at a lost offset is answered from the next record kept.
	consume("mid", "3", 3, "5=f", "6=g", "7=h")
	consume("head", "earliest", 2, "2=z", "3=w")
	stop(st)

	// A flipped record byte (the first chunk's, whose CRC the footer keeps):
	// the footer check passes, --verify-data fails it.
	good := get(goodObj)
	good[16+61+1] ^= 0xff
	put(goodObj, good)
	if out, errs, code := recoverTo("/v", "--dry-run", "--skip-corrupt"); code != 0 ||
		strings.Contains(out, goodObj) {
		t.Fatalf("recover --dry-run without --verify-data: %d\n%s%s", code, out, errs)
	}
	if _, errs, code := recoverTo("/v", "--dry-run", "--verify-data"); code == 0 || !strings.Contains(errs, goodObj+": ") || !strings.Contains(errs, "CRC") {
		t.Fatalf("recover --verify-data: %d %s", code, errs)
	}

	// An object missing from the bucket: an error naming it and the flag;
	// with the flag, skipped as the corrupt ones are, its offsets listed.
	// (The newest manifest is the restored cluster's, written at its
	// stop: it no longer references the two objects skipped above.)
	if err := mc.RemoveObject(ctx, s3.Bucket, "c/"+goodObj, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := recoverTo("/m", "--dry-run"); code == 0 || !strings.Contains(errs, "1 objects the manifest") ||
		!strings.Contains(errs, "not in") || !strings.Contains(errs, goodObj) || !strings.Contains(errs, "--skip-corrupt") {
		t.Fatalf("recover with a missing object: %d %s", code, errs)
	}
	if out, errs, code := recoverTo("/m", "--dry-run", "--skip-corrupt"); code != 0 || !strings.Contains(out, "skipped 1 corrupt or missing objects") ||
		!hasRow(out, "mid", "0", "5-6", "2", goodObj) || !strings.Contains(errs, "skipping "+goodObj+": not in the bucket") {
		t.Fatalf("recover --skip-corrupt with a missing object: %d\n%s%s", code, out, errs)
	}
}
