package icetable

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"sync"

	"github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/s3tier"
)

// ExportOptions tunes a one-off table export (`shale replay --format
// iceberg`).
type ExportOptions struct {
	Mode        Mode   // key_value or json
	Partition   string // day or hour
	CommitBytes int64  // rows buffered per commit, in record bytes (DefaultCommitBytes)
}

// ExportStats counts an export.
type ExportStats struct {
	Rows, Raw int64
	Commits   int
	Files     int
	Location  string
}

// ErrTableExists: an export's destination already holds a table.
var ErrTableExists = errors.New("icetable: the destination already holds an Iceberg table")

// Export writes a one-off Iceberg table of the records plan covers into
// dst (its root is the table's location: metadata/ and data/), in the
// mode and partitioning of opts, with the layout and schema of a
// materialized table. Records of aborted transactions, and those past a
// partition's last stable offset, are left out, as in materialized
// tables. Partitions are read one after the other, in offset order; rows
// are committed every CommitBytes of record bytes, each commit a new
// metadata/v<N>.metadata.json named by metadata/version-hint.text, which
// path readers open. A destination that already holds a table is
// refused (ErrTableExists). No etcd pointer: the table is not
// maintained, and nothing is written to etcd.
func Export(ctx context.Context, meta *metastore.Store, src, dst s3tier.Store, plan *replay.Plan, opts ExportOptions) (ExportStats, error) {
	var st ExportStats
	if opts.Mode != ModeKeyValue && opts.Mode != ModeJSON {
		return st, fmt.Errorf("mode %q: %w (use key_value or json)", opts.Mode, ErrUnknownMode)
	}
	if opts.Partition != PartitionDay && opts.Partition != PartitionHour {
		return st, fmt.Errorf("partition %q: use day or hour", opts.Partition)
	}
	if opts.CommitBytes <= 0 {
		opts.CommitBytes = DefaultCommitBytes
	}
	if _, err := dst.Head(ctx, "metadata/"+versionHint); err == nil {
		return st, fmt.Errorf("%s: %w: choose an empty location", baseURI(dst), ErrTableExists)
	} else if !s3tier.IsNotFound(err) {
		return st, err
	}
	topic := plan.Topic
	topic.Configs = maps.Clone(topic.Configs)
	if topic.Configs == nil {
		topic.Configs = map[string]string{}
	}
	topic.Configs[ConfigMode], topic.Configs[ConfigPartition] = string(opts.Mode), opts.Partition
	h := &handle{store: dst, fsio: newStoreIO(ctx, dst), topic: topic, oneOff: true, dir: baseURI(dst)}
	st.Location = h.dir
	if err := h.create(ctx, opts.Mode); err != nil {
		return st, err
	}
	states, err := meta.PartitionStates(ctx, topic.ID)
	if err != nil {
		return st, err
	}
	for _, pp := range plan.Partitions {
		end := min(pp.End, states[pp.Partition].LastStableOffset())
		if pp.Start >= end {
			continue
		}
		aborted, err := meta.AbortedTxns(ctx, topic.ID, pp.Partition, pp.Start, end, 1<<20)
		if err != nil {
			return st, err
		}
		sub := *plan
		pp.End = end
		sub.Partitions = []replay.PartitionPlan{pp}
		ex := &exporter{ctx: ctx, h: h, limit: opts.CommitBytes, st: &st}
		if err := ex.begin(); err != nil {
			return st, err
		}
		err = sub.Run(ctx, meta, src, &rowSink{mu: &sync.Mutex{}, add: ex.add, aborted: aborted}, nil)
		if err == nil {
			err = ex.err
		}
		if err == nil {
			err = ex.flush()
		}
		ex.end()
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// exporter buffers one partition's rows and commits them every limit
// record bytes.
type exporter struct {
	ctx   context.Context
	h     *handle
	limit int64
	st    *ExportStats
	rb    *rowBuilder
	jb    *jsonBuilder
	bytes int64 // record bytes buffered
	err   error
}

func (e *exporter) begin() error {
	rb, err := newRowBuilder(e.h.tbl.Schema())
	if err != nil {
		return err
	}
	e.rb, e.jb = rb, nil
	if e.h.mode() == ModeJSON {
		e.jb = newJSONBuilder(rb, e.h.tbl.Schema())
	}
	return nil
}

func (e *exporter) end() {
	if e.jb != nil {
		e.jb.release()
	}
	e.rb.release()
}

func (e *exporter) add(r replay.Record) {
	if e.err != nil {
		return
	}
	if e.jb != nil {
		e.jb.add(r)
	} else {
		e.rb.add(r, r.Value)
	}
	e.bytes += int64(len(r.Key)+len(r.Value)) + 24
	for _, h := range r.Headers {
		e.bytes += int64(len(h.Key) + len(h.Value))
	}
	if e.bytes >= e.limit {
		e.err = e.flush()
	}
}

// flush commits the buffered rows (none: nothing).
func (e *exporter) flush() error {
	if e.rb.rows == 0 {
		return nil
	}
	e.bytes = 0
	var raw int64
	if e.jb != nil {
		raw, e.jb.raw = e.jb.raw, 0
	}
	props := iceberg.Properties{SummaryRaw: strconv.FormatInt(e.st.Raw+raw, 10)}
	rows, files, err := e.h.appendRows(e.ctx, e.rb, e.jb, props)
	if err != nil {
		return err
	}
	e.st.Rows += rows
	e.st.Raw += raw
	e.st.Files += files
	e.st.Commits++
	return nil
}

// LoadPath opens a table by path, as engines without a catalog do: dir's
// metadata/version-hint.text names metadata/v<N>.metadata.json (a table
// Export wrote, or a materialized table's directory, TableKey). Read
// only.
func LoadPath(ctx context.Context, store s3tier.Store, dir string) (*table.Table, error) {
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	rc, err := store.GetRange(ctx, prefix+"metadata/"+versionHint, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("open table %s: %w", Location(store, dir), err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("table %s: bad %s %q", Location(store, dir), versionHint, b)
	}
	fsio := newStoreIO(ctx, store)
	loc := Location(store, prefix+"metadata/v"+strconv.Itoa(n)+".metadata.json")
	tbl, err := table.NewFromLocation(ctx, table.Identifier{"shale", dir}, loc,
		func(context.Context) (icebergio.IO, error) { return fsio, nil }, nil)
	if err != nil {
		return nil, fmt.Errorf("load table %s: %w", loc, err)
	}
	return tbl, nil
}
