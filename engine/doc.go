// Package engine is one agent's storage engine: the produce buffer, the
// upload and commit pipeline, and the read path. It owns no durable state:
// the bucket (s3tier.Store) holds the bytes and etcd (metastore) holds the
// offsets and the index.
//
// # Write path
//
// Produce validates a partition's records (record batch v2 only, CRC-32C of
// every batch, size limit) and appends them to the one open buffer of the
// engine, which holds chunks for any number of partitions. The buffer is
// sealed when it reaches Config.FlushBytes or at the next tick of a grid of
// period Config.FlushInterval, whichever comes first (see Seal policy).
// Records of one produce at least Config.FlushBytes large (a large batch:
// up to Config.MaxRecordsBytes, the agent's request limit) go into an
// object of their own: the open buffer is sealed first, then theirs. A
// sealed buffer is built into one
// segment object in memory and uploaded from there with one PUT (multipart
// when large); the local read cache gets its copy written beside the PUT.
// The object in memory references its batches' bytes in the produce
// requests (segment.Pieces) rather than copying them, and a multipart
// upload reads each part in place, so a large batch is held once from the
// read of its request to its commit (TestLargeBatchHeldOnce).
// Objects held in memory are bounded by half of Config.MaxPendingBytes:
// past that (uploads or commits falling behind) an object is built in the
// spool directory on local disk and uploaded from the file (upload.go).
// Then the object is committed to etcd: for each partition chunk,
// sequencing runs against the partition state and a transaction that
// compares the state's revision writes the index entry and the new state.
// Several partitions share a transaction up to Config.MaxTxnOps; a conflict
// (another agent committed first) re-reads and retries with jitter, at most
// maxConflictRetries times. Then every waiting produce gets its base offset.
// A transaction etcd refuses for its size (over its --max-txn-ops or
// --max-request-bytes: etcd applied none of it, and would refuse it again)
// is not retried: its produces fail at once with UNKNOWN_SERVER_ERROR, the
// code Kafka gives for a failure the broker cannot name more precisely and
// that clients do not retry (KAFKA_STORAGE_ERROR would make them retry the
// same refusal until their delivery timeout), and the agent logs the limit
// and what to change (MaxTxnOps, at most etcd's --max-txn-ops, default 128).
//
// # Seal policy
//
// A Kafka client keeps a partition's next batch until the previous one is
// answered: franz-go, librdkafka and the Java client, idempotent, have at
// most five requests in flight per broker, one batch per partition each,
// and those slots fill within the client's linger after an answer. So under
// steady load a partition's batches ride one seal per cycle and the cycle
// is the seal period P: a record waits for its client's next send (0 to P,
// P/2 on average), then for the seal after that send and the upload and
// commit (about P in all). Its ack latency lies between P and 2P, 1.5P on
// average, whatever the phase of the seals. The interval is also the bill:
// one timer seal, one PUT, per interval and agent. Under that bound P is
// at least the interval, so for these clients 1.5x the interval is the
// floor; 1x would need P of two thirds of it, 1.5x the PUTs. shale keeps
// the PUT bound and says so: for a p99 of X choose an interval of about
// X/2 (README, latency curve), for the agent or for one topic.
//
// What the policy decides:
//
//   - When a seal fires: at the next tick of a grid of period FlushInterval
//     whose phase is the engine's start (untilTick), not FlushInterval after
//     the open buffer's first batch. Under steady load the buffer's first
//     batch comes a little after the previous seal (its upload, commit and
//     answer), which the grid does not add to the cycle; for sparse traffic
//     (a produce into an empty buffer, one message per web request) the
//     wait in the buffer is spread over the interval, half of it on average,
//     instead of all of it. There is at most one timer seal per tick, so
//     PUTs stay at most one per interval plus the seals by size.
//   - What rides in it: everything in the buffer, every partition.
//   - Early seals are not taken: sealing when every waiting client already
//     has its next batch in the buffer would shorten the cycle only by
//     sealing more often than the interval, which is the PUT rate the
//     interval promises to bound. A shorter interval (dev mode's default of
//     a few milliseconds, or a topic's own) is the explicit way to buy
//     latency with PUTs.
//
// # Latency classes
//
// A topic may have a flush interval of its own (topic config
// shale.flush.ms; the agent calls ProduceEvery). Each interval in use has
// its own open buffer, sealed on its own grid (same origin, its period) or
// at FlushBytes, into objects of its own; they go through the same pipeline
// (seal order, uploads, commit passes, idempotence), so an ack in a short
// class is as durable as any other. Each class costs one PUT per interval
// while it receives records. A partition whose topic changes class may have
// batches in the old class's buffer: the first batch in the new class seals
// that buffer first, so the partition's order is kept. Commits stay in seal
// order across classes, so a short-class object sealed just after a large
// default-class one waits for that one's upload.
//
// # Pipeline
//
// Up to Config.UploadConcurrency objects upload at once; they may finish in
// any order. Objects are committed strictly in seal order, so one
// producer's batches keep their order within a partition: the committer
// takes the next sealed object once its upload is done, together with the
// objects sealed after it whose uploads are already done (at most
// maxCommitObjects), and commits them in one pass (commit.go). A pass
// groups each partition's chunks of all its objects into one unit (plan.go):
// sequencing runs through them in seal order and one state update writes
// all their index entries, so a later object's records of a partition are
// visible exactly when the earlier object's are, never before. The
// transactions of one pass touch disjoint partitions and are sent
// concurrently (etcd batches them into one raft round); a transaction whose
// outcome is unknown is checked against the index before it is retried. So
// object N+1 never waits for N's etcd reply, and N+1 waits for N's upload
// only because its records may follow N's in a partition. A PUT still
// running after Config.UploadHedgeAfter (1 s, plus the object's transfer
// time at 32 MiB/s) is raced by a second PUT of the same key and bytes;
// the first to succeed wins and the other is cancelled, so one hung
// connection costs a second, not the attempt's timeout (5 s and up), and a
// healthy store sees almost no extra PUTs (upload_hedges_total counts
// them). A PUT that hangs in every attempt holds every later commit back
// (bounded by Config.UploadTimeout; its later objects keep uploading
// meanwhile); a PUT that fails for good fails
// its own producers with KAFKA_STORAGE_ERROR and the later objects then
// commit after the earlier ones, so its records are never visible at all
// (an idempotent producer's later batches then fail sequencing with
// OUT_OF_ORDER_SEQUENCE_NUMBER and are retried in order; a non-idempotent
// producer with several requests in flight may reorder on retry, as with
// Kafka).
//
// Back-pressure: when more than
// Config.MaxPendingBytes are sealed but not committed (in memory or
// spooled), Produce waits, bounded by its context (the request's timeout),
// and then fails with REQUEST_TIMED_OUT; nothing is buffered past the limit
// but the one object that crossed it.
//
// # Idempotence
//
// Batches with a producer ID and sequence are de-duplicated at commit time
// against state kept in the partition's etcd record (last five batches per
// producer), so a retry through another agent is caught too. A duplicate is
// answered with its original offset and not written again; an out-of-order
// sequence or a fenced epoch gets OUT_OF_ORDER_SEQUENCE_NUMBER or
// INVALID_PRODUCER_EPOCH. Rejected or duplicate batches in the middle of a
// chunk split it into several index entries, so offsets stay dense.
// Unlike Kafka, a producer unknown to a partition may start at any sequence
// (its state may have expired after a day of idleness).
//
// # Transactions
//
// A transactional batch (accepted only with a producer ID and sequence;
// the agent checked it against its transaction) opens its producer's
// transaction in the partition at commit, if none is open: the partition
// state records the producer's first offset (PartitionState.Txns), and the
// smallest of those is the last stable offset. WriteMarker appends a
// commit or abort marker (a control batch) through the same buffer,
// object and commit as any batch, so it takes an offset; at commit it
// closes the producer's transaction and, for an abort, writes
// {producer, first offset, marker offset} into the partition's
// aborted-transaction index in the same etcd transaction. A marker whose
// producer has no open transaction in the partition is dropped (answered
// with BaseOffset -1): a coordinator finishing an end a dead one began
// writes each partition's marker once. Such a verdict from the commit
// loop's cached state is confirmed against etcd first. A marker at a newer
// epoch becomes the producer's epoch there, fencing older batches.
//
// Late batches (KIP-890 part 1's check at append): the agent verifies a
// transactional batch against its transaction in etcd before the batch is
// buffered, so the transaction may end between that read and the batch's
// commit (a client that aborted with the produce in flight). Each
// transaction has a number (metastore.TxnState.StartRevision) that the
// agent passes with the batch (ProduceTxn) and the coordinator with each
// marker. A marker records its number as the producer's ended transaction
// in the partition state (ProducerState.EndedTxn), written or not: a
// marker that finds nothing to close but changes that (or the epoch)
// commits the state alone. A batch whose number is at most the ended one
// is INVALID_TXN_STATE at commit. Both are decided on the same partition
// state, compared on its revision by the etcd transaction that writes
// them, so a batch and its transaction's marker are ordered one way or the
// other, never both open: without this the late batch reopened a
// transaction no coordinator knows, holding the last stable offset forever.
// FetchIsolated with readCommitted returns no batch at or past the last
// stable offset, and the aborted transactions overlapping what it returns
// (read from etcd only when it returns a transactional data batch).
//
// A commit whose outcome is unknown (etcd timed out) is checked on retry: if
// the index already holds the object's range at the planned offsets, it had
// applied and is not written twice.
//
// # Read path
//
// Fetch resolves an offset to an index entry (a per-partition cache of
// recent entries kept fresh by an etcd watch and by this engine's commits,
// beside one run of older entries a history reader fetched; etcd on a
// miss), then reads the entry's bytes from the local cache (whole
// objects this agent wrote, ranges it fetched before) or with one ranged
// GET, verifies their CRC-32C, and patches each batch's base offset to its
// absolute offset: in the bytes read when the fetch's answer is the first
// span it reads (the answer is then those bytes, not a copy of them; a
// span the read-ahead holds is patched once when it lands and answered
// from as it is), else in a copy. A compacted segment entry is read through its footer
// (cached in memory, bounded: span.FooterCache) and then one chunk of
// about 1 MiB per GET. A batch larger than the fetch's byte limit is
// returned whole when it is the first one, as Kafka does. A read that finds its object gone (an entry cached
// before compaction replaced it and GC deleted it) re-reads the index once.
// An offset between the log start and the high watermark that no entry
// holds (offsets lost with a corrupt object that `shale recover
// --skip-corrupt` skipped) is answered from the next entry, as Kafka skips
// the gaps of a compacted log: the batches start past the offset asked for.
// Entries read from etcd are cached only if the watch dropped none of the
// partition's entries meanwhile (a read racing a swap would otherwise
// cache the replaced entries until the partition's next rewrite). Long polls wait on WaitForData, which a watch of the
// partition states wakes.
//
// A fetch whose first span is not on local disk (a cold read, typically a
// consumer replaying history through an agent that did not write it) also
// queues GETs of the spans after it, a few in flight at once (read-ahead,
// readahead.go). A prefetched span is verified once and kept in memory as its
// parsed chunk, which the consumer's next fetches use directly; it does not
// go to the disk cache, which keeps objects this agent wrote and ranges a
// foreground read fetched; a fetch that needs a span being prefetched waits
// for it rather than GETting it again. The read-ahead's memory is bounded:
// queued, in flight and ready spans together stay within
// Config.ReadAheadBytes (128 MiB by default), counting what a ready span
// holds (its bytes and its parsed batch list; a queued or in-flight span
// counts the most it can come to hold). Ready spans stay (a fetch may use
// part of one and the next needs the rest) until new prefetches need the
// room: then spans a fetch already took are evicted, least recently used
// first, and spans no fetch took only once idle for readAheadIdle; the
// spans of each partition's latest plan are kept; when there is no room,
// read-ahead is skipped.
//
// Prefetch plans what a fetch of several partitions reads, for all of them
// at once: the agent calls it before reading a multi-partition fetch, and
// again after answering one with the offsets the answer ends at, so the
// consumer's next fetch is read from the bucket while it decodes this one
// (a consumer fetches again only once it has taken the last answer: without
// this, GET and decode alternate). The budget goes to what each partition's
// fetch reads first, then to the spans past them.
//
// # Invariants
//
//   - A Pending completes successfully only after the object is in the
//     bucket and the index entry and state are committed in etcd.
//   - Offsets are assigned only by the etcd transaction, so they are dense
//     and never reused, whichever agents write.
//   - The spool and cache directories are wiped at start: nothing in them is
//     needed to rebuild anything.
//
// # Errors
//
// Kafka-level outcomes are *kerr.Error values (CORRUPT_MESSAGE,
// INVALID_RECORD, MESSAGE_TOO_LARGE, OFFSET_OUT_OF_RANGE,
// OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH,
// KAFKA_STORAGE_ERROR, REQUEST_TIMED_OUT, UNKNOWN_TOPIC_OR_PARTITION).
// Other errors (etcd unavailable, a corrupt object: segment.ErrCorrupt)
// are returned wrapped with the operation.
package engine
