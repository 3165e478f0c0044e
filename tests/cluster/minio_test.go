package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/internal/testenv"
)

// TestTwoAgentsOnMinIO proves a two-agent cluster runs on MinIO (the
// second S3 implementation): records produced through agent 0 are read
// back through agent 1, and MinIO holds the objects (listed with minio-go,
// not through shale).
func TestTwoAgentsOnMinIO(t *testing.T) {
	srv := testenv.MinIO(t)
	c := Start(t, Options{Agents: 2, S3: &srv})
	const topic, n = "on-minio", 200
	c.CreateTopic(t, 0, topic, 4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prod := c.Client(t, kgo.SeedBrokers(c.Addr(0)), kgo.Dialer(DialTo(c.Addr(0))), kgo.DefaultProduceTopic(topic))
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("v%03d", i))})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce via agent 0: %v", err)
	}
	cons := c.Client(t, kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(DialTo(c.Addr(1))),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]string{}
	for len(got) < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records through agent 1", len(got), n)
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = fmt.Sprintf("%d/%d", r.Partition, r.Offset) })
	}
	for _, r := range recs {
		if want := fmt.Sprintf("%d/%d", r.Partition, r.Offset); got[string(r.Value)] != want {
			t.Errorf("record %s acknowledged at %s, read at %q", r.Value, want, got[string(r.Value)])
		}
	}
	objects := 0
	for o := range srv.Minio(t).ListObjects(ctx, srv.Bucket, minio.ListObjectsOptions{Prefix: "test/", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		objects++
	}
	if objects == 0 {
		t.Fatalf("MinIO bucket %s holds no object under test/", srv.Bucket)
	}
}
