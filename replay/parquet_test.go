package replay_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	xreader "github.com/xitongsys/parquet-go/reader"
	xsource "github.com/xitongsys/parquet-go/source"

	"github.com/shale-dev/shale/cli"
	"github.com/shale-dev/shale/replay"
)

func timeOf(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// testParquet replays the fixture to Parquet through the command, with a
// small file size so partitions roll over several files, and reads the
// files back with an independent implementation (xitongsys/parquet-go):
// row counts, every value, and a checksum match the Kafka consumer's.
func testParquet(t *testing.T, f *fixture) {
	ctx := testCtx(t)
	dir := t.TempDir()
	var errb bytes.Buffer
	if code := cli.Execute(ctx, []string{"replay", "-t", f.topic, "--format", "parquet", "--out", dir, "--parquet-file-bytes", "48KiB",
		"--parallel", "2", "--etcd-endpoints", strings.Join(f.c.Endpoints, ","), "--etcd-namespace", f.c.Namespace, "--bucket", f.c.BucketDir},
		nil, &bytes.Buffer{}, &errb); code != 0 {
		t.Fatalf("shale replay --format parquet: exit %d: %s", code, errb.String())
	}
	var got []rec
	files := 0
	for p := range f.parts {
		names, err := filepath.Glob(filepath.Join(dir, fmt.Sprintf("%s-%d-*.parquet", f.topic, p)))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		if len(names) < 2 {
			t.Errorf("partition %d: %d parquet files, want the output rolled over several", p, len(names))
		}
		for _, name := range names {
			got = append(got, readParquetIndependently(t, name)...)
			files++
		}
	}
	compareRecs(t, "parquet read back by xitongsys/parquet-go", got, f.want)
	if g, w := checksum(got), checksum(f.want); g != w {
		t.Fatalf("checksum %x, want %x", g, w)
	}
	t.Logf("%d records in %d parquet files, checksum %x", len(got), files, checksum(got))
}

// osFile is xitongsys's source.ParquetFile over a local file.
type osFile struct{ *os.File }

func (f osFile) Open(name string) (xsource.ParquetFile, error) {
	if name == "" {
		name = f.Name()
	}
	o, err := os.Open(name)
	return osFile{o}, err
}

func (f osFile) Create(string) (xsource.ParquetFile, error) {
	return nil, fmt.Errorf("read-only")
}

// readParquetIndependently reads a replay Parquet file column by column
// with xitongsys/parquet-go, rebuilding records (and their header lists
// from repetition and definition levels).
func readParquetIndependently(t testing.TB, name string) []rec {
	t.Helper()
	fh, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	pr, err := xreader.NewParquetColumnReader(osFile{fh}, 1)
	if err != nil {
		t.Fatalf("%s: open: %v", name, err)
	}
	defer pr.ReadStop()
	n := pr.GetNumRows()
	cols := pr.SchemaHandler.ValueColumns
	if len(cols) != 7 {
		t.Fatalf("%s: %d value columns %q, want 7", name, len(cols), cols)
	}
	read := func(i int) ([]any, []int32, []int32) {
		vals, rls, dls, err := pr.ReadColumnByIndex(int64(i), n)
		if err != nil {
			t.Fatalf("%s: column %s: %v", name, cols[i], err)
		}
		return vals, rls, dls
	}
	parts, _, _ := read(0)
	offs, _, _ := read(1)
	tss, _, _ := read(2)
	keys, _, _ := read(3)
	vals, _, _ := read(4)
	hkeys, hrl, hdl := read(5)
	hvals, _, hvdl := read(6)
	if int64(len(parts)) != n || int64(len(offs)) != n || int64(len(keys)) != n || int64(len(vals)) != n {
		t.Fatalf("%s: %d rows, columns hold %d, %d, %d, %d values", name, n, len(parts), len(offs), len(keys), len(vals))
	}
	bs := func(v any) []byte {
		if v == nil {
			return nil
		}
		return []byte(v.(string))
	}
	out := make([]rec, n)
	for i := range out {
		out[i] = rec{Partition: parts[i].(int32), Offset: offs[i].(int64), Timestamp: tss[i].(int64), Key: bs(keys[i]), Value: bs(vals[i])}
	}
	row := -1
	for j := range hkeys {
		if hrl[j] == 0 {
			row++
		}
		if hdl[j] == 0 { // an empty list
			continue
		}
		var v []byte
		if hvdl[j] == 2 {
			v = bs(hvals[j])
		}
		out[row].Headers = append(out[row].Headers, kmsg.Header{Key: hkeys[j].(string), Value: v})
	}
	if row != int(n)-1 {
		t.Fatalf("%s: header column spans %d rows, want %d", name, row+1, n)
	}
	return out
}

// TestParquetSchema pins the documented schema.
func TestParquetSchema(t *testing.T) {
	dir := t.TempDir()
	w, err := replay.Parquet(dir, "s", 0).Open(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecords([]replay.Record{{Offset: 1, Timestamp: 2, Key: []byte{}, Headers: []kmsg.Header{{Key: "a"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readParquetIndependently(t, filepath.Join(dir, "s-0-000000.parquet"))
	want := []rec{{Offset: 1, Timestamp: 2, Key: []byte{}, Headers: []kmsg.Header{{Key: "a"}}}}
	compareRecs(t, "schema round trip", recs, want)
}
