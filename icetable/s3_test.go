package icetable_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/replay/replaytest"
)

// TestMaterializeOnRealS3 proves materialization on real S3 servers
// (versitygw and MinIO): a topic created with shale.iceberg.mode=key_value
// through a Kafka admin client, produced through agents, is materialized
// into a table in the bucket that iceberg-go's scan and DuckDB (reading the
// data files the current snapshot lists) read exactly as a Kafka consumer
// does, nulls, empty values, headers and a second day partition included;
// and the same records in a json table (column i, empty values in _raw).
func TestMaterializeOnRealS3(t *testing.T) {
	for _, name := range []string{"versitygw", "minio"} {
		t.Run(name, func(t *testing.T) {
			srv := testenv.S3(t)
			if name == "minio" {
				srv = testenv.MinIO(t)
			}
			c := agenttest.Start(t, agenttest.Options{Agents: 2, S3: &srv})
			ctx := replaytest.Ctx(t)
			const topic = "ice-s3"
			if r, err := c.Admin(t).CreateTopic(ctx, 3, 1, map[string]*string{icetable.ConfigMode: kmsg.StringPtr("key_value")}, topic); err != nil || r.Err != nil {
				t.Fatalf("create: %v %v", err, r)
			}
			prod := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			day := time.Date(2026, 11, 25, 23, 59, 59, 0, time.UTC)
			var recs []*kgo.Record
			for i := range 300 {
				r := &kgo.Record{Partition: int32(i % 3), Timestamp: day.Add(time.Duration(i) * 10 * time.Millisecond),
					Key: fmt.Appendf(nil, "k%d", i%11), Value: fmt.Appendf(nil, `{"i":%d}`, i)}
				switch i % 10 {
				case 1:
					r.Key = nil
				case 2:
					r.Value = nil
				case 3:
					r.Value = []byte{}
				case 4:
					r.Headers = []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b"}}
				}
				recs = append(recs, r)
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			f := &replaytest.Fixture{C: c, Topic: topic, Parts: 3}
			want := consumeTopic(t, ctx, f, 3)
			tp, err := c.Meta.GetTopic(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			var st icetable.Stats
			if err := icetable.MaterializeTopic(ctx, c.Store, c.Meta, tp, icetable.Config{CommitBytes: 4 << 10}, &st); err != nil {
				t.Fatal(err)
			}
			tbl, err := icetable.Load(ctx, c.Store, c.Meta, tp)
			if err != nil {
				t.Fatal(err)
			}
			replaytest.CompareRecs(t, "iceberg-go scan", scanTable(t, ctx, tbl), want)
			replaytest.CompareRecs(t, "DuckDB", duckRead(t, ctx, c.Store, tbl), want)
			keys, err := icetable.DataFiles(ctx, c.Store, tbl)
			if err != nil {
				t.Fatal(err)
			}
			days := map[string]bool{}
			for _, k := range keys {
				for _, d := range []string{"2026-11-25", "2026-11-26"} {
					if strings.Contains(k, "timestamp_day="+d+"/") {
						days[d] = true
					}
				}
			}
			if len(days) != 2 {
				t.Fatalf("data files %v: want both day partitions", keys)
			}
			t.Logf("%s: %d rows, %d commits, %d data files", name, len(want), st.Commits, len(keys))

			// Orphan files on this server (GC rules, CollectOrphans): a
			// stray file and the stale v<N>.metadata.json copies of the
			// commits go, as an independent S3 client lists the bucket;
			// the table reads the same.
			stray := icetable.TableKey(topic) + "/data/stray.parquet"
			if err := c.Store.Put(ctx, stray, strings.NewReader("junk"), 4); err != nil {
				t.Fatal(err)
			}
			bucketKeys := func() []string {
				var out []string
				for o := range srv.Minio(t).ListObjects(ctx, srv.Bucket, minio.ListObjectsOptions{Recursive: true}) {
					if o.Err != nil {
						t.Fatal(o.Err)
					}
					if strings.Contains(o.Key, icetable.TableKey(topic)+"/") {
						out = append(out, o.Key)
					}
				}
				return out
			}
			before := bucketKeys()
			ost, err := icetable.CollectOrphans(ctx, c.Store, c.Meta, time.Now().Add(icetable.MinOrphanAge+time.Minute), 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			after := bucketKeys()
			ptr, err := c.Meta.GetTablePointer(ctx, tp.ID)
			if err != nil {
				t.Fatal(err)
			}
			var stale int
			for _, k := range after {
				if strings.HasSuffix(k, "/stray.parquet") {
					t.Errorf("stray file %s still in the bucket", k)
				}
				if b := k[strings.LastIndex(k, "/")+1:]; strings.HasPrefix(b, "v") && strings.HasSuffix(b, ".metadata.json") && b != fmt.Sprintf("v%d.metadata.json", ptr.Version) {
					stale++
				}
			}
			if stale != 0 || ost.Deleted != len(before)-len(after) || ost.Deleted < ptr.Version+1 {
				t.Errorf("orphan collection %+v: %d files before, %d after, %d stale v<N> copies left; want the stray file and %d stale copies gone", ost, len(before), len(after), stale, ptr.Version)
			}
			if tbl, err = icetable.Load(ctx, c.Store, c.Meta, tp); err != nil {
				t.Fatal(err)
			}
			replaytest.CompareRecs(t, "iceberg-go scan after orphan collection", scanTable(t, ctx, tbl), want)
			replaytest.CompareRecs(t, "DuckDB after orphan collection", duckRead(t, ctx, c.Store, tbl), want)
			t.Logf("%s: orphan collection deleted %d of %d table files", name, ost.Deleted, len(before))

			// The same records in a json table: {"i":N} is column i, an
			// empty value is in _raw, a null value a row of nulls.
			const jtopic = "ice-s3-json"
			if r, err := c.Admin(t).CreateTopic(ctx, 3, 1, map[string]*string{icetable.ConfigMode: kmsg.StringPtr("json")}, jtopic); err != nil || r.Err != nil {
				t.Fatalf("create: %v %v", err, r)
			}
			for _, r := range recs {
				r.Topic = jtopic
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			var jwant []jsonRow
			for _, r := range consumeTopic(t, ctx, &replaytest.Fixture{C: c, Topic: jtopic, Parts: 3}, 3) {
				var cols map[string]any
				if len(r.Value) > 0 {
					var i float64
					if _, err := fmt.Sscanf(string(r.Value), `{"i":%g}`, &i); err != nil {
						t.Fatalf("value %q: %v", r.Value, err)
					}
					cols = map[string]any{"i": i}
					r.Value = nil
				}
				jwant = append(jwant, jsonRow{r, cols})
			}
			jtp, err := c.Meta.GetTopic(ctx, jtopic)
			if err != nil {
				t.Fatal(err)
			}
			if err := icetable.MaterializeTopic(ctx, c.Store, c.Meta, jtp, icetable.Config{}, &st); err != nil {
				t.Fatal(err)
			}
			jtbl, err := icetable.Load(ctx, c.Store, c.Meta, jtp)
			if err != nil {
				t.Fatal(err)
			}
			compareRows(t, "iceberg-go scan (json)", scanRows(t, ctx, jtbl, jsonNames), jwant)
			compareRows(t, "DuckDB (json)", duckRows(t, ctx, c.Store, jtbl, true), jwant)
		})
	}
}
