// Package icetable materializes topics into Apache Iceberg tables in the
// bucket, exactly once (DESIGN.md, Iceberg tables). The elected lifecycle
// job lifecycle.JobIceberg runs Materialize every --iceberg-interval
// (default 1 min) over the topics whose shale.iceberg.mode is not
// disabled. It uses github.com/apache/iceberg-go for metadata, manifests
// and snapshots, and parquet-go (through replay's Parquet writer) for the
// data files (see Data files); no catalog service is needed.
//
// # Modes
//
//   - disabled (the default): no table.
//   - key_value: replay's Parquet schema in Iceberg types: partition int,
//     offset long, timestamp timestamptz (Iceberg has no millisecond
//     timestamp: microseconds, the record's millisecond value times 1000),
//     key binary (null key: null), value binary (tombstone: null), headers
//     list<struct<key string, value binary>>. Partitioned by
//     day(timestamp) (field timestamp_day; see Partitions).
//   - json: the fields of JSON object values as columns, plus the record's
//     metadata as _partition, _offset, _timestamp, _key, _headers (the
//     key_value columns, underscored: events often have a field called
//     "timestamp" or "key"), and _raw binary: the whole value of a record
//     whose value could not go into columns as is, null otherwise.
//     Partitioned by day(_timestamp) (field _timestamp_day).
//
// # Partitions
//
// Topic config shale.iceberg.partition (day, the default, or hour; the
// agents refuse anything else with INVALID_CONFIG) is the granularity of
// the table's partitions by record timestamp: field timestamp_day or
// timestamp_hour (_timestamp_... in json mode), data files under
// data/timestamp_hour=2025-11-25-10/. A table is created with the
// topic's granularity; when the topic's changes later, the next commit
// evolves the partition spec in the same transaction as its rows
// (Iceberg partition evolution): files already written keep their
// partitioning, and engines read both.
//
// # json mode
//
// The schema is inferred from the data and only grows: a field seen for
// the first time (with a non-null value) adds an optional column, with a
// new field ID, in the same commit as the rows that fill it (iceberg-go's
// UpdateSchema); no column is ever removed, renamed or retyped. Records
// are read partition by partition in offset order, so which columns a
// commit adds, in which order, and which of two conflicting values gets
// a column, are the same on every run of the commit (after a crash too).
// Types, fixed by the value that created the column:
//
//   - boolean → boolean
//   - number → double (always: a long column would conflict with the
//     first 1.5; Iceberg cannot promote long to double)
//   - string → string
//   - object or array → string holding its JSON text as sent (nested
//     objects are not struct columns); the column's doc marks it
//     ("shale json: JSON text of an object or array"), so that a JSON
//     string and an object never share a column
//   - null → null in the column, like an absent field; a field only ever
//     null adds no column.
//
// A record whose value is not a JSON object (not valid UTF-8, not one
// valid JSON value, an array or scalar, a name twice) has _raw = its
// value and every value column null. A record with a field that cannot go
// into a column as is also has _raw = its whole value, its other fields
// in their columns and that field's column null: a value of another type
// than the column's; a number a double cannot hold (out of range, or an
// integer of magnitude 2^53 or more); a name that is empty, longer than
// 255 bytes, contains "." (a path separator to Iceberg engines), equals
// a metadata column's or an existing column's ignoring case (engines
// that fold case would see two columns as one); a new field once the
// table has MaxJSONColumns (1000) value columns. Such rows are counted
// (summary shale.raw-rows over the table's life, `shale table status`
// RAW, metric iceberg_raw_rows_total), never dropped, and never stop the
// table. A tombstone (null value) is a row whose value columns and _raw
// are null.
//
// # Switching modes
//
// A table keeps the mode it was created in (table property
// shale.iceberg.mode). A topic switched to the other mode afterwards is
// not materialized: its pass fails with ErrModeChanged (logged, counted
// in iceberg_failures_total, shown by `shale table status` as "json
// (table: key_value)") until the mode is set back; rows are never
// written under another schema. Switching to disabled stops
// materialization; the table stays, and switching back resumes from its
// last snapshot.
//
// # Layout
//
// A topic's table is at iceberg/<topic>/ in the bucket (location: the
// store's URI, s3://bucket/prefix/iceberg/<topic> or file:///dir/...),
// in Iceberg's layout: data/timestamp_day=YYYY-MM-DD/*.parquet (or by hour),
// metadata/*.avro (manifests, manifest lists) and
// metadata/NNNNN-<uuid>.metadata.json. All of it is read and written
// through shale's s3tier.Store (storeIO), with its credentials and
// metrics. Path readers find the current version through
// metadata/version-hint.text (N) and metadata/vN.metadata.json, a copy of
// the current metadata file written after each commit (best effort: one
// commit behind after a crash until the next commit; only committed
// versions are ever written under these names). No REST catalog
// registration yet (--iceberg-rest-uri is not implemented).
//
// # Data files
//
// A key_value commit writes its data files itself, with parquet-go
// (replay.ParquetFile: replay's writer, fast Snappy pages, row groups of
// 8 MiB of record data): one writer per Kafka partition read, the
// partitions in parallel (up to 4), each streaming its records, as it
// decodes them, into a file per table partition (day or hour) they fall
// in, and beginning another file once one reaches
// shale.iceberg.target.file.bytes (checked after each record batch). A
// commit of less than 32 MiB of stored bytes (the steady state: a pass
// each --iceberg-interval) reads its Kafka partitions one after the
// other into one writer instead, so that it adds a file per table
// partition, not one per Kafka partition too.
// The files carry the table's Iceberg field IDs on every column and list
// element (readers map columns by ID) and go to the bucket through the
// store (spooled to a local temporary file, one Put each). The commit
// then registers them: iceberg-go's table.FileToDataFile reads each
// file's footer for its row count, column sizes, value and null counts,
// bounds and partition value, and Transaction.AddDataFiles adds them to
// the snapshot (with the summary below, in the same transaction). Memory
// is a row group per file being written, plus 16 MiB of read-ahead per
// partition read, whatever the commit's size, so a key_value commit
// reads up to KVCommitFiles (4) target-size files' worth of stored bytes
// (512 MiB at the default target; Config.CommitBytes overrides it): a
// topic catching up gets files of about the target size, not small
// files for the rewrite below to read and write again.
//
// A json commit builds its rows in Arrow columns in memory (at most
// DefaultCommitBytes of stored bytes: 64 MiB), as the columns it adds
// are only known once every record was read (json mode), then writes
// them with parquet-go the same way (a file per table partition, up to
// 4 at once, rolled at the target size, the evolved schema's field IDs),
// each row turned from Arrow into parquet-go's column values; so does
// Export, in both modes.
//
// # File sizes
//
// Each commit writes the rows it read as data files of the partitions it
// touches (key_value: per Kafka partition read, see Data files), so
// frequent commits make small files. At the end of a pass that caught up, the job rewrites
// a partition's data files under 75% of shale.iceberg.target.file.bytes
// (default 128 MiB, at least 1024; other values INVALID_CONFIG), at least
// 5 of them, into files of about that size (iceberg-go's compaction
// planner), once they add up to 75% of the target or
// once the partition's day or hour ended more than an hour ago: an open
// partition is not rewritten at every pass. The rewrite is its own
// snapshot (key_value files of the current partition spec: read with
// parquet-go and written as commits write theirs, Data files, each
// file's row count checked against its manifest entry, then iceberg-go's
// RewriteFiles; other files, or if that fails, iceberg-go's
// RewriteDataFiles, which reads and writes through Arrow), committed by
// the same pointer swap, whose summary carries
// the current snapshot's shale.offsets, skipped and raw counts: the rows
// are the same, so exactly once holds. The replaced files stay while a
// snapshot before the rewrite exists (time travel), listed in a
// metadata/replaced-<uuid>.json the rewrite's summary names
// (shale.replaced-files); the commit that expires the rewrite's parent
// deletes them and the list (Retention). Counted: Stats.Rewritten,
// metric iceberg_rewritten_files_total.
//
// # Commit: exactly once
//
// The table's current metadata file is named by a pointer in etcd,
// <ns>/iceberg/<topic id> (metastore.TablePointer). A commit:
//
//  1. loads the metadata the pointer names and reads, from its current
//     snapshot's summary, shale.offsets: per partition, the first offset
//     not in the table;
//  2. reads the records from there up to the partition's last stable
//     offset (read_committed: records of aborted transactions and control
//     records are not rows), at most Config.CommitBytes of stored bytes
//     per commit, through replay's reader (every byte checked);
//  3. writes the Parquet data files, the manifest and the manifest list
//     (fresh names), then a new metadata file (a fresh name, never
//     overwritten) whose new snapshot's summary holds the new offsets;
//  4. moves the pointer to that file with an etcd compare-and-swap on the
//     revision read in 1 (metastore.SwapTablePointer). That is the commit.
//
// A crash or a lost election anywhere before 4 leaves only unreferenced
// files: the next commit starts again from the offsets of the snapshot
// the pointer names, so no row is in the table twice and none is
// missing. A CAS whose answer was lost is seen by the next load. Two
// agents leading the job at once (a lease that expired under a paused
// leader) cannot both commit from the same snapshot: the second CAS fails.
// iceberg-go's commit retries (which would rebase an append onto a
// concurrent snapshot, duplicating rows) are off (commit.retry.num-retries
// = 0). The bucket needs no conditional PUT (If-None-Match), so any
// S3-compatible store works; etcd is the arbiter, as for the log itself.
//
// # Retention
//
// Topic retention does not delete table rows: records retention deletes
// before they were materialized are counted (summary
// shale.skipped-offsets, metric iceberg_skipped_offsets_total) and the
// table resumes at the new log start: a table holds what its topic held
// when each commit read it, for as long as the table keeps it.
//
// Table retention is snapshot expiry, in the job: each commit (one per
// pass that found records, up to 1,440 a day per topic at the default
// --iceberg-interval) also expires, in the same transaction, the
// snapshots older than Config.SnapshotMaxAge (agent flag
// --iceberg-snapshot-max-age, default DefaultSnapshotMaxAge = 5 days,
// Iceberg's own default; 0 keeps them all); the current snapshot is
// always kept. So the metadata file stays bounded by about 5 days of
// snapshots, and time travel reaches that far back. Rows are never
// expired: the table is append-only, every row stays in the current
// snapshot. After the pointer moved, the job deletes the expired
// snapshots' manifest lists, and the data files a rewrite replaced once
// the snapshot before that rewrite is expired (File sizes); appends'
// manifests and data files stay, still those of the later snapshots
// (fast appends carry manifests forward; the manifests a rewrite
// superseded are left as orphans). A crash between the commit and those
// deletes leaves them as orphans. Do not expire snapshots with an external
// engine (Spark's expire_snapshots, pyiceberg) while the job maintains
// the table: the engine's commit goes to a metadata file the etcd pointer
// does not name, the job's next commit builds on the pointer's metadata,
// and the snapshots it expired reappear with their files deleted.
//
// Orphan files are deleted by the GC job (lifecycle, JobGC; the
// rules in CollectOrphans): files under a table's location that its
// current metadata does not reference — the files of commits that
// crashed, were abandoned or lost the pointer swap, manifests a rewrite
// superseded, replaced data files whose deletion at expiry failed,
// metadata files older than the metadata log (iceberg-go keeps the last
// 100 versions in it; write.metadata.delete-after-commit is off, so the
// rest are orphans), stale v<N>.metadata.json copies — once they are at
// least max(--gc-grace, MinOrphanAge = 1 h) old. A commit cannot be
// younger than that and still in progress: one whose first file is more
// than MaxCommitAge (30 min) old is abandoned before its pointer swap
// (ErrCommitTooOld; the next pass reads the same offsets again). Only
// tables with a pointer are swept; files under iceberg/ of a topic
// without one are left alone. A pass reads each new manifest list and
// manifest once (cached by path: they are immutable).
// Deleting a topic deletes its pointer; its table files stay until a
// topic re-created with the name starts a new table at the same
// location: the old table's files are then orphans of the new one.
//
// # One-off export
//
// Export (`shale replay --format iceberg --out DIR|s3://...`) writes the
// records of a replay range as a table whose location is the output: the
// same schema, modes and partitioning, committed records only, rows
// committed every CommitBytes of record bytes, each commit a
// metadata/v<N>.metadata.json that metadata/version-hint.text then names
// (no etcd pointer: one writer, and the run is the table's whole life).
// An output that already holds a table (version-hint.text) is refused,
// never appended to. A run that fails leaves the table as of its last
// commit. LoadPath opens such a table, or a materialized one, by path.
//
// # Performance
//
// BenchmarkIcebergMaterialize (make bench: a 1 GiB topic by default)
// compares a first materialization of a key_value table with `shale replay
// --format parquet` of the same topic, run before and after it (the faster
// run counts), each a child process (its start included), 1 KiB values in
// 4 partitions, on the shared 2-core machine (load average 9-18 during
// these runs; until ff25000 the replay ran in the benchmark's process,
// beside the agents, and its times varied the most: 1 GiB ratios from
// 0.81x to 1.95x). Both as child processes, on ff25000: 256 MiB,
// replay 1.24 s, materialization 1.13 s (1.10x), peak RSS 252 MiB; 1 GiB,
// replay 6.47 s, materialization 5.76 s (1.12x), peak RSS 252 MiB, 12 data
// files. Earlier runs, the replay in process. With iceberg-go's writer
// (Transaction.Append), 256 MiB: replay 3.05 s, materialization 6.68 s
// (0.46x), peak RSS 751 MiB; its CPU profile: arrow-go's Snappy ("better"
// s2 encoder) 48%, memmove 15%, Arrow buffer growth and memset 17%, all in
// one goroutine after the whole commit (64 MiB stored) was built in Arrow;
// a pass also rewrote its own small files through the same writer. With
// parquet-go (Data files): 256 MiB, replay 684 ms, materialization 1.19 s
// (0.57x; 1.17x and 0.71x in two other runs), peak RSS 282 MiB, 4 data
// files; 1 GiB, replay 12.5 s, materialization 7.53 s (1.66x), peak RSS
// 323 MiB, 12 data files. The CPU now goes to writing the bytes (syscalls
// half of it: the spool file, its copy into the bucket, the reads),
// memmove and CRCs of the reads; Snappy (s2's fast encoder) under 10%. A
// produced record was a row a median 1.05 s later with --iceberg-interval
// 1s. The rewrite of small files, measured with the same benchmark in 16
// MiB commits (SHALE_ICE_COMMIT_BYTES=16777216 in the child: 16 commits,
// then 14 files rewritten into 2): the pass took 4.87 s, peak RSS 966 MiB,
// with iceberg-go's RewriteDataFiles (SHALE_ICE_KV_REWRITE=0), and 2.87 s,
// 186 MiB, with parquet-go. A json table (SHALE_ICE_BENCH_MODE=json, 128
// MiB of 1 KiB objects of 3 fields): 12.7 s, RSS 574 MiB, with
// iceberg-go's writer; 9.54 s, 324 MiB, with parquet-go (replay 1.1-3.1 s
// at that load). Then JSON parsing took 70% of its CPU; with string fields
// taken without json.Unmarshal and the fields found by a scan after
// json.Valid (not encoding/json's Decoder), the pass's CPU profile went
// from 1.96 s to 1.23 s (pass 3.07 s, against 4.00 s just after with the
// Decoder, at a load of 13): json.Valid is now the largest part (26%), in
// one goroutine (json mode reads in order).
//
// # Errors
//
// A topic whose pass fails (unreadable batch: segment.ErrCorrupt; a
// current snapshot without shale.offsets: ErrBadSummary; a pointer lost to
// another writer: metastore.ErrConflict) is logged and counted
// (Stats.Failed) and retried next pass; other topics go on. Nothing is
// committed for a failed commit.
package icetable
