package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
)

// startStackOpts starts a stack (no lifecycle jobs) closed by t.Cleanup
// unless the test closed it first with stop.
func startStackOpts(t *testing.T, o StackOptions) (st *Stack, stop func(), err error) {
	t.Helper()
	if o.Agent.Listen == "" {
		o.Agent.Listen = "127.0.0.1:0"
	}
	if o.Agent.AgentTTL == 0 {
		o.Agent.AgentTTL = 5 * time.Second
	}
	o.NoLifecycle = true
	st, err = StartStack(context.Background(), o, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, err
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st.Close(ctx)
		})
	}
	t.Cleanup(stop)
	return st, stop, nil
}

// TestAgentRefusesAnotherBucket proves the first agent records its bucket
// in etcd and an agent pointed at another bucket refuses to start, naming
// both, while one on the same bucket (named differently) joins.
func TestAgentRefusesAnotherBucket(t *testing.T) {
	cli, endpoints := testenv.Etcd(t)
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	_, stop, err := startStackOpts(t, StackOptions{DataDir: filepath.Join(dir, "1"), EtcdEndpoints: endpoints, Bucket: a})
	if err != nil {
		t.Fatal(err)
	}
	info, err := metastore.New(cli, "/shale").Cluster(context.Background())
	if err != nil || info.Bucket != "file://"+a {
		t.Fatalf("cluster record %+v, %v; want bucket file://%s", info, err, a)
	}
	stop()
	_, _, err = startStackOpts(t, StackOptions{DataDir: filepath.Join(dir, "2"), EtcdEndpoints: endpoints, Bucket: filepath.Join(dir, "b")})
	if err == nil || !strings.Contains(err.Error(), "file://"+filepath.Join(dir, "b")) || !strings.Contains(err.Error(), "file://"+a) {
		t.Fatalf("agent on another bucket: %v; want a refusal naming both buckets", err)
	}
	if _, _, err := startStackOpts(t, StackOptions{DataDir: filepath.Join(dir, "3"), EtcdEndpoints: endpoints, Bucket: "file://" + a + "/"}); err != nil {
		t.Fatalf("agent on the cluster's bucket: %v", err)
	}
	// Another namespace is another cluster, with its own bucket.
	if _, _, err := startStackOpts(t, StackOptions{DataDir: filepath.Join(dir, "4"), EtcdEndpoints: endpoints, EtcdNamespace: "/other", Bucket: filepath.Join(dir, "b")}); err != nil {
		t.Fatalf("agent of another namespace: %v", err)
	}
}

// TestAgentRefusesMissingS3Bucket proves an agent checks its S3 bucket at
// start and refuses one that does not exist, naming it, instead of saying
// ready and failing every upload; with CreateBucket it creates it; on the
// existing bucket it starts and records the endpoint for tools.
func TestAgentRefusesMissingS3Bucket(t *testing.T) {
	cli, endpoints := testenv.Etcd(t)
	s3 := testenv.S3(t)
	o := StackOptions{DataDir: t.TempDir(), EtcdEndpoints: endpoints, Bucket: "s3://no-such-bucket-here/p",
		S3Endpoint: s3.Endpoint, S3Region: s3.Region, S3AccessKey: s3.AccessKey, S3SecretKey: s3.SecretKey}
	_, _, err := startStackOpts(t, o)
	if !errors.Is(err, s3tier.ErrNoBucket) || !strings.Contains(err.Error(), "s3://no-such-bucket-here/p") {
		t.Fatalf("agent on a missing bucket: %v; want ErrNoBucket naming it", err)
	}
	// With CreateBucket (--create-bucket) the missing bucket is created,
	// in another namespace (another cluster); a second start finds it.
	created := o
	created.EtcdNamespace, created.CreateBucket = "/created", true
	for range 2 {
		if _, stop, err := startStackOpts(t, created); err != nil {
			t.Fatalf("agent with --create-bucket: %v", err)
		} else {
			stop()
		}
	}
	if ok, err := s3.Minio(t).BucketExists(context.Background(), "no-such-bucket-here"); err != nil || !ok {
		t.Fatalf("bucket created by --create-bucket: exists %v, %v", ok, err)
	}
	o.Bucket = "s3://" + s3.Bucket + "/p"
	if _, _, err := startStackOpts(t, o); err != nil {
		t.Fatal(err)
	}
	info, err := metastore.New(cli, "/shale").Cluster(context.Background())
	if err != nil || info.Bucket != o.Bucket || info.S3Endpoint != s3.Endpoint {
		t.Fatalf("cluster record %+v, %v", info, err)
	}
}

// TestREADMEReplayAndStatusVerbatim proves the README's replay and status
// examples work verbatim beside a stopped dev agent: the tools find its
// etcd under ./data and the bucket in the cluster record. (The environment
// points the default endpoint at a closed port, so that an etcd another
// process runs on 127.0.0.1:2379 cannot answer instead.)
func TestREADMEReplayAndStatusVerbatim(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	replayLine := readmeLine(t, readme, "shale replay -t clicks --from 2026-11-25T00:00:00Z")
	statusLine := readmeLine(t, readme, "bin/shale status")
	t.Chdir(t.TempDir())
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHALE_ETCD_ENDPOINTS", fmt.Sprintf("127.0.0.1:%d", port))

	st, stop, err := startStackOpts(t, StackOptions{Dev: true, DataDir: "data", DevEtcdListen: "127.0.0.1:0", Engine: engine.Config{FlushInterval: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Agent.Addr().String()), kgo.DefaultProduceTopic("clicks"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, -1, nil, "clicks"); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i, at := range []time.Time{day.Add(-time.Second), day, day.Add(12 * time.Hour), day.Add(24*time.Hour - time.Millisecond), day.Add(24 * time.Hour)} {
		recs = append(recs, &kgo.Record{Key: []byte{byte('a' + i)}, Value: []byte(at.Format(time.RFC3339Nano)), Timestamp: at})
	}
	err = cl.ProduceSync(ctx, recs...).FirstErr()
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	stop()

	out := runLine(t, replayLine)
	got, err := os.ReadFile("day.jsonl")
	if err != nil {
		t.Fatalf("%s: %v (%s)", replayLine, err, out)
	}
	if n := strings.Count(string(got), "\n"); n != 3 || strings.Contains(string(got), "2026-11-24") || strings.Contains(string(got), "2026-11-26") {
		t.Fatalf("%s wrote %d lines, want the 3 records of 2026-11-25:\n%s", replayLine, n, got)
	}
	out = runLine(t, statusLine)
	if !strings.Contains(out, "clicks") || !strings.Contains(out, "file://") {
		t.Fatalf("%s printed no topic clicks or no bucket:\n%s", statusLine, out)
	}
	// topic describe too, with no agent answering (the default bootstrap
	// address pointed at the closed port as well).
	t.Setenv("SHALE_BOOTSTRAP", fmt.Sprintf("127.0.0.1:%d", port))
	out, errs, code := run(t, "", "topic", "describe", "clicks")
	if code != 0 || !strings.Contains(out, "read from etcd") || !regexpLine(out, `1\s+0\s+\d+\s+\d+\s+.*`) {
		t.Fatalf("topic describe with the agent stopped: exit %d\n%s\n%s", code, out, errs)
	}
}

// readmeLine returns the README's command line starting with prefix,
// without its comment.
func readmeLine(t *testing.T, readme []byte, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(l, prefix) {
			l, _, _ = strings.Cut(l, "#")
			return strings.TrimSpace(l)
		}
	}
	t.Fatalf("README.md has no line starting with %q", prefix)
	return ""
}

// runLine runs a README command line (simple words and an optional
// "> file" redirect) through Execute and returns its stdout.
func runLine(t *testing.T, line string) string {
	t.Helper()
	cmdline, redirect, _ := strings.Cut(line, ">")
	words := strings.Fields(cmdline)
	if len(words) < 2 || filepath.Base(words[0]) != "shale" {
		t.Fatalf("not a shale command: %q", line)
	}
	out, errs, code := run(t, "", words[1:]...)
	if code != 0 {
		t.Fatalf("%s: exit %d: %s", line, code, errs)
	}
	if f := strings.TrimSpace(redirect); f != "" {
		if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestReplayOnS3FindsTheBucketInEtcd proves replay of a cluster on a real S3
// server needs only --etcd-endpoints (and credentials, never recorded): the
// bucket, prefix and endpoint come from the cluster record, and every
// produced record comes back.
func TestReplayOnS3FindsTheBucketInEtcd(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	s3 := testenv.S3(t)
	st, _, err := startStackOpts(t, StackOptions{DataDir: t.TempDir(), EtcdEndpoints: endpoints, Bucket: "s3://" + s3.Bucket + "/c1",
		S3Endpoint: s3.Endpoint, S3Region: s3.Region, S3AccessKey: s3.AccessKey, S3SecretKey: s3.SecretKey,
		Engine: engine.Config{FlushInterval: 20 * time.Millisecond}, Agent: agent.Config{AutoCreateTopics: true, DefaultPartitions: 2}})
	if err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	for i := range 50 {
		fmt.Fprintf(&in, "line-%02d\n", i)
	}
	if _, errs, code := run(t, in.String(), "produce", "-b", st.Agent.Addr().String(), "-t", "s3topic"); code != 0 {
		t.Fatalf("produce: %s", errs)
	}
	out, errs, code := run(t, "", "replay", "-t", "s3topic", "--etcd-endpoints", strings.Join(endpoints, ","),
		"--s3-access-key", s3.AccessKey, "--s3-secret-key", s3.SecretKey, "--quiet")
	if code != 0 || strings.Count(out, "\n") != 50 || !strings.Contains(out, `"value":"line-49"`) {
		t.Fatalf("replay with only --etcd-endpoints: exit %d, %d lines\n%s", code, strings.Count(out, "\n"), errs)
	}
}

// TestToolsSayWhatTheyNeedWithoutEtcd proves status, replay and topic
// describe, run where no etcd answers and no stopped dev agent's data is
// (no ./data/etcd), fail with an error that says what they need: an
// agent, `shale agent --dev` or `make run`, or the --etcd-endpoints of an
// etcd, instead of a bare "etcd is not answering".
func TestToolsSayWhatTheyNeedWithoutEtcd(t *testing.T) {
	t.Chdir(t.TempDir())
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	closed := fmt.Sprintf("127.0.0.1:%d", port)
	t.Setenv("SHALE_ETCD_ENDPOINTS", closed)
	t.Setenv("SHALE_BOOTSTRAP", closed)
	for _, args := range [][]string{{"status"}, {"replay", "-t", "clicks"}, {"topic", "describe", "clicks"}} {
		start := time.Now()
		_, errs, code := run(t, "", args...)
		if code == 0 || !strings.Contains(errs, "no dev agent's etcd under --data-dir data") ||
			!strings.Contains(errs, "make run") || !strings.Contains(errs, "--etcd-endpoints") {
			t.Errorf("%v with no etcd and no ./data: exit %d, stderr %q; want what is needed", args, code, errs)
		}
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("%v took %s to fail", args, took)
		}
		t.Logf("%v: %s", args, strings.TrimSpace(errs))
	}
}
