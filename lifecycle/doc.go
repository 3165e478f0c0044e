// Package lifecycle holds the background jobs every agent takes part in
// (Runner; one agent at a time leads each job through an etcd election,
// metastore.CampaignJob):
//
//   - Key compaction (CompactKeys, JobKeyCompaction) keeps the latest record
//     of each key of cleanup.policy=compact topics; see below.
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
//     seg/ that no entry and no recovery manifest references and that are
//     older than the grace period (10 min), listing the bucket before
//     scanning the index. While a manifest is being written (a manifest pin
//     exists in etcd) it deletes nothing: the manifest may reference
//     objects that left the index since its snapshot. The pin is checked
//     after the index scan and before the manifests are listed (see gc.go
//     for why that order closes the race). The same pass deletes the
//     orphan files of Iceberg tables under iceberg/ (icetable.CollectOrphans:
//     files the table's current metadata does not reference), at least an
//     hour old (icetable.MinOrphanAge: twice the longest a table commit may
//     take before it is abandoned).
//   - Recovery manifests (WriteManifest, JobManifest) every
//     ManifestInterval (1 min): a snapshot of the namespace's unleased keys
//     (metastore.Snapshot) with the objects its index references, written
//     to manifest.Key(revision) under meta/manifests/ while holding a pin;
//     the newest ManifestKeep (2) stay, older ones are deleted. A write
//     that takes longer than half its pin's TTL gives up; one whose pin
//     expired before its upload finished deletes its manifest. A graceful
//     stop writes a final one (Runner.FinalManifest). `shale recover`
//     restores the newest; the recovery point is its revision. A writer
//     SIGKILLed mid-write leaves no manifest (a PUT is atomic) and a pin
//     that expires: the previous manifest stays the newest.
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
// # Key compaction (cleanup.policy=compact)
//
// JobKeyCompaction (CompactKeys) runs, for every partition of every topic
// whose cleanup.policy includes compact, one pass (CompactKeysPartition)
// from the partition's cleaner state (metastore.CleanerState at
// <ns>/cleaner/<id>/<p>: Kafka's cleaner checkpoint plus the recent passes'
// ends and times), then saves the state moved to where the pass stopped.
//
//   - A pass runs when the dirty section (from the checkpoint to the end of
//     the cleanable entries) is at least min.cleanable.dirty.ratio of the
//     cleanable bytes, or its first record is max.compaction.lag.ms old.
//     Cleanable: entries committed Settle ago and past the active head
//     (committed min(segment.ms, max.compaction.lag.ms) ago, or followed by
//     segment.bytes of records; a segment entry counts as past it) whose
//     records are min.compaction.lag.ms old.
//   - Beyond Kafka's rule, one pass finishes the tail a pass cut: when the
//     latest pass left records after its end (CleanerPass.Cut: the active
//     head, records not yet settled, an open transaction, the key map's
//     budget) and the partition is now quiet (every entry committed Settle
//     ago), the next pass runs whatever the ratio (CleanerPass.Tail), once:
//     a Tail pass earns no other. Kafka's cleaner, by the same ratio, leaves
//     such a tail until more writes or max.compaction.lag.ms: a pass in the
//     middle of a burst compacts its first part, and the rest is then a
//     small dirty section against a large compacted one (kafka-go's
//     TestReaderReadCompactedMessage, segment.bytes 200, 460 records: a
//     pass that mapped up to offset 405 left 10478 bytes clean and offsets
//     405-452, about 1.7 KB, dirty: a ratio near 0.14, with three dozen
//     duplicates of one key kept for good). On Kafka that test seldom
//     meets such a pass (an idle cleaner looks every
//     log.cleaner.backoff.ms, 15 s by default, and the writes take a second
//     or two); shale's job, every Interval on entries Settle old, left
//     such a tail in 1 of 5 runs at 1 s and 1 s, and in 1 of 3 loaded runs
//     at 2 s and 10 s. The cost is bounded:
//     at most one more pass per pass the ratio or max.compaction.lag.ms ran,
//     only once writes stop; a steadily written partition is never quiet
//     and keeps Kafka's rule.
//   - It maps each key of the dirty section to its latest offset, record by
//     record, within KeyCompactConfig.MapBytes (64 MiB; len(key) +
//     KeyMapOverhead bytes per key), stopping where the next new key would
//     not fit: the new checkpoint. A larger partition takes several passes.
//   - It rewrites the cleanable entries from the log start to that point,
//     keeping a record unless a later record of its key was mapped, or it
//     is a tombstone (null value) that a saved pass reached at least
//     delete.retention.ms ago (CleanerState.ReachedMs). Records without a
//     key (written before the topic became compacted: the agents refuse
//     them on compacted topics) are removed, as Kafka's cleaner removes
//     them, unless they lie past the point the pass mapped.
//   - Batches are rewritten by segment.FilterRecords: same offsets (a batch
//     emptied by compaction stays as its 61-byte header, so every reader's
//     dense-offset checks hold and Kafka clients skip it, as they skip the
//     empty batches Kafka keeps), own codec, headers and timestamps intact,
//     producer ID/epoch/sequence kept. Consecutive emptied batches within a
//     chunk are merged into one header spanning them all
//     (segment.CoalesceEmpty: no producer, lastOffsetDelta up to 2^31-1),
//     so a compacted log keeps one header per run of removed batches, not
//     one per batch: it stays in proportion to its live keys, as Kafka's
//     does (tested with franz-go and with librdkafka through kcat; sarama
//     and kafka-go also take the next offset from a batch's last offset). Offsets never move; the log
//     start is not touched; retention applies only with compact,delete.
//   - Runs of entries up to TargetBytes that lose a record are uploaded as
//     segments and swapped in with metastore.ReplaceEntries (one etcd
//     transaction of four compares and two operations per run, guarded by
//     the revision the pass read); the replaced objects go to GC. A crash
//     leaves the old index or the new one; a crash before the state is saved
//     only repeats work (TestKilledKeyCompactionKeepsLatest). A swap refused
//     because merge compaction rewrote the run meanwhile leaves the
//     checkpoint where it was, so the next pass maps those keys again
//     (otherwise records superseded within the refused run would stay).
//   - A batch that does not read stops that partition's pass with an error
//     wrapping segment.ErrCorrupt, logged, counted (KeyCompactStats.Failed),
//     before anything of it is written; other partitions go on.
//
// Transactions, as Kafka's LogCleaner treats them:
//
//   - the cleanable range ends before the last stable offset: records of an
//     open transaction, and everything after them, stay dirty;
//   - a transactional batch of an aborted transaction (the partition's
//     aborted-transaction index in etcd, loaded up to MaxAbortedTxns; more
//     fails the partition's pass rather than guess) is never mapped, so an
//     aborted value never hides a committed one, and its records are removed
//     (never visible to read_committed consumers); committed transactional
//     records are compacted like any other;
//   - a commit marker is replaced by an empty header (segment.EmptyBatch,
//     then merged with its neighbours) delete.retention.ms after a pass
//     reached it, as Kafka's cleaner removes markers: consumers need no
//     commit marker (read_committed consumers skip only what the aborted
//     list names, up to its abort marker), and Kafka keeps one only while
//     its transaction's records remain, which shale does not track;
//   - an abort marker goes the same way (delete.retention.ms after a pass
//     reached it: that pass removed its transaction's records), with its
//     aborted-transaction index entry, so the index stays bounded on a
//     compacted topic as retention bounds it on others. The entry is
//     deleted first, the marker then rewritten away: a marker without its
//     entry is ignored by read_committed clients, while an entry without
//     its marker would make them skip the producer's later batches. A pass
//     killed in between leaves a marker that the next pass removes;
//   - producer state (idempotence, epochs) lives in etcd, not in the log,
//     so no batch header has to be kept for it (FilterRecords keeps every
//     emptied batch's header anyway).
//
// Engines see a rewrite through their index watch (a deleted entry key, or
// an overwritten one when a single entry is replaced) and drop the
// partition's cached entries, so every agent reads the compacted log.
// `shale topic describe` shows each partition's cleaner state.
//
// # Imports
//
// lifecycle sits beside engine: it uses s3tier (the objects), span (reading
// index entries as verified batches), segment (building segments) and
// metastore (the index, the elections); nothing but cli imports it.
package lifecycle
