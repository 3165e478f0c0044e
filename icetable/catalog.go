package icetable

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
)

// Prefix is where the tables live in the bucket: Prefix + <topic>/ holds
// a topic's table, in Iceberg's metadata/ and data/ layout.
const Prefix = "iceberg/"

// TableKey is the store key of a topic's table directory.
func TableKey(topic string) string { return Prefix + topic }

// Hadoop-style names path readers look for (version-hint.text holds N,
// the current metadata being v<N>.metadata.json).
const versionHint = "version-hint.text"

// handle is one topic's table as of the pointer it loaded; it is also the
// table's catalog (table.CatalogIO), committing by moving the etcd pointer.
type handle struct {
	meta  *metastore.Store
	store s3tier.Store
	fsio  *storeIO
	topic metastore.Topic
	ptr   metastore.TablePointer
	tbl   *table.Table
	// oneOff is an exported table (Export): no etcd pointer, its
	// location is dir, the Hadoop-style names are its commit.
	oneOff bool
	dir    string
	// expireAfter > 0: commits expire older snapshots (Config.SnapshotMaxAge).
	expireAfter time.Duration
}

var _ table.CatalogIO = (*handle)(nil)

// mode is the mode the table was created in.
func (h *handle) mode() Mode { return Mode(h.tbl.Properties()[propMode]) }

func (h *handle) ident() table.Identifier { return table.Identifier{"shale", h.topic.Name} }

func (h *handle) fsF(context.Context) (icebergio.IO, error) { return h.fsio, nil }

func (h *handle) location() string {
	if h.oneOff {
		return h.dir
	}
	return Location(h.store, TableKey(h.topic.Name))
}

func (h *handle) metadataLocation(version int) string {
	return fmt.Sprintf("%s/metadata/%05d-%s.metadata.json", h.location(), version, uuid.New())
}

// openTable loads the topic's table from its pointer, creating the table
// (version 0, no snapshot) when the topic has none.
func openTable(ctx context.Context, store s3tier.Store, meta *metastore.Store, topic metastore.Topic, mode Mode) (*handle, error) {
	h := &handle{meta: meta, store: store, fsio: newStoreIO(ctx, store), topic: topic}
	ptr, err := meta.GetTablePointer(ctx, topic.ID)
	if err != nil {
		return nil, err
	}
	if ptr.Revision == 0 {
		return h, h.create(ctx, mode)
	}
	if err := h.load(ctx, ptr); err != nil {
		return nil, err
	}
	return h, nil
}

// load loads the table the pointer names.
func (h *handle) load(ctx context.Context, ptr metastore.TablePointer) error {
	h.ptr = ptr
	var err error
	h.tbl, err = table.NewFromLocation(ctx, h.ident(), ptr.Metadata, h.fsF, h)
	if err != nil {
		return fmt.Errorf("load table %s from %s: %w", h.topic.Name, ptr.Metadata, err)
	}
	if got := h.tbl.Properties()[propTopicID]; got != h.topic.ID.String() {
		return fmt.Errorf("table %s: metadata %s belongs to topic id %q, not %s: %w", h.topic.Name, ptr.Metadata, got, h.topic.ID, ErrForeignTable)
	}
	return nil
}

func (h *handle) create(ctx context.Context, mode Mode) error {
	sc, spec := tableSchema(mode, PartitionOf(h.topic.Configs))
	props := iceberg.Properties{
		propTopicID:               h.topic.ID.String(),
		propMode:                  string(mode),
		table.CommitNumRetriesKey: "0", // a retry would rebase an append: never
		table.MetadataDeleteAfterCommitEnabledKey: "false",
		// Snappy, as replay's Parquet: zstd (iceberg-go's default) took
		// half of a materialization's CPU (BenchmarkIcebergMaterialize).
		table.ParquetCompressionKey: "snappy",
	}
	// No dictionary for the key and value (_raw) columns: mostly distinct
	// bytes, whose dictionary pages were built then dropped (a fifth of a
	// materialization's CPU).
	for _, f := range sc.Fields()[3:5] {
		props[dictColumnKey+f.Name] = "false"
	}
	md, err := table.NewMetadata(sc, &spec, table.UnsortedSortOrder, h.location(), props)
	if err != nil {
		return fmt.Errorf("new table %s: %w", h.topic.Name, err)
	}
	loc := h.metadataLocation(0)
	if err := h.writeMetadata(md, loc); err != nil {
		return err
	}
	ptr := metastore.TablePointer{Metadata: loc, Version: 0}
	if !h.oneOff {
		var err error
		if ptr, err = h.meta.SwapTablePointer(ctx, h.topic.ID, metastore.TablePointer{}, ptr); err != nil {
			return fmt.Errorf("create table %s: %w", h.topic.Name, err)
		}
	}
	h.ptr = ptr
	h.tbl = table.New(h.ident(), md, loc, h.fsF, h)
	if err := h.publish(md); err != nil && h.oneOff {
		return fmt.Errorf("create table %s: %w", h.location(), err)
	}
	return nil
}

func (h *handle) writeMetadata(md table.Metadata, loc string) error {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(md); err != nil {
		return fmt.Errorf("encode table metadata: %w", err)
	}
	return h.fsio.WriteFile(loc, buf.Bytes())
}

// publish writes, after a commit, the Hadoop-style copy v<N>.metadata.json
// and version-hint.text that path readers open. Best effort: a crash
// before it leaves them one commit behind until the next commit (the
// pointer in etcd is the truth), and only committed versions are ever
// written under these names. For a one-off table (Export) they are the
// commit: the error is returned.
func (h *handle) publish(md table.Metadata) error {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(md); err != nil {
		return err
	}
	dir := h.location() + "/metadata/"
	if err := h.fsio.WriteFile(dir+"v"+strconv.Itoa(h.ptr.Version)+".metadata.json", buf.Bytes()); err != nil {
		return err
	}
	return h.fsio.WriteFile(dir+versionHint, []byte(strconv.Itoa(h.ptr.Version)))
}

// LoadTable returns the table as of the pointer now in etcd.
func (h *handle) LoadTable(ctx context.Context, _ table.Identifier) (*table.Table, error) {
	fresh, err := openTable(ctx, h.store, h.meta, h.topic, "")
	if err != nil {
		return nil, err
	}
	return fresh.tbl, nil
}

// CommitTable applies updates to the metadata this handle loaded, writes
// the result as a new metadata file (a fresh name: never overwritten),
// then moves the etcd pointer to it if it still names the metadata loaded.
// That compare-and-swap is the commit: a commit that crashes or loses it
// leaves only unreferenced files, never a visible snapshot.
func (h *handle) CommitTable(ctx context.Context, _ table.Identifier, reqs []table.Requirement, updates []table.Update) (table.Metadata, string, error) {
	base := h.tbl.Metadata()
	for _, r := range reqs {
		if err := r.Validate(base); err != nil {
			return nil, "", err
		}
	}
	md, err := table.UpdateTableMetadata(base, updates, h.ptr.Metadata)
	if err != nil {
		return nil, "", err
	}
	version := h.ptr.Version + 1
	loc := h.metadataLocation(version)
	if err := h.writeMetadata(md, loc); err != nil {
		h.fsio.sinceCommit()
		return nil, "", err
	}
	if hookBeforeSwap != nil {
		hookBeforeSwap()
	}
	// Every file of this commit was written after the last commit's
	// swap: one begun more than MaxCommitAge ago may be collected as an
	// orphan (CollectOrphans) by now, so the commit is abandoned.
	if age := h.fsio.sinceCommit(); age > MaxCommitAge && !h.oneOff {
		return nil, "", fmt.Errorf("commit table %s: its first file was written %s ago, more than %s: abandoned, the next pass writes it again: %w",
			h.topic.Name, age.Round(time.Second), MaxCommitAge, ErrCommitTooOld)
	}
	ptr := metastore.TablePointer{Metadata: loc, Version: version}
	if !h.oneOff {
		if ptr, err = h.meta.SwapTablePointer(ctx, h.topic.ID, h.ptr, ptr); err != nil {
			return nil, "", fmt.Errorf("commit table %s: %w", h.topic.Name, err)
		}
	}
	h.ptr = ptr
	h.tbl = table.New(h.ident(), md, loc, h.fsF, h)
	if err := h.publish(md); err != nil && h.oneOff {
		return nil, "", fmt.Errorf("commit table %s: %w", h.location(), err)
	}
	return md, loc, nil
}

// dictColumnKey + a column name is the table property turning its
// Parquet dictionary encoding on or off (iceberg-go's
// ParquetDictEncodingColumnEnabledKeyPrefix, internal).
const dictColumnKey = "write.parquet.dict-encoding-enabled.column."

// hookBeforeSwap, when set (tests), runs between writing a commit's
// metadata file and swapping the pointer.
var hookBeforeSwap func()

// ErrCommitTooOld: a commit took longer than MaxCommitAge and was
// abandoned before its pointer swap.
var ErrCommitTooOld = errors.New("icetable: commit took too long")

// ErrForeignTable: the pointer names a table of another topic ID.
var ErrForeignTable = errors.New("icetable: table belongs to another topic")

// ErrUnknownMode: a topic's shale.iceberg.mode is not one this agent
// materializes.
var ErrUnknownMode = errors.New("icetable: unsupported table mode")

// ErrModeChanged: the topic's shale.iceberg.mode is not the mode its
// table was created in.
var ErrModeChanged = errors.New("icetable: topic mode differs from its table's")

// ErrBadSummary: the current snapshot does not record the offsets it
// covers (it was not committed by shale); the job stops rather than guess.
var ErrBadSummary = errors.New("icetable: snapshot summary without shale offsets")
