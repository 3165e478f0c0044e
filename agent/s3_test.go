package agent_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/internal/testenv"
)

// dialTo pins a client to one agent whatever address metadata names.
func dialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// TestProduceFetchDeleteOnRealS3 proves the agent's produce, fetch, list
// offsets and DeleteRecords paths on real S3 servers (versitygw and MinIO),
// not only the local-directory store: records produced through agent 0 are
// fetched through agent 1, which holds none of them and reads the bucket;
// DeleteRecords moves the log start, and a fetch below it is
// OFFSET_OUT_OF_RANGE.
func TestProduceFetchDeleteOnRealS3(t *testing.T) {
	for _, name := range []string{"versitygw", "minio"} {
		t.Run(name, func(t *testing.T) {
			srv := testenv.S3(t)
			if name == "minio" {
				srv = testenv.MinIO(t)
			}
			c := agenttest.Start(t, agenttest.Options{Agents: 2, S3: &srv})
			ctx := testCtx(t, time.Minute)
			const topic, n = "on-s3", 200
			adm := c.Admin(t)
			if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			prod := c.Client(t, kgo.Dialer(dialTo(c.Agents[0].Addr)), kgo.DefaultProduceTopic(topic))
			var recs []*kgo.Record
			for i := range n {
				recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i % 7)), Value: []byte(fmt.Sprintf("v%03d", i))})
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce via agent 0: %v", err)
			}
			want := map[string]string{}
			for _, r := range recs {
				want[string(r.Value)] = fmt.Sprintf("%d/%d", r.Partition, r.Offset)
			}
			cons := c.Client(t, kgo.Dialer(dialTo(c.Agents[1].Addr)), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			got := map[string]string{}
			for len(got) < n {
				fs := cons.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("fetched %d of %d records through agent 1", len(got), n)
				}
				for _, fe := range fs.Errors() {
					t.Fatalf("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
				}
				fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = fmt.Sprintf("%d/%d", r.Partition, r.Offset) })
			}
			for v, pos := range want {
				if got[v] != pos {
					t.Fatalf("record %s produced at %s, fetched at %q", v, pos, got[v])
				}
			}
			// DeleteRecords through agent 1, then a fetch below the new start.
			adm1 := kadm.NewClient(c.Client(t, kgo.Dialer(dialTo(c.Agents[1].Addr))))
			ends, err := adm1.ListEndOffsets(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			end, _ := ends.Lookup(topic, 0)
			if end.Offset < 2 {
				t.Fatalf("partition 0 holds %d records, want some to delete", end.Offset)
			}
			var o kadm.Offsets
			o.Add(kadm.Offset{Topic: topic, Partition: 0, At: end.Offset / 2})
			dr, err := adm1.DeleteRecords(ctx, o)
			if err != nil || dr.Error() != nil {
				t.Fatalf("delete records: %v %v", err, dr.Error())
			}
			starts, err := kadm.NewClient(prod).ListStartOffsets(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			if s, _ := starts.Lookup(topic, 0); s.Offset != end.Offset/2 {
				t.Fatalf("log start through agent 0 is %d after DeleteRecords at %d", s.Offset, end.Offset/2)
			}
			low := c.Client(t, kgo.Dialer(dialTo(c.Agents[0].Addr)),
				kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}),
				kgo.ConsumeResetOffset(kgo.NoResetOffset()))
			for {
				fs := low.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatal("no OFFSET_OUT_OF_RANGE for a fetch below the log start")
				}
				if errs := fs.Errors(); len(errs) > 0 {
					if errs[0].Err != kerr.OffsetOutOfRange {
						t.Fatalf("fetch below the log start: %v, want OFFSET_OUT_OF_RANGE", errs[0].Err)
					}
					break
				}
				if fs.NumRecords() > 0 {
					t.Fatalf("fetched %d records below the log start", fs.NumRecords())
				}
			}
		})
	}
}
