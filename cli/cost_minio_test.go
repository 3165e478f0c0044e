package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/cost"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
)

// TestCostBenchTopicOnMinIO proves `shale cost` against a hand calculation
// on a bench-like topic: 64 partitions of 1 KiB records from perf-produce
// on MinIO. From minio-go's own listing of the bucket it works out the
// topic's bytes and objects (everything under wal/; nothing else is in the
// bucket), the storage bill from the README's price table ($0.023 per
// GB-month, GB = 2^30 bytes) and the request bill from the PUT and GET
// rates the report gives ($0.005 and $0.0004 per 1,000, 30 days), and
// checks both the JSON and the table show them.
func TestCostBenchTopicOnMinIO(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	s3 := testenv.MinIO(t)
	st := startStack(t, StackOptions{DataDir: t.TempDir(), EtcdEndpoints: endpoints, Bucket: "s3://" + s3.Bucket + "/b",
		S3Endpoint: s3.Endpoint, S3Region: s3.Region, S3AccessKey: s3.AccessKey, S3SecretKey: s3.SecretKey,
		AdminListen: "127.0.0.1:0", NoLifecycle: true,
		Engine: engine.Config{FlushInterval: 100 * time.Millisecond},
		Agent:  agent.Config{Listen: "127.0.0.1:0", AutoCreateTopics: true, DefaultPartitions: 64, AgentTTL: 5 * time.Second, NodeID: -1}})
	const records = 8192
	if out, errs, code := run(t, "", "perf-produce", "-b", st.Agent.Addr().String(), "-t", "bench", "--records", fmt.Sprint(records),
		"--record-size", "1KiB", "--acks", "all"); code != 0 {
		t.Fatalf("perf-produce: %s%s", out, errs)
	}
	var size int64
	var objects int
	for obj := range s3.Minio(t).ListObjects(context.Background(), s3.Bucket, minio.ListObjectsOptions{Prefix: "b/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if !strings.HasPrefix(obj.Key, "b/wal/") {
			t.Fatalf("unexpected object %s in the bucket", obj.Key)
		}
		size += obj.Size
		objects++
	}
	storage := float64(size) / (1 << 30) * 0.023
	etcd := strings.Join(endpoints, ",")
	creds := []string{"--s3-access-key", s3.AccessKey, "--s3-secret-key", s3.SecretKey}
	out, errs, code := run(t, "", append([]string{"cost", "--etcd-endpoints", etcd, "-o", "json"}, creds...)...)
	if code != 0 {
		t.Fatalf("cost: %s", errs)
	}
	var rep cost.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Topics) != 1 {
		t.Fatalf("topics %+v", rep.Topics)
	}
	tc := rep.Topics[0]
	requests := (tc.PutPerDay*0.005 + tc.GetPerDay*0.0004) / 1000 * 30
	t.Logf("minio-go: %d objects, %d B; storage %d / 2^30 x $0.023 = $%.6f/month; requests (%.0f PUT + %.0f GET a day) x 30 = $%.4f/month",
		objects, size, size, storage, tc.PutPerDay, tc.GetPerDay, requests)
	t.Logf("shale cost -o json, topic: %+v", tc)
	if tc.Name != "bench" || tc.BucketBytes != size || tc.Objects != objects || rep.Total.BucketBytes != size || rep.Total.Objects != objects ||
		rep.Garbage.Objects != 0 || tc.LogicalBytes <= records*1024/2 || tc.LogicalBytes > size {
		t.Fatalf("report %+v; minio-go lists %d objects, %d B", rep, objects, size)
	}
	if math.Abs(tc.Cost.Storage-storage) > 1e-12 || math.Abs(rep.Total.Cost.Storage-storage) > 1e-12 {
		t.Errorf("storage $%v (total $%v), by hand $%v", tc.Cost.Storage, rep.Total.Cost.Storage, storage)
	}
	if !rep.Requests.Known || tc.PutPerDay < float64(objects) || math.Abs(tc.Cost.Requests-requests) > 1e-9 ||
		math.Abs(tc.Cost.Total-(storage+requests)) > 1e-9 {
		t.Errorf("requests %+v, cost %+v; by hand requests $%v", rep.Requests, tc.Cost, requests)
	}

	table, errs, code := run(t, "", append([]string{"cost", "--etcd-endpoints", etcd}, creds...)...)
	if code != 0 {
		t.Fatalf("cost: %s", errs)
	}
	t.Logf("shale cost:\n%s", table)
	var row []string
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "bench" {
			row = f
		}
	}
	want := "bench " + HumanBytes(tc.LogicalBytes) + " " + HumanBytes(size) + fmt.Sprintf(" %d %d 0 0 ", objects, tc.IndexKeys)
	if !strings.HasPrefix(strings.Join(row, " ")+" ", want) {
		t.Errorf("table row %q, want it to start %q", strings.Join(row, " "), want)
	}

	// The storage column at a price that shows it: $1,000 per GB-month,
	// requests free.
	table, errs, code = run(t, "", append([]string{"cost", "--etcd-endpoints", etcd, "--price-storage-gb-month", "1000",
		"--price-put-per-1000", "0", "--price-get-per-1000", "0"}, creds...)...)
	byHand := fmt.Sprintf("$%.2f", float64(size)/(1<<30)*1000)
	t.Logf("shale cost at $1,000/GB-month (by hand: %d / 2^30 x 1000 = %s):\n%s", size, byHand, table)
	if code != 0 || !hasRow(table, "bench", strings.Fields(HumanBytes(tc.LogicalBytes))[0], strings.Fields(HumanBytes(tc.LogicalBytes))[1]) {
		t.Fatalf("cost: %d %s%s", code, table, errs)
	}
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "bench" {
			if got := f[len(f)-3:]; got[0] != byHand || got[1] != "$0.00" || got[2] != byHand {
				t.Errorf("bench row %q: storage, requests, total %v, want %s $0.00 %s", l, got, byHand, byHand)
			}
		}
	}
}
