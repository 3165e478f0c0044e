package metastore_test

import (
	"testing"

	"github.com/shale-dev/shale/metastore"
)

// TestClusterRecordIsWrittenOnce proves RecordCluster writes the record
// only when none exists and otherwise returns the first one unchanged (the
// caller compares), Cluster reads it back, an absent record is
// ErrNoClusterRecord and a corrupt one ErrCorruptValue.
func TestClusterRecordIsWrittenOnce(t *testing.T) {
	s, cli, _ := newStore(t)
	ctx := testCtx(t)
	_, err := s.Cluster(ctx)
	wantErr(t, err, metastore.ErrNoClusterRecord)
	first := metastore.ClusterInfo{Bucket: "s3://b/p", S3Endpoint: "http://127.0.0.1:9000", CreatedMs: 1}
	got, err := s.RecordCluster(ctx, first)
	if err != nil || got != first {
		t.Fatalf("first RecordCluster = %+v, %v", got, err)
	}
	got, err = s.RecordCluster(ctx, metastore.ClusterInfo{Bucket: "file:///other", CreatedMs: 2})
	if err != nil || got != first {
		t.Fatalf("second RecordCluster = %+v, %v; want the first record", got, err)
	}
	if got, err := s.Cluster(ctx); err != nil || got != first {
		t.Fatalf("Cluster = %+v, %v", got, err)
	}
	_, err = s.RecordCluster(ctx, metastore.ClusterInfo{Bucket: "relative/dir"})
	wantErr(t, err, metastore.ErrInvalid)
	if _, err := cli.Put(ctx, testNS+"/cluster", `{"bucket":"nowhere"}`); err != nil {
		t.Fatal(err)
	}
	_, err = s.Cluster(ctx)
	wantErr(t, err, metastore.ErrCorruptValue)
}
