package icetable

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay"
)

// Mode is a topic's shale.iceberg.mode.
type Mode string

// Modes of shale.iceberg.mode.
const (
	ModeDisabled Mode = metastore.IcebergDisabled
	ModeKeyValue Mode = metastore.IcebergKeyValue
	ModeJSON     Mode = metastore.IcebergJSON
)

// ConfigMode is the topic config naming a topic's table mode.
const ConfigMode = metastore.ConfigIcebergMode

// Partition granularities of shale.iceberg.partition.
const (
	ConfigPartition = metastore.ConfigIcebergPartition
	PartitionDay    = metastore.IcebergPartitionDay
	PartitionHour   = metastore.IcebergPartitionHour
)

// PartitionOf returns a topic's table partition granularity (unset or
// unknown: day; the agents refuse other values).
func PartitionOf(configs map[string]string) string {
	if configs[ConfigPartition] == PartitionHour {
		return PartitionHour
	}
	return PartitionDay
}

// partitionField is the partition field of a table partitioned by the
// timestamp column ts at granularity (day or hour): ts_day or ts_hour.
func partitionField(ts, granularity string) (iceberg.Transform, string) {
	if granularity == PartitionHour {
		return iceberg.HourTransform{}, ts + "_hour"
	}
	return iceberg.DayTransform{}, ts + "_day"
}

// ModeOf returns a topic's mode from its configs (unset: disabled).
func ModeOf(configs map[string]string) Mode {
	if m, ok := configs[ConfigMode]; ok {
		return Mode(m)
	}
	return ModeDisabled
}

// Table properties shale sets.
const (
	propTopicID = "shale.topic-id"
	propMode    = "shale.iceberg.mode"
)

// Columns of a json table besides the value's fields: the record's
// metadata, and _raw, the whole value of a record whose value could not
// go into columns as is (null otherwise).
const (
	ColPartition = "_partition"
	ColOffset    = "_offset"
	ColTimestamp = "_timestamp"
	ColKey       = "_key"
	ColRaw       = "_raw"
	ColHeaders   = "_headers"
)

// metaColumns is how many columns of a table's schema precede a json
// table's value columns (the same 6 in both modes: key_value's value is
// json's _raw, at the same position).
const metaColumns = 6

// tableSchema is a mode's initial table schema. key_value: replay's
// Parquet schema in Iceberg types (timestamp is timestamptz,
// microseconds, as Iceberg has no millisecond timestamp). json: the same
// columns under underscored names (a JSON field is often called
// "timestamp" or "key"), value replaced by _raw; value columns are added
// as fields appear. Both are partitioned by day or hour (granularity) of
// the timestamp.
func tableSchema(mode Mode, granularity string) (*iceberg.Schema, iceberg.PartitionSpec) {
	names := [...]string{"partition", "offset", "timestamp", "key", "value", "headers"}
	if mode == ModeJSON {
		names = [...]string{ColPartition, ColOffset, ColTimestamp, ColKey, ColRaw, ColHeaders}
	}
	sc := iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: names[0], Type: iceberg.PrimitiveTypes.Int32, Required: true},
		iceberg.NestedField{ID: 2, Name: names[1], Type: iceberg.PrimitiveTypes.Int64, Required: true},
		iceberg.NestedField{ID: 3, Name: names[2], Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
		iceberg.NestedField{ID: 4, Name: names[3], Type: iceberg.PrimitiveTypes.Binary},
		iceberg.NestedField{ID: 5, Name: names[4], Type: iceberg.PrimitiveTypes.Binary},
		iceberg.NestedField{ID: 6, Name: names[5], Required: true, Type: &iceberg.ListType{
			ElementID: 7, ElementRequired: true, Element: &iceberg.StructType{FieldList: []iceberg.NestedField{
				{ID: 8, Name: "key", Type: iceberg.PrimitiveTypes.String, Required: true},
				{ID: 9, Name: "value", Type: iceberg.PrimitiveTypes.Binary},
			}},
		}},
	)
	tr, name := partitionField(names[2], granularity)
	spec := iceberg.NewPartitionSpec(iceberg.PartitionField{SourceIDs: []int{3}, FieldID: 1000, Name: name, Transform: tr})
	return sc, spec
}

// rowBuilder accumulates records as Arrow columns of a table schema's
// first metaColumns columns.
type rowBuilder struct {
	b                               *array.RecordBuilder
	part, off, ts, key, val, hl, hs array.Builder
	hk, hv                          array.Builder
	rows                            int
}

func newRowBuilder(sc *iceberg.Schema) (*rowBuilder, error) {
	fields := sc.Fields()
	if len(fields) < metaColumns {
		return nil, fmt.Errorf("table schema %v: want at least %d columns", sc, metaColumns)
	}
	as, err := table.SchemaToArrowSchema(iceberg.NewSchema(sc.ID, fields[:metaColumns]...), nil, true, false)
	if err != nil {
		return nil, fmt.Errorf("arrow schema: %w", err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, as)
	hl := b.Field(5).(*array.ListBuilder)
	hs := hl.ValueBuilder().(*array.StructBuilder)
	return &rowBuilder{b: b, part: b.Field(0), off: b.Field(1), ts: b.Field(2), key: b.Field(3), val: b.Field(4),
		hl: hl, hs: hs, hk: hs.FieldBuilder(0), hv: hs.FieldBuilder(1)}, nil
}

func appendBytes(b array.Builder, v []byte) {
	if v == nil {
		b.AppendNull()
		return
	}
	b.(*array.BinaryBuilder).Append(v)
}

// add appends one record, value in the fifth column (key_value's value,
// json's _raw).
func (r *rowBuilder) add(rec replay.Record, value []byte) {
	r.part.(*array.Int32Builder).Append(rec.Partition)
	r.off.(*array.Int64Builder).Append(rec.Offset)
	r.ts.(*array.TimestampBuilder).Append(arrow.Timestamp(rec.Timestamp * 1000))
	appendBytes(r.key, rec.Key)
	appendBytes(r.val, value)
	r.hl.(*array.ListBuilder).Append(true)
	for _, h := range rec.Headers {
		r.hs.(*array.StructBuilder).Append(true)
		r.hk.(*array.StringBuilder).Append(h.Key)
		appendBytes(r.hv, h.Value)
	}
	r.rows++
}

// take returns the rows added so far as one record batch and resets.
func (r *rowBuilder) take() arrow.RecordBatch {
	r.rows = 0
	return r.b.NewRecordBatch()
}

func (r *rowBuilder) release() { r.b.Release() }
