package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

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
	samePositions(t, produceNumbered(ctx, t, c, 0, topic, n), readPositions(ctx, t, c, 1, topic, n))
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
