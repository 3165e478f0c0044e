package cli

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shale-dev/shale/replay/replaytest"
)

// testParquet replays the Fixture to Parquet through the command, with a
// small file size so partitions roll over several files, and reads the
// files back with an independent implementation (xitongsys/parquet-go):
// row counts, every value, and a checksum match the Kafka consumer's.
func testParquet(t *testing.T, f *replaytest.Fixture) {
	ctx := replaytest.Ctx(t)
	dir := t.TempDir()
	var errb bytes.Buffer
	if code := Execute(ctx, []string{"replay", "-t", f.Topic, "--format", "parquet", "--out", dir, "--parquet-file-bytes", "16KiB",
		"--parallel", "2", "--etcd-endpoints", strings.Join(f.C.Endpoints, ","), "--etcd-namespace", f.C.Namespace, "--bucket", f.C.BucketDir},
		nil, &bytes.Buffer{}, &errb); code != 0 {
		t.Fatalf("shale replay --format parquet: exit %d: %s", code, errb.String())
	}
	var got []replaytest.Rec
	files := 0
	for p := range f.Parts {
		names, err := filepath.Glob(filepath.Join(dir, fmt.Sprintf("%s-%d-*.parquet", f.Topic, p)))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		if len(names) < 2 {
			t.Errorf("partition %d: %d parquet files, want the output rolled over several", p, len(names))
		}
		for _, name := range names {
			got = append(got, replaytest.ReadParquet(t, name)...)
			files++
		}
	}
	replaytest.CompareRecs(t, "parquet read back by xitongsys/parquet-go", got, f.Want)
	if g, w := replaytest.Checksum(got), replaytest.Checksum(f.Want); g != w {
		t.Fatalf("checksum %x, want %x", g, w)
	}
	t.Logf("%d records in %d parquet files, checksum %x", len(got), files, replaytest.Checksum(got))
}
