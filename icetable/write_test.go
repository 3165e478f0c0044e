package icetable

import (
	"testing"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
)

// TestParquetSchemaFieldIDs proves the Parquet schema of data files
// carries the Iceberg field ID of every column, list element and struct
// field (readers map columns by ID), for a json table with a value
// column added by evolution (ID 10), and that key_value files' schema is
// kvRow's (parquet-go's direct path).
func TestParquetSchemaFieldIDs(t *testing.T) {
	base, _ := tableSchema(ModeJSON, PartitionDay)
	sc := iceberg.NewSchema(1, append(base.Fields(), iceberg.NestedField{ID: 10, Name: "user", Type: iceberg.PrimitiveTypes.String})...)
	ps, err := parquetSchema(sc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"_partition": 1, "_offset": 2, "_timestamp": 3, "_key": 4, "_raw": 5, "_headers": 6,
		"_headers.list.element": 7, "_headers.list.element.key": 8, "_headers.list.element.value": 9, "user": 10}
	got := map[string]int{}
	var walk func(prefix string, n parquet.Node)
	walk = func(prefix string, n parquet.Node) {
		for _, f := range n.Fields() {
			name := prefix + f.Name()
			if f.ID() != 0 {
				got[name] = f.ID()
			}
			walk(name+".", f)
		}
	}
	walk("", ps)
	for k, id := range want {
		if got[k] != id {
			t.Errorf("%s: field ID %d, want %d (IDs %v)", k, got[k], id, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("field IDs %v, want %v", got, want)
	}
	if !parquet.EqualNodes(kvSchema, parquet.SchemaOf(kvRow{})) {
		t.Errorf("key_value schema %v differs from kvRow's %v", kvSchema, parquet.SchemaOf(kvRow{}))
	}
}
