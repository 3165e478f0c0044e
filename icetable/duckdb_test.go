package icetable_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/iceberg-go/table"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/replay/replaytest"
	"github.com/shale-dev/shale/s3tier"
)

// duckRead reads the data files the table's current snapshot's manifests
// list with DuckDB (tests/js/duckdb_read.mjs), copied out of the store,
// and returns the rows in partition, offset order.
func duckRead(t *testing.T, ctx context.Context, store s3tier.Store, tbl *table.Table) []replaytest.Rec {
	t.Helper()
	var recs []replaytest.Rec
	for _, r := range duckRows(t, ctx, store, tbl, false) {
		recs = append(recs, r.Rec)
	}
	return recs
}

// jsonRow is a json table row: its metadata columns as a Rec (Value is
// _raw) and its non-null value columns.
type jsonRow struct {
	Rec  replaytest.Rec
	Cols map[string]any
}

// duckRows reads the table's current data files with DuckDB; with
// jsonMode, a json table's rows with their value columns.
func duckRows(t *testing.T, ctx context.Context, store s3tier.Store, tbl *table.Table, jsonMode bool) []jsonRow {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is missing (%v): run `make test-deps`", err)
	}
	js, err := filepath.Abs("../tests/js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(js, "node_modules", "@duckdb", "node-api", "package.json")); err != nil {
		t.Fatalf("@duckdb/node-api is missing (%v): run `make test-deps` (scripts/test-deps.sh) to install it", err)
	}
	keys, err := icetable.DataFiles(ctx, store, tbl)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		return nil
	}
	dir := t.TempDir()
	var files []string
	for i, k := range keys {
		rc, err := store.GetRange(ctx, k, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, strings.ReplaceAll(filepath.Base(k), "'", "_"))
		name = strings.TrimSuffix(name, ".parquet") + "-" + string(rune('a'+i%26)) + ".parquet"
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, name)
	}
	args := []string{filepath.Join(js, "duckdb_read.mjs")}
	if jsonMode {
		args = append(args, "--json")
	}
	cmd := exec.CommandContext(ctx, node, append(args, files...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb_read.mjs: %v: %s", err, stderr.String())
	}
	type hdr struct {
		K string  `json:"k"`
		V *string `json:"v"`
	}
	var row struct {
		P int32          `json:"p"`
		O int64          `json:"o"`
		T int64          `json:"t"`
		K *string        `json:"k"`
		V *string        `json:"v"`
		H []hdr          `json:"h"`
		C map[string]any `json:"c"`
	}
	unhex := func(s *string) []byte {
		if s == nil {
			return nil
		}
		b, err := hex.DecodeString(*s)
		if err != nil {
			t.Fatalf("duckdb hex %q: %v", *s, err)
		}
		return b
	}
	var rows []jsonRow
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		row.K, row.V, row.H, row.C = nil, nil, nil, nil
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("duckdb row %q: %v", sc.Text(), err)
		}
		r := replaytest.Rec{Partition: row.P, Offset: row.O, Timestamp: row.T, Key: unhex(row.K), Value: unhex(row.V)}
		for _, h := range row.H {
			r.Headers = append(r.Headers, kmsg.Header{Key: h.K, Value: unhex(h.V)})
		}
		for k, v := range row.C {
			if v == nil {
				delete(row.C, k)
			}
		}
		if len(row.C) == 0 {
			row.C = nil
		}
		rows = append(rows, jsonRow{r, row.C})
	}
	return rows
}
