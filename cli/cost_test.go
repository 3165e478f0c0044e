package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/cost"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/internal/units"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/s3tier"
)

// TestCostEndToEnd proves `shale cost` against a real agent: each topic's
// bucket bytes and objects are those of the objects its produce added to
// the bucket listing (read here with the store's List), a stray object is
// counted as garbage, logical bytes agree with `shale status`, the PUT
// rate is the agent's s3_requests_total over its uptime, and the dollars
// follow from the default price table.
func TestCostEndToEnd(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	dir := t.TempDir()
	bucketDir := filepath.Join(dir, "bucket")
	st := startStack(t, StackOptions{
		DataDir: dir, EtcdEndpoints: endpoints, Bucket: bucketDir, AdminListen: "127.0.0.1:0", NoLifecycle: true,
		Engine: engine.Config{FlushInterval: 20 * time.Millisecond},
		Agent:  agent.Config{Listen: "127.0.0.1:0", AgentTTL: 5 * time.Second, NodeID: -1},
	})
	addr, etcd := st.Agent.Addr().String(), strings.Join(endpoints, ",")
	metricsURL := "http://" + st.Admin.Addr().String() + "/metrics"
	store, err := s3tier.NewDirStore(bucketDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	listed := func() map[string]int64 {
		objs, err := store.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int64{}
		for _, o := range objs {
			m[o.Key] = o.Size
		}
		return m
	}
	// produce adds lines to topic (acks=all: committed when it returns) and
	// returns the objects and bytes that appeared in the bucket meanwhile.
	produce := func(topic string, lines int) (objects int, size int64) {
		before := listed()
		if _, errs, code := run(t, strings.Repeat("some record value\n", lines), "produce", "-b", addr, "-t", topic); code != 0 {
			t.Fatal(errs)
		}
		for k, n := range listed() {
			if _, ok := before[k]; !ok {
				objects++
				size += n
			}
		}
		return objects, size
	}
	for _, tp := range []string{"alpha", "beta"} {
		if _, errs, code := run(t, "", "topic", "create", tp, "-b", addr, "-p", "2"); code != 0 {
			t.Fatal(errs)
		}
	}
	aObjs, aSize := produce("alpha", 300)
	bObjs, bSize := produce("beta", 40)
	if aObjs == 0 || bObjs == 0 {
		t.Fatalf("produce added %d and %d objects", aObjs, bObjs)
	}
	const garbage = 1234
	if err := store.Put(ctx, "stray/object", bytes.NewReader(make([]byte, garbage)), garbage); err != nil {
		t.Fatal(err)
	}

	before := time.Now()
	// No --metrics-url: the agent's registration in etcd names its admin server.
	out, errs, code := run(t, "", "cost", "--etcd-endpoints", etcd, "-o", "json")
	after := time.Now()
	if code != 0 {
		t.Fatalf("cost: %s", errs)
	}
	var rep cost.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("cost -o json is not JSON: %v\n%s", err, out)
	}
	if len(rep.Topics) != 2 || rep.Topics[0].Name != "alpha" || rep.Topics[1].Name != "beta" {
		t.Fatalf("topics %+v", rep.Topics)
	}
	a, b := rep.Topics[0], rep.Topics[1]
	if a.BucketBytes != aSize || a.Objects != aObjs || b.BucketBytes != bSize || b.Objects != bObjs {
		t.Errorf("alpha %d B in %d objects, beta %d B in %d; the listing says %d B in %d and %d B in %d",
			a.BucketBytes, a.Objects, b.BucketBytes, b.Objects, aSize, aObjs, bSize, bObjs)
	}
	if rep.Garbage.Objects != 1 || rep.Garbage.BucketBytes != garbage {
		t.Errorf("garbage %+v, want the stray object of %d B", rep.Garbage, garbage)
	}
	total := aSize + bSize + garbage
	if rep.Total.BucketBytes != total || rep.Total.Objects != aObjs+bObjs+1 {
		t.Errorf("total %d B in %d objects, want %d B in %d", rep.Total.BucketBytes, rep.Total.Objects, total, aObjs+bObjs+1)
	}
	if a.IndexKeys < 1 || b.IndexKeys < 1 || a.Segments != 0 || a.Dropped != 0 {
		t.Errorf("index: alpha %+v beta %+v", a, b)
	}
	// Logical bytes: the same index as `shale status` reads.
	sout, errs, code := run(t, "", "status", "--etcd-endpoints", etcd, "-o", "json")
	if code != 0 {
		t.Fatal(errs)
	}
	var status Status
	if err := json.Unmarshal([]byte(sout), &status); err != nil {
		t.Fatal(err)
	}
	for _, ts := range status.Topics {
		want := map[string]int64{"alpha": a.LogicalBytes, "beta": b.LogicalBytes}[ts.Name]
		if ts.BytesStored != want || want <= 0 || want > map[string]int64{"alpha": aSize, "beta": bSize}[ts.Name] {
			t.Errorf("%s: logical %d, status says %d stored", ts.Name, want, ts.BytesStored)
		}
	}
	// Storage: bytes / 2^30 * $0.023.
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9*math.Max(1e-9, math.Abs(want)) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	near("total storage $", rep.Total.Cost.Storage, float64(total)/(1<<30)*0.023)
	near("garbage storage $", rep.Garbage.Cost.Storage, garbage/float64(1<<30)*0.023)
	// Requests: the agent's PUT-class counter over its process's uptime,
	// which lies between the uptimes before and after the command ran.
	c, err := cost.Scrape(ctx, http.DefaultClient, metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Requests.Known || rep.Requests.AgentsScraped != 1 || c.Put < float64(aObjs+bObjs) {
		t.Fatalf("requests %+v, counters %+v", rep.Requests, c)
	}
	lo, hi := c.Put*86400/after.Sub(c.Start).Seconds(), c.Put*86400/before.Sub(c.Start).Seconds()
	if rep.Total.PutPerDay < lo*0.999 || rep.Total.PutPerDay > hi*1.001 {
		t.Errorf("PUT/day %v, want between %v and %v (%v PUTs since %v)", rep.Total.PutPerDay, lo, hi, c.Put, c.Start)
	}
	near("requests $", rep.Total.Cost.Requests, (rep.Total.PutPerDay*0.005+rep.Total.GetPerDay*0.0004)/1000*30)
	near("topic PUT shares", a.PutPerDay+b.PutPerDay, rep.Total.PutPerDay) // garbage gets none

	// An unreachable agent is reported, and no request cost is invented.
	table, errs, code := run(t, "", "cost", "--etcd-endpoints", etcd, "--metrics-url", "127.0.0.1:1")
	if code != 0 {
		t.Fatal(errs)
	}
	for _, want := range []string{"alpha", "beta", "(unreferenced)", "TOTAL", units.HumanBytes(total), "S3 Standard us-east-1",
		"Requests: none: no agent's /metrics reachable (pass --metrics-url)", "not counted: http://127.0.0.1:1"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	table, errs, code = run(t, "", "cost", "--etcd-endpoints", etcd, "--metrics-url", metricsURL)
	if code != 0 || !strings.Contains(table, "Requests: average since each agent's process started (counters / uptime), 1 agent(s)") {
		t.Errorf("table with metrics: %s\n%s", errs, table)
	}
	t.Log("\n" + table)
	// Bad input says what to do.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "yaml"}, "use table or json"},
		{[]string{"--prices", filepath.Join(dir, "none.yaml")}, "price file"},
		{[]string{"--price-get-per-1000", "-1"}, "prices must be 0 or more"},
	} {
		_, errs, code := run(t, "", append([]string{"cost", "--etcd-endpoints", etcd}, c.args...)...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("cost %v: exit %d, %q; want an error saying %q", c.args, code, errs, c.want)
		}
	}
}

// TestCostShowsCompaction proves what `shale cost` says compaction saved:
// six produce runs (an object and an index key each) compacted by the
// agent's lifecycle into one segment leave one index key, which the
// report counts as a segment; the keys without compaction, from the
// agent's counters, are the six there were; and every object compaction
// replaced is either awaiting collection (unreferenced) or counted as
// deleted by garbage collection.
func TestCostShowsCompaction(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	dir := t.TempDir()
	st := startStack(t, StackOptions{
		DataDir: dir, EtcdEndpoints: endpoints, Bucket: filepath.Join(dir, "bucket"), AdminListen: "127.0.0.1:0",
		Engine: engine.Config{FlushInterval: 20 * time.Millisecond},
		Agent:  agent.Config{Listen: "127.0.0.1:0", AutoCreateTopics: true, DefaultPartitions: 1, AgentTTL: 5 * time.Second},
		Lifecycle: lifecycle.Config{Interval: 200 * time.Millisecond, LeaseTTL: time.Second,
			Compaction: lifecycle.CompactConfig{Settle: time.Second, MinEntries: 1}}, // as in TestDescribeShowsStorageAndLifecycleRuns
	})
	addr, etcd := st.Agent.Addr().String(), strings.Join(endpoints, ",")
	const runs = 6
	// Created first, as in TestDescribeShowsStorageAndLifecycleRuns.
	if _, errs, code := run(t, "", "topic", "create", "logs", "-b", addr); code != 0 {
		t.Fatalf("topic create: %s", errs)
	}
	for i := range runs {
		if _, errs, code := run(t, fmt.Sprintf("line-%d\n", i), "produce", "-b", addr, "-t", "logs"); code != 0 {
			t.Fatalf("produce: %s", errs)
		}
	}
	var rep cost.Report
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errs, code := run(t, "", "cost", "--etcd-endpoints", etcd, "-o", "json")
		if code != 0 {
			t.Fatalf("cost: %s", errs)
		}
		rep = cost.Report{}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		// The agent counts a compaction after its index swap: wait for the
		// counters too (CI under -race read the swap before them).
		if len(rep.Topics) == 1 && rep.Topics[0].IndexKeys == 1 && rep.Topics[0].Segments == 1 &&
			rep.Requests.Known && rep.Requests.Lifecycle.Segments >= 1 && rep.IndexKeysBeforeCompaction == runs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no compaction to one segment within 30s: %+v, keys before compaction %d, lifecycle %+v", rep.Topics, rep.IndexKeysBeforeCompaction, rep.Requests.Lifecycle)
		}
		time.Sleep(200 * time.Millisecond)
	}
	l := rep.Requests.Lifecycle
	if !rep.Requests.Known || rep.IndexKeysBeforeCompaction != runs || l.Segments < 1 {
		t.Fatalf("keys before compaction %d (lifecycle %+v), want %d", rep.IndexKeysBeforeCompaction, l, runs)
	}
	// Objects ever written: one per run and one per segment; one segment is live.
	if got, want := rep.Garbage.Objects+int(l.GCObjects), runs+int(l.Segments)-1; got != want {
		t.Errorf("unreferenced %d + collected %.0f objects = %d, want %d", rep.Garbage.Objects, l.GCObjects, got, want)
	}
	if rep.Topics[0].Objects != 1 || rep.Total.Objects != 1+rep.Garbage.Objects+rep.Manifests.Objects {
		t.Errorf("objects: topic %d, total %d, garbage %d", rep.Topics[0].Objects, rep.Total.Objects, rep.Garbage.Objects)
	}
	table, errs, code := run(t, "", "cost", "--etcd-endpoints", etcd)
	if code != 0 || !strings.Contains(table, fmt.Sprintf("(%d keys without it)", runs)) {
		t.Errorf("table: %s\n%s", errs, table)
	}
}

// TestCostOnS3 proves `shale cost` on an S3 bucket (versitygw) found through
// the cluster record in etcd: the topic's bucket bytes and objects are
// those minio-go lists under the cluster's prefix, and storage is priced
// at bytes / 2^30 * $0.023.
func TestCostOnS3(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	s3 := testenv.S3(t)
	o := StackOptions{DataDir: t.TempDir(), EtcdEndpoints: endpoints, Bucket: "s3://" + s3.Bucket + "/p",
		S3Endpoint: s3.Endpoint, S3Region: s3.Region, S3AccessKey: s3.AccessKey, S3SecretKey: s3.SecretKey,
		Engine:      engine.Config{FlushInterval: 20 * time.Millisecond},
		Agent:       agent.Config{Listen: "127.0.0.1:0", AutoCreateTopics: true, DefaultPartitions: 3, AgentTTL: 5 * time.Second, NodeID: -1},
		NoLifecycle: true}
	st, stop, err := startStackOpts(t, o)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	addr := st.Agent.Addr().String()
	for i := range 3 {
		if _, errs, code := run(t, strings.Repeat(fmt.Sprintf("k%d:payload %d\n", i, i), 50), "produce", "-b", addr, "-t", "orders", "-K", ":"); code != 0 {
			t.Fatal(errs)
		}
	}
	var size int64
	var objects int
	for obj := range s3.Minio(t).ListObjects(context.Background(), s3.Bucket, minio.ListObjectsOptions{Prefix: "p/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		size += obj.Size
		objects++
	}
	out, errs, code := run(t, "", "cost", "--etcd-endpoints", strings.Join(endpoints, ","), "-o", "json",
		"--s3-access-key", s3.AccessKey, "--s3-secret-key", s3.SecretKey)
	if code != 0 {
		t.Fatalf("cost: %s", errs)
	}
	var rep cost.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if objects == 0 || len(rep.Topics) != 1 || rep.Topics[0].BucketBytes != size || rep.Topics[0].Objects != objects ||
		rep.Total.BucketBytes != size || rep.Garbage.Objects != 0 {
		t.Fatalf("report %+v; minio-go lists %d objects, %d B", rep, objects, size)
	}
	if want := float64(size) / (1 << 30) * 0.023; math.Abs(rep.Total.Cost.Storage-want) > 1e-15 {
		t.Errorf("storage $%v, want $%v", rep.Total.Cost.Storage, want)
	}
}

// TestAdminAdvertised proves the admin address an agent records: its
// listener's, with an all-interfaces IP replaced by the advertised host.
func TestAdminAdvertised(t *testing.T) {
	for _, c := range []struct {
		addr *net.TCPAddr
		host string
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9644}, "kafka1", "127.0.0.1:9644"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9644}, "kafka1.example", "kafka1.example:9644"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9645}, "agent-2", "agent-2:9645"},
	} {
		if got := adminAdvertised(c.addr, c.host); got != c.want {
			t.Errorf("adminAdvertised(%v, %q) = %q, want %q", c.addr, c.host, got, c.want)
		}
	}
}
