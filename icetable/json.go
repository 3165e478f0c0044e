package icetable

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/shale-dev/shale/replay"
)

// MaxJSONColumns bounds a json table's value columns: a field that would
// add one more is a conflict (the record's value goes to _raw), so values
// keyed by ids cannot grow the schema without bound.
const MaxJSONColumns = 1000

// maxJSONName bounds a column name's bytes; a longer field name is a
// conflict.
const maxJSONName = 255

// jsonKind is what a value column holds, from the JSON type that created
// it.
type jsonKind uint8

const (
	kindNull   jsonKind = iota // JSON null: no column, no conflict
	kindBool                   // boolean
	kindNumber                 // double
	kindString                 // string
	kindText                   // string: the JSON text of an object or array
	kindOther                  // a column of another type (added by hand): every value conflicts
)

// docText marks a string column holding JSON text (objects, arrays), so
// that a JSON string and an object never share a column.
const docText = "shale json: JSON text of an object or array"

var kindDocs = [...]string{kindBool: "shale json: JSON boolean", kindNumber: "shale json: JSON number",
	kindString: "shale json: JSON string", kindText: docText}

func (k jsonKind) icebergType() iceberg.Type {
	switch k {
	case kindBool:
		return iceberg.PrimitiveTypes.Bool
	case kindNumber:
		return iceberg.PrimitiveTypes.Float64
	}
	return iceberg.PrimitiveTypes.String
}

func (k jsonKind) arrowType() arrow.DataType {
	switch k {
	case kindBool:
		return arrow.FixedWidthTypes.Boolean
	case kindNumber:
		return arrow.PrimitiveTypes.Float64
	}
	return arrow.BinaryTypes.String
}

func kindOf(f iceberg.NestedField) jsonKind {
	switch f.Type.(type) {
	case iceberg.BooleanType:
		return kindBool
	case iceberg.Float64Type:
		return kindNumber
	case iceberg.StringType:
		if f.Doc == docText {
			return kindText
		}
		return kindString
	}
	return kindOther
}

// jsonCol is one value column: an existing one of the table or one this
// commit adds.
type jsonCol struct {
	name string
	kind jsonKind
	add  bool          // new in this commit
	b    array.Builder // nil until a value or the end
}

// jsonBuilder turns records into a json table's rows: metadata and _raw
// through rb, value fields into value columns, adding a column for a
// field first seen (records come in partition, offset order, so the
// columns a commit adds, and which value of two conflicting ones gets the
// column, do not depend on timing).
type jsonBuilder struct {
	rb     *rowBuilder
	cols   []*jsonCol
	byName map[string]*jsonCol
	folded map[string]bool // lower-cased names taken (metadata columns too)
	raw    int64           // rows with _raw set
}

func newJSONBuilder(rb *rowBuilder, sc *iceberg.Schema) *jsonBuilder {
	j := &jsonBuilder{rb: rb, byName: map[string]*jsonCol{}, folded: map[string]bool{}}
	for i, f := range sc.Fields() {
		j.folded[strings.ToLower(f.Name)] = true
		if i >= metaColumns {
			c := &jsonCol{name: f.Name, kind: kindOf(f)}
			j.cols = append(j.cols, c)
			j.byName[f.Name] = c
		}
	}
	return j
}

// jsonField is one field of a value object.
type jsonField struct {
	name string
	raw  json.RawMessage
}

// objectFields returns the fields of value, a JSON object, in order; ok
// is false when value is not valid UTF-8, not one valid JSON value, not
// an object, or has a field name twice. Once json.Valid has checked the
// whole value, a scan finds the fields' bounds (objectFieldsDecoder, the
// encoding/json Decoder it replaces, took 3 times the CPU; the fuzz
// target compares the two).
func objectFields(value []byte) (fields []jsonField, ok bool) {
	if !utf8.Valid(value) || !json.Valid(value) {
		return nil, false
	}
	i := skipSpace(value, 0)
	if i >= len(value) || value[i] != '{' {
		return nil, false
	}
	var seen map[string]bool
	i = skipSpace(value, i+1)
	if value[i] == '}' {
		return nil, true
	}
	for {
		end := valueEnd(value, i) // the name: a string
		name := string(value[i+1 : end-1])
		if bytes.IndexByte(value[i:end], '\\') >= 0 {
			if json.Unmarshal(value[i:end], &name) != nil {
				return nil, false
			}
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		if seen[name] {
			return nil, false
		}
		seen[name] = true
		i = skipSpace(value, end) // ':'
		i = skipSpace(value, i+1) // the value
		end = valueEnd(value, i)
		fields = append(fields, jsonField{name, json.RawMessage(value[i:end])})
		i = skipSpace(value, end) // ',' or '}'
		if value[i] == '}' {
			return fields, true
		}
		i = skipSpace(value, i+1)
	}
}

// skipSpace returns the index of the first byte from i on that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the end of the JSON value starting at i in b, valid
// JSON (json.Valid): a string to its closing quote, an object or array
// to its closing bracket, anything else to the next delimiter.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// stringEnd returns the index after the closing quote of the JSON string
// starting at i.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// maxExactInt is 2^53: integers from it on may not survive a double.
const maxExactInt = 1 << 53

// fieldValue classifies a field's JSON value; ok is false for a number a
// double cannot hold (out of range, or an integer of magnitude 2^53 or
// more).
func fieldValue(raw json.RawMessage) (kind jsonKind, v any, ok bool) {
	switch raw[0] {
	case 'n':
		return kindNull, nil, true
	case 't', 'f':
		return kindBool, raw[0] == 't', true
	case '"':
		if len(raw) >= 2 && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
			// No escape: the text between the quotes (valid UTF-8 and
			// JSON, checked by objectFields), as json.Unmarshal would
			// return it, without its reflection (a third of the CPU).
			return kindString, string(raw[1 : len(raw)-1]), true
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return kindString, nil, false
		}
		return kindString, s, true
	case '{', '[':
		return kindText, string(raw), true
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || (!bytes.ContainsAny(raw, ".eE") && math.Abs(f) >= maxExactInt) {
		return kindNumber, nil, false
	}
	return kindNumber, f, true
}

// column returns the column of a field of the given kind, adding it when
// the name is free; nil is a conflict (another kind, or a name that
// cannot be a column).
func (j *jsonBuilder) column(name string, kind jsonKind) *jsonCol {
	if c := j.byName[name]; c != nil {
		if c.kind != kind {
			return nil
		}
		return c
	}
	folded := strings.ToLower(name)
	if name == "" || len(name) > maxJSONName || strings.Contains(name, ".") || j.folded[folded] || len(j.cols) >= MaxJSONColumns {
		return nil
	}
	c := &jsonCol{name: name, kind: kind, add: true}
	j.cols = append(j.cols, c)
	j.byName[name] = c
	j.folded[folded] = true
	return c
}

// add appends one record: its object's fields to their columns, and its
// whole value to _raw when it is not an object or any field conflicts
// (that field's column is then null in the row). A null value (tombstone)
// is a row with every value column and _raw null.
func (j *jsonBuilder) add(rec replay.Record) {
	row := j.rb.rows
	if rec.Value == nil {
		j.rb.add(rec, nil)
		return
	}
	fields, ok := objectFields(rec.Value)
	conflict := !ok
	for _, f := range fields {
		kind, v, ok := fieldValue(f.raw)
		if kind == kindNull {
			continue
		}
		var c *jsonCol
		if ok {
			c = j.column(f.name, kind)
		}
		if c == nil {
			conflict = true
			continue
		}
		if c.b == nil {
			c.b = array.NewBuilder(memory.DefaultAllocator, kind.arrowType())
		}
		if n := row - c.b.Len(); n > 0 {
			c.b.AppendNulls(n)
		}
		switch b := c.b.(type) {
		case *array.BooleanBuilder:
			b.Append(v.(bool))
		case *array.Float64Builder:
			b.Append(v.(float64))
		case *array.StringBuilder:
			b.Append(v.(string))
		}
	}
	if conflict {
		j.raw++
		j.rb.add(rec, rec.Value)
		return
	}
	j.rb.add(rec, nil)
}

// evolve adds this commit's new columns to tx's schema (optional, new
// field IDs; never a column removed or retyped).
func (j *jsonBuilder) evolve(tx *table.Transaction) error {
	us := tx.UpdateSchema(true, false)
	added := false
	for _, c := range j.cols {
		if c.add {
			us.AddColumn([]string{c.name}, c.kind.icebergType(), kindDocs[c.kind], false, nil)
			added = true
		}
	}
	if !added {
		return nil
	}
	return us.Commit()
}

// take returns the rows as one record batch of schema sc (the table's,
// evolved), releasing the value builders.
func (j *jsonBuilder) take(sc *iceberg.Schema) (arrow.RecordBatch, error) {
	as, err := table.SchemaToArrowSchema(sc, nil, true, false)
	if err != nil {
		return nil, fmt.Errorf("arrow schema: %w", err)
	}
	rows := j.rb.rows
	meta := j.rb.take()
	defer meta.Release()
	cols := append([]arrow.Array{}, meta.Columns()...)
	for _, a := range cols {
		a.Retain()
	}
	release := func() {
		for _, a := range cols {
			a.Release()
		}
	}
	for i, f := range sc.Fields()[metaColumns:] {
		c := j.byName[f.Name]
		if c == nil {
			release()
			return nil, fmt.Errorf("table schema column %q: not a json value column", f.Name)
		}
		if c.b == nil {
			c.b = array.NewBuilder(memory.DefaultAllocator, as.Field(metaColumns+i).Type)
		}
		c.b.AppendNulls(rows - c.b.Len())
		cols = append(cols, c.b.NewArray())
		c.b.Release()
		c.b = nil
		c.add = false // in the schema now
	}
	if len(cols) != len(as.Fields()) {
		release()
		return nil, fmt.Errorf("json rows: %d columns for a schema of %d", len(cols), len(as.Fields()))
	}
	defer release()
	return array.NewRecordBatch(as, cols, int64(rows)), nil
}

// release frees builders of a batch never taken.
func (j *jsonBuilder) release() {
	for _, c := range j.cols {
		if c.b != nil {
			c.b.Release()
			c.b = nil
		}
	}
}
