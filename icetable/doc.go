// Package icetable materializes topics into Apache Iceberg tables in the
// bucket, exactly once (DESIGN.md, Iceberg tables). The elected lifecycle
// job lifecycle.JobIceberg runs Materialize every --iceberg-interval
// (default 1 min) over the topics whose shale.iceberg.mode is not
// disabled. It uses github.com/apache/iceberg-go for metadata, manifests,
// snapshots and Parquet data files; no catalog service is needed.
//
// # Modes
//
//   - disabled (the default): no table.
//   - key_value: replay's Parquet schema in Iceberg types: partition int,
//     offset long, timestamp timestamptz (Iceberg has no millisecond
//     timestamp: microseconds, the record's millisecond value times 1000),
//     key binary (null key: null), value binary (tombstone: null), headers
//     list<struct<key string, value binary>>. Partitioned by
//     day(timestamp) (field timestamp_day).
//
// json mode (values as columns) is not implemented: the agents refuse it
// as INVALID_CONFIG. Switching a topic from key_value to disabled stops
// materialization; the table stays, and switching back resumes from its
// last snapshot.
//
// # Layout
//
// A topic's table is at iceberg/<topic>/ in the bucket (location: the
// store's URI, s3://bucket/prefix/iceberg/<topic> or file:///dir/...),
// in Iceberg's layout: data/timestamp_day=YYYY-MM-DD/*.parquet,
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
// table resumes at the new log start. Table retention is the table's own:
// expire snapshots with an Iceberg engine (Spark's expire_snapshots,
// pyiceberg) through the path; files no snapshot references (orphans of
// crashed commits, expired snapshots) are left in place: the GC job only
// looks under wal/ and seg/, never under iceberg/, so nothing of a table
// is deleted by shale. Deleting a topic deletes its pointer; its table
// files stay (a topic re-created with the name starts a new table at the
// same location, beside the old files).
//
// # Errors
//
// A topic whose pass fails (unreadable batch: segment.ErrCorrupt; a
// current snapshot without shale.offsets: ErrBadSummary; a pointer lost to
// another writer: metastore.ErrConflict) is logged and counted
// (Stats.Failed) and retried next pass; other topics go on. Nothing is
// committed for a failed commit.
package icetable
