// Package lifecycle holds the background jobs every agent takes part in
// (Lifecycle; one agent at a time leads each job through an etcd election,
// metastore.CampaignJob):
//
//   - Compaction (Compact) rewrites runs of small index entries of one
//     partition, older than a settle time, into segment objects
//     seg/<topic id>/<partition>/<base>-<random>.seg of up to TargetBytes
//     (128 MiB) cut into ChunkBytes (1 MiB) chunks at absolute offsets, and
//     swaps the run for one segment entry in one etcd transaction. Readers
//     cache a segment's footer (span.FooterCache) and read one chunk per GET.
//   - Retention (ApplyRetention) applies retention.ms / retention.bytes
//     (metastore.RetentionOf; default -1: keep forever) by advancing the log
//     start offset over whole entries, on topics whose cleanup.policy
//     includes delete (metastore.CleanupPolicyOf), as Kafka does.
//   - Garbage collection (CollectGarbage) deletes objects under wal/ and
//     seg/ that no entry references and that are older than the grace period
//     (10 min), listing the bucket before scanning the index.
//   - Group offset expiry (JobGroupExpiry) deletes the committed offsets of
//     consumer groups no agent coordinates once their newest commit and
//     their emptying are older than GroupOffsetRetention (7 days, Kafka's
//     offsets.retention.minutes; negative: never); it touches etcd only
//     (metastore.ExpireGroupOffsets).
//
// # Invariants
//
// Every job commits its new index before anything is deleted, and deletes
// only through GC; a job killed at any point leaves either the old index
// or the new one, plus at most some garbage. The grace period must exceed
// the longest time from an object's upload to its commit (the engine's
// UploadTimeout, compaction's CommitDeadline, which is checked). Every pass
// is idempotent, so a pass cut short by a crash or a lost lease is simply
// run again by whichever agent leads the job next.
//
// # Key compaction (cleanup.policy=compact): not built yet
//
// The agents refuse cleanup.policy=compact until the key-compaction job
// exists (agent/configs.go); they already refuse keyless records on a
// topic stored with it, and retention skips it. The job, when built, keeps
// per partition the latest record of each key older than
// min.compaction.lag.ms, never moves an offset and keeps LogStartOffset.
// It must also respect transactions (#17), as Kafka's LogCleaner does:
//
//   - records of an aborted transaction are removed like obsolete records
//     (they were never visible to read_committed consumers), which needs the
//     aborted-transaction ranges the partition keeps;
//   - records of an open transaction (above the last stable offset) stay
//     dirty: the pass stops at the LSO, not at the high watermark;
//   - a control batch (commit/abort marker) is kept until every record of
//     its transaction is gone from the partition and delete.retention.ms has
//     passed since the pass that found it empty, like a tombstone;
//   - a batch emptied by compaction is dropped, except the last batch of
//     each producer ID, kept empty (its header alone: producer ID, epoch,
//     base sequence, lastOffsetDelta) so that the producer state rebuilt
//     from the log still de-duplicates that producer's retries.
//
// # Imports
//
// lifecycle sits beside engine: it uses s3tier (the objects), span (reading
// index entries as verified batches), segment (building segments) and
// metastore (the index, the elections); nothing but cli imports it.
package lifecycle
