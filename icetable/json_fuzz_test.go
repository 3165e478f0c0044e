package icetable

import (
	"bytes"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"

	"github.com/shale-dev/shale/replay"
)

// FuzzJSONRows feeds arbitrary values, two records at a time, through a
// json table's row builder: it never panics, every record is a row, a
// value is in _raw exactly when it is counted, and a row the builder did
// not send to _raw is a JSON object.
func FuzzJSONRows(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":"x"}`, `{"a":"x"}`, `[1]`, `{"a":{"b":[1]}}`, `{"a":1,"a":2}`, `{"_raw":1}`, `{"A":true}`,
		`{"n":1e400}`, `{"i":9007199254740993}`, "{\"x\":\"\xff\"}", `null`, `{"":1}`, `{"a.b":null}`, ``} {
		f.Add([]byte(s), []byte(`{"a":2.5,"c":null}`))
	}
	f.Fuzz(func(t *testing.T, v1, v2 []byte) {
		sc, _ := tableSchema(ModeJSON, PartitionDay)
		rb, err := newRowBuilder(sc)
		if err != nil {
			t.Fatal(err)
		}
		defer rb.release()
		j := newJSONBuilder(rb, sc)
		defer j.release()
		for i, v := range [][]byte{v1, v2} {
			before := j.raw
			j.add(replay.Record{Offset: int64(i), Value: v})
			if _, ok := objectFields(v); !ok && j.raw == before {
				t.Fatalf("value %q is not an object, not in _raw", v)
			}
		}
		if len(j.cols) > MaxJSONColumns {
			t.Fatalf("%d columns", len(j.cols))
		}
		// The columns as the table would have them after evolve.
		fields := sc.Fields()
		for _, c := range j.cols {
			fields = append(fields, iceberg.NestedField{ID: 100 + len(fields), Name: c.name, Type: c.kind.icebergType(), Doc: kindDocs[c.kind]})
		}
		sc = iceberg.NewSchema(1, fields...)
		rec, err := j.take(sc)
		if err != nil {
			t.Fatal(err)
		}
		defer rec.Release()
		if rec.NumRows() != 2 {
			t.Fatalf("%d rows for 2 records", rec.NumRows())
		}
		var raw int64
		rawCol := rec.Column(4).(*array.Binary)
		for i, v := range [][]byte{v1, v2} {
			if rawCol.IsValid(i) {
				raw++
				if got := rawCol.Value(i); !bytes.Equal(got, v) {
					t.Fatalf("row %d: _raw %q, value %q", i, got, v)
				}
			}
		}
		if raw != j.raw {
			t.Fatalf("%d rows with _raw, %d counted", raw, j.raw)
		}
	})
}
