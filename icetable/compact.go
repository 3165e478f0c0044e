package icetable

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/apache/iceberg-go/table/compaction"
	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"

	"github.com/shale-dev/shale/metastore"
)

// ConfigTargetFileBytes is the topic config sizing a table's data files.
const ConfigTargetFileBytes = metastore.ConfigIcebergTargetFileBytes

// DefaultTargetFileBytes is the data file size a table aims at.
const DefaultTargetFileBytes = metastore.DefaultIcebergTargetFileBytes

// TargetFileBytesOf returns a topic's shale.iceberg.target.file.bytes
// (unset or invalid: DefaultTargetFileBytes; the agents refuse invalid
// values).
func TargetFileBytesOf(configs map[string]string) int64 {
	if n, err := strconv.ParseInt(configs[ConfigTargetFileBytes], 10, 64); err == nil && n >= 1024 {
		return n
	}
	return DefaultTargetFileBytes
}

// summaryReplaced names, in a rewrite snapshot's summary, the file
// listing the data files it replaced (JSON array of locations): they are
// deleted when the snapshot before it expires, no snapshot naming them
// any more.
const summaryReplaced = "shale.replaced-files"

// compact rewrites the table's small data files (under 75% of the
// topic's target size, at least 5 in a partition) into files of about the
// target size, in one snapshot whose summary carries the current one's
// shale properties forward: the rows, and so the offsets, are the same.
// A partition's small files are rewritten once they add up to 75% of the
// target, or once its hour or day is over by closeGrace: not at every
// pass, which would rewrite an open partition's data again and again. It
// returns the files removed and added (0, 0: nothing to do).
func (h *handle) compact(ctx context.Context, now time.Time) (int, int, error) {
	snap := h.tbl.CurrentSnapshot()
	if snap == nil {
		return 0, 0, nil
	}
	target := TargetFileBytesOf(h.topic.Configs)
	tasks, err := h.tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("table %s: plan files: %w", h.topic.Name, err)
	}
	cfg := compaction.DefaultConfig()
	cfg.TargetFileSizeBytes, cfg.MinFileSizeBytes, cfg.MaxFileSizeBytes = target, target*3/4, target*9/5
	plan, err := cfg.PlanCompaction(tasks)
	if err != nil {
		return 0, 0, fmt.Errorf("table %s: plan compaction: %w", h.topic.Name, err)
	}
	if len(plan.Groups) == 0 {
		return 0, 0, nil
	}
	var groups []table.CompactionTaskGroup
	for _, g := range plan.Groups {
		if g.TotalSizeBytes >= cfg.MinFileSizeBytes || h.closed(g.Tasks, now) {
			groups = append(groups, table.CompactionTaskGroup{PartitionKey: g.PartitionKey, Tasks: g.Tasks, TotalSizeBytes: g.TotalSizeBytes})
		}
	}
	if len(groups) == 0 {
		return 0, 0, nil
	}
	props := iceberg.Properties{}
	for _, k := range []string{SummaryOffsets, SummarySkipped, SummaryRaw} {
		if v, ok := snap.Summary.Properties[k]; ok {
			props[k] = v
		}
	}
	var replaced []string
	for _, g := range groups {
		for _, t := range g.Tasks {
			replaced = append(replaced, t.File.FilePath())
		}
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(replaced); err != nil {
		return 0, 0, err
	}
	list := fmt.Sprintf("%s/metadata/replaced-%s.json", h.location(), uuid.New())
	if err := h.fsio.WriteFile(list, buf.Bytes()); err != nil {
		return 0, 0, err
	}
	props[summaryReplaced] = list
	if kvRewrite && h.mode() == ModeKeyValue && h.sameSpec(groups) {
		removed, added, err := h.rewriteKV(ctx, groups, props)
		if err == nil || ctx.Err() != nil {
			return removed, added, err
		}
		// Files parquet-go could not read (written by another writer):
		// iceberg-go's rewrite below; what rewriteKV wrote is an orphan.
		kvRewriteFallbacks.Add(1)
		slog.Warn("iceberg rewrite with parquet-go failed, rewriting with iceberg-go", "topic", h.topic.Name, "err", err)
	}
	tx := h.tbl.NewTransaction()
	res, err := tx.RewriteDataFiles(ctx, groups, table.RewriteDataFilesOptions{SnapshotProps: maps.Clone(props),
		GroupOptions: []table.CompactionGroupOption{table.WithCompactionTargetFileSize(target)}})
	if err != nil {
		return 0, 0, fmt.Errorf("table %s: rewrite data files: %w", h.topic.Name, err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("table %s: commit rewrite: %w", h.topic.Name, err)
	}
	return res.RemovedDataFiles, res.AddedDataFiles, nil
}

// kvRewrite: key_value tables' files are rewritten with parquet-go
// (rewriteKV); off only in tests, to compare.
var kvRewrite = true

// kvRewriteFallbacks counts rewrites rewriteKV failed and iceberg-go redid.
var kvRewriteFallbacks atomic.Int64

// sameSpec reports whether every file of groups is of the table's
// current partition spec (files of an older one are left to iceberg-go's
// rewrite).
func (h *handle) sameSpec(groups []table.CompactionTaskGroup) bool {
	spec := h.tbl.Spec()
	cur := int32(spec.ID())
	for _, g := range groups {
		for _, t := range g.Tasks {
			if t.File.SpecID() != cur || len(t.DeleteFiles)+len(t.EqualityDeleteFiles)+len(t.DeletionVectorFiles) > 0 {
				return false
			}
		}
	}
	return true
}

// rewriteKV rewrites the files of groups of a key_value table as the
// commits write theirs (Data files in doc.go): parquet-go reads each
// file's rows and a kvWriter per group writes them into files of the
// target size, the groups in parallel (up to 2); then one snapshot with
// props replaces the files (iceberg-go's RewriteFiles). A group whose
// rows read differ in number from its files' record counts fails the
// rewrite: nothing is committed.
func (h *handle) rewriteKV(ctx context.Context, groups []table.CompactionTaskGroup, props iceberg.Properties) (int, int, error) {
	var old []iceberg.DataFile
	perGroup := make([][]iceberg.DataFile, len(groups))
	for i, grp := range groups {
		seen := map[string]bool{}
		for _, t := range grp.Tasks {
			if !seen[t.File.FilePath()] {
				seen[t.File.FilePath()] = true
				perGroup[i] = append(perGroup[i], t.File)
			}
		}
		old = append(old, perGroup[i]...)
	}
	paths, _, err := h.writeKV(ctx, 2, len(groups), func(_ context.Context, i int, w *kvWriter) error {
		return h.readKV(w, perGroup[i])
	})
	if err != nil {
		return 0, 0, fmt.Errorf("table %s: rewrite: %w", h.topic.Name, err)
	}
	dfs, err := h.dataFiles(ctx, h.tbl.Schema(), h.tbl.Spec(), h.tbl.Properties(), paths)
	if err != nil {
		return 0, 0, fmt.Errorf("table %s: rewrite: %w", h.topic.Name, err)
	}
	tx := h.tbl.NewTransaction()
	rw := tx.NewRewrite(props)
	for _, df := range old {
		rw.DeleteFile(df)
	}
	for _, df := range dfs {
		rw.AddDataFile(df)
	}
	if err := rw.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("table %s: rewrite: %w", h.topic.Name, err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("table %s: commit rewrite: %w", h.topic.Name, err)
	}
	return len(old), len(dfs), nil
}

// readKV passes the rows of files to w, checking each file's row count.
func (h *handle) readKV(w *kvWriter, files []iceberg.DataFile) error {
	buf := make([]kvRow, 256)
	for _, df := range files {
		f, err := h.fsio.Open(df.FilePath())
		if err != nil {
			return err
		}
		sf := f.(*storeFile)
		pf, err := parquet.OpenFile(sf, sf.info.Size)
		if err != nil {
			return fmt.Errorf("%s: %w", df.FilePath(), err)
		}
		r := parquet.NewGenericReader[kvRow](pf)
		var rows int64
		for {
			n, err := r.Read(buf)
			for _, row := range buf[:n] {
				b := int64(len(row.Key)+len(row.Value)) + 20
				for _, hd := range row.Headers {
					b += int64(len(hd.Key) + len(hd.Value))
				}
				w.addRow(row, b)
			}
			rows += int64(n)
			if ferr := w.flush(); ferr != nil {
				r.Close()
				return ferr
			}
			clear(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				r.Close()
				return fmt.Errorf("%s: %w", df.FilePath(), err)
			}
		}
		r.Close()
		if rows != df.Count() {
			return fmt.Errorf("%s: read %d rows, its manifest says %d", df.FilePath(), rows, df.Count())
		}
	}
	return nil
}

// closeGrace is how long after its hour or day a partition is taken as
// closed (late records may still land in it, and are compacted again).
const closeGrace = time.Hour

// closed reports whether the partition of tasks (one partition: a
// compaction group) ended closeGrace before now.
func (h *handle) closed(tasks []table.FileScanTask, now time.Time) bool {
	if len(tasks) == 0 {
		return false
	}
	spec := h.tbl.Metadata().PartitionSpecByID(int(tasks[0].File.SpecID()))
	if spec == nil || spec.NumFields() != 1 {
		return false
	}
	pf := spec.Field(0)
	var n int64
	switch v := tasks[0].File.Partition()[pf.FieldID].(type) {
	case iceberg.Date: // day: days since the epoch
		n = int64(v)
	case int32:
		n = int64(v)
	case int64:
		n = v
	case int:
		n = int64(v)
	default:
		return false
	}
	var end time.Time
	switch pf.Transform.(type) {
	case iceberg.DayTransform:
		end = time.Unix((n+1)*86400, 0)
	case iceberg.HourTransform:
		end = time.Unix((n+1)*3600, 0)
	default:
		return false
	}
	return now.After(end.Add(closeGrace))
}

// deleteReplaced deletes the data files replaced by the rewrite snapshots
// of pre whose parent the last commit expired (then no snapshot older
// than the rewrite remains: expiry goes by age along the one branch), and
// their lists. Best effort: what is not deleted is an orphan.
func (h *handle) deleteReplaced(pre table.Metadata, expired map[int64]bool) {
	for _, s := range pre.Snapshots() {
		if s.ParentSnapshotID == nil || !expired[*s.ParentSnapshotID] || s.Summary == nil {
			continue
		}
		list := s.Summary.Properties[summaryReplaced]
		if list == "" {
			continue
		}
		b, err := h.fsio.ReadFile(list)
		var files []string
		if err != nil || json.Unmarshal(b, &files) != nil {
			continue
		}
		for _, f := range files {
			_ = h.fsio.Remove(f)
		}
		_ = h.fsio.Remove(list)
	}
}
