package icetable_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/cli"
	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay/replaytest"
)

// jsonCase is a record produced to a json topic and the value columns
// and _raw its row must have.
type jsonCase struct {
	part  int32
	value []byte // nil: a tombstone
	cols  map[string]any
	raw   bool // the whole value is in _raw
}

func obj(s string) []byte { return []byte(s) }

// jsonFixture starts a cluster with a 2-partition topic in json mode.
func jsonFixture(t *testing.T, ctx context.Context, name string) (*replaytest.Fixture, metastore.Topic) {
	t.Helper()
	return topicFixture(t, ctx, name, 2, icetable.ConfigMode, string(icetable.ModeJSON))
}

// topicFixture starts a cluster with a topic of parts partitions created
// with the configs given as name, value pairs.
func topicFixture(t *testing.T, ctx context.Context, name string, parts int32, configs ...string) (*replaytest.Fixture, metastore.Topic) {
	t.Helper()
	c := agenttest.Start(t, agenttest.Options{})
	cfg := map[string]*string{}
	for i := 0; i+1 < len(configs); i += 2 {
		cfg[configs[i]] = kmsg.StringPtr(configs[i+1])
	}
	if r, err := c.Admin(t).CreateTopic(ctx, parts, 1, cfg, name); err != nil || r.Err != nil {
		t.Fatalf("create %s: %v %v", name, err, r.Err)
	}
	tp, err := c.Meta.GetTopic(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return &replaytest.Fixture{C: c, Topic: name, Parts: parts}, tp
}

// produceCases produces the cases in order (each partition's in offset
// order), keyed and with a header naming their index.
func produceCases(t *testing.T, ctx context.Context, f *replaytest.Fixture, from int, cases []jsonCase) {
	t.Helper()
	cl := f.C.Client(t, kgo.DefaultProduceTopic(f.Topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	t0 := time.UnixMilli(1_764_064_800_000)
	for i, c := range cases {
		r := &kgo.Record{Partition: c.part, Key: fmt.Appendf(nil, "k%d", from+i), Value: c.value, Timestamp: t0.Add(time.Duration(from+i) * time.Minute),
			Headers: []kgo.RecordHeader{{Key: "case", Value: fmt.Appendf(nil, "%d", from+i)}}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// wantRows pairs what the consumer read with the cases' columns: the
// consumer's record with Value replaced by the expected _raw.
func wantRows(t *testing.T, consumed []replaytest.Rec, cases []jsonCase) []jsonRow {
	t.Helper()
	if len(consumed) != len(cases) {
		t.Fatalf("consumer read %d records, produced %d", len(consumed), len(cases))
	}
	var out []jsonRow
	for _, r := range consumed {
		var i int
		if _, err := fmt.Sscanf(string(r.Key), "k%d", &i); err != nil {
			t.Fatal(err)
		}
		c := cases[i]
		if !c.raw {
			r.Value = nil
		}
		out = append(out, jsonRow{r, c.cols})
	}
	return out
}

func compareRows(t *testing.T, who string, got, want []jsonRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", who, len(got), len(want))
	}
	for i := range want {
		if !replaytest.EqualRec(got[i].Rec, want[i].Rec) || !reflect.DeepEqual(got[i].Cols, want[i].Cols) {
			t.Fatalf("%s: row %d = %+v %v\nwant %+v %v", who, i, got[i].Rec, got[i].Cols, want[i].Rec, want[i].Cols)
		}
	}
}

// TestMaterializeJSON proves json mode: the fields of object values become
// columns (number double, string string, boolean boolean, object and array
// their JSON text; null and absent the same), added as they appear, with
// new field IDs, across a restart of the job's runner; values that are not
// objects (not JSON, an array, invalid UTF-8) and fields that cannot go to
// a column (another type than the column's, a number a double cannot
// hold, a name taken by a metadata column or by a column differing only in
// case, a name twice) put the whole value in _raw, counted in the status
// and `shale table status` RAW, never dropped; a tombstone is a row of
// nulls. iceberg-go's scan and
// DuckDB read the same rows as the Kafka consumer. Switching the topic to
// key_value then fails the topic with ErrModeChanged, the table intact.
func TestMaterializeJSON(t *testing.T) {
	ctx := replaytest.Ctx(t)
	f, tp := jsonFixture(t, ctx, "events")
	meta, store := f.C.Meta, f.C.Store
	first := []jsonCase{
		{part: 0, value: obj(`{"id":1,"name":"a","ok":true}`), cols: map[string]any{"id": 1.0, "name": "a", "ok": true}},
		{part: 0, value: obj(`{"id":2.5,"nested":{"x":[1, 2]},"tags":["t"]}`), cols: map[string]any{"id": 2.5, "nested": `{"x":[1, 2]}`, "tags": `["t"]`}},
		{part: 0, value: nil},
		{part: 0, value: obj(`[1,2]`), raw: true},
		{part: 0, value: obj(`not json`), raw: true},
		{part: 0, value: obj(`{"id":"three","name":"c"}`), cols: map[string]any{"name": "c"}, raw: true},
		{part: 0, value: obj(`{"n":null,"ok":false}`), cols: map[string]any{"ok": false}},
		{part: 1, value: obj(`{}`)},
		{part: 1, value: obj(` {"ok": true} `), cols: map[string]any{"ok": true}},
	}
	produceCases(t, ctx, f, 0, first)
	run := func(n int, want int64) {
		t.Helper()
		r, err := lifecycle.New(lifecycle.Config{Holder: fmt.Sprintf("runner-%d", n), Interval: time.Hour, IcebergInterval: 20 * time.Millisecond,
			LeaseTTL: 2 * time.Second}, store, meta, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Start()
		defer r.Close()
		for {
			st, err := icetable.Status(ctx, store, meta, tp, time.Now())
			if err == nil && st.Lag == 0 && st.Rows == want {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("runner %d: table never caught up with %d records: %+v %v", n, want, st, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	run(1, int64(len(first)))
	tbl, err := icetable.Load(ctx, store, meta, tp)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, fl := range tbl.Schema().Fields() {
		ids[fl.Name] = fl.ID
	}
	second := []jsonCase{
		{part: 0, value: obj(`{"id":3,"city":"Oslo","n":7}`), cols: map[string]any{"id": 3.0, "city": "Oslo", "n": 7.0}},
		{part: 0, value: obj(`{"nested":"str","ok":true}`), cols: map[string]any{"ok": true}, raw: true},
		{part: 0, value: obj(`{"big":9007199254740993}`), raw: true},
		{part: 0, value: obj(`{"ID":4}`), raw: true},
		{part: 0, value: obj(`{"_offset":1,"id":5}`), cols: map[string]any{"id": 5.0}, raw: true},
		{part: 0, value: obj(`{"a":1,"a":2}`), raw: true},
		{part: 0, value: obj(`{"name":{"first":"x"}}`), raw: true},
		{part: 0, value: obj(`{"e":1e3,"s":"\u00e9\"q","a.b":1}`), cols: map[string]any{"e": 1000.0, "s": "é\"q"}, raw: true},
		{part: 0, value: []byte("{\"x\":\"\xff\"}"), raw: true},
		{part: 1, value: obj(`{"id":-0.5,"late":"yes"}`), cols: map[string]any{"id": -0.5, "late": "yes"}},
	}
	produceCases(t, ctx, f, len(first), second)
	all := append(append([]jsonCase{}, first...), second...)
	run(2, int64(len(all)))

	want := wantRows(t, consumeTopic(t, ctx, f, 2), all)
	tbl, err = icetable.Load(ctx, store, meta, tp)
	if err != nil {
		t.Fatal(err)
	}
	compareRows(t, "iceberg-go scan", scanRows(t, ctx, tbl, jsonNames), want)
	compareRows(t, "DuckDB", duckRows(t, ctx, store, tbl, true), want)

	// The schema only grew: old columns keep their IDs, new ones are
	// optional with higher IDs, in the order the fields appeared.
	var added []string
	for _, fl := range tbl.Schema().Fields() {
		if id, ok := ids[fl.Name]; ok {
			if id != fl.ID {
				t.Fatalf("column %s: ID %d after the restart, %d before", fl.Name, fl.ID, id)
			}
			continue
		}
		if fl.Required || fl.ID <= slicesMax(ids) {
			t.Fatalf("new column %+v: want optional with an ID above %d", fl, slicesMax(ids))
		}
		added = append(added, fl.Name+":"+fl.Type.String())
	}
	if w := []string{"city:string", "n:double", "e:double", "s:string", "late:string"}; !reflect.DeepEqual(added, w) {
		t.Fatalf("columns added after the restart %v, want %v", added, w)
	}
	if got := tbl.Schema().Fields()[6:11]; got[0].Name != "id" || got[0].Type != iceberg.PrimitiveTypes.Float64 ||
		got[3].Name != "nested" || got[3].Type != iceberg.PrimitiveTypes.String {
		t.Fatalf("first columns %v", got)
	}
	var raw int64
	for _, c := range all {
		if c.raw {
			raw++
		}
	}
	st, err := icetable.Status(ctx, store, meta, tp, time.Now())
	if err != nil || st.Raw != raw || st.TableMode != icetable.ModeJSON {
		t.Fatalf("status %+v %v: want %d raw rows, table mode json", st, err, raw)
	}
	t.Logf("%d rows, %d in _raw, %d columns", len(all), st.Raw, len(tbl.Schema().Fields()))
	tableStatus := func() []string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := cli.Execute(ctx, []string{"table", "status", "--etcd-endpoints", strings.Join(f.C.Endpoints, ","), "--etcd-namespace", f.C.Namespace,
			"--bucket", f.C.BucketDir}, nil, &out, &errb); code != 0 {
			t.Fatalf("shale table status: exit %d: %s", code, errb.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 2 || !strings.HasSuffix(strings.Join(strings.Fields(lines[0]), " "), "SNAPSHOTS RAW") {
			t.Fatalf("shale table status:\n%s", out.String())
		}
		t.Logf("shale table status:\n%s", out.String())
		return strings.Fields(lines[1])
	}
	if row := tableStatus(); row[1] != "json" || row[len(row)-1] != strconv.FormatInt(raw, 10) {
		t.Fatalf("shale table status row %v: want mode json, RAW %d", row, raw)
	}

	kv := kvTopic(t, ctx, meta, f.Topic)
	var stats icetable.Stats
	if err := icetable.MaterializeTopic(ctx, store, meta, kv, icetable.Config{}, &stats); !errors.Is(err, icetable.ErrModeChanged) {
		t.Fatalf("pass after switching to key_value: %v, want ErrModeChanged", err)
	}
	if st, err := icetable.Status(ctx, store, meta, kv, time.Now()); err != nil || st.TableMode != icetable.ModeJSON || st.Mode != icetable.ModeKeyValue || st.Rows != int64(len(all)) {
		t.Fatalf("status after the switch: %+v %v", st, err)
	}
	if row := tableStatus(); strings.Join(row[1:4], " ") != "key_value (table: json)" {
		t.Fatalf("shale table status row after the switch %v: want MODE key_value (table: json)", row)
	}
}

func slicesMax(m map[string]int) int {
	n := 0
	for _, v := range m {
		n = max(n, v)
	}
	return n
}
