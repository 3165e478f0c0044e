// Package replay reads a topic's history straight from etcd and the bucket,
// with no agent running: the index entries of each partition (etcd), then
// the record bytes they point to (ranged GETs), decoded and written as
// JSONL, Parquet or raw Kafka record batches. It backs `shale replay`.
//
// # Range
//
// A replay covers, per partition, the records with From <= x < To, where
// each bound is an offset or a time (Unix milliseconds, compared with each
// record's own timestamp), or open: From open is the log start offset, To
// open is the partition's next offset when the replay was planned (records
// committed later are not read). Bounds of the same kind with From > To
// are ErrBadRange; From == To is an empty range. Time bounds are exact per
// record: records of a batch may carry out-of-order timestamps, so every
// record is filtered on its own. Entries, spans and batches whose
// MaxTimestamp is below a From time are skipped without being read; a To
// time cannot stop the scan early (a later batch may still hold older
// timestamps), so a replay with a To time reads to the partition's end or
// to a To offset. Raw output is whole batches: every batch holding a
// record in the range, so its first and last batch may hold records
// outside it (as in a Kafka Fetch).
//
// Control batches (transaction markers) are not output as records, like
// Kafka consumers; raw output keeps them when no time bound is set.
//
// # Output
//
// JSONL (see JSONL for the line) is also what `shale consume -o json`
// prints, through AppendJSONL: one shape for both commands, with the topic,
// the timestamp in Unix milliseconds and headers as an ordered list.
// Parquet's schema is ParquetRow (ParquetFile is the writer, shared with
// icetable's key_value data files); raw output is record batches as stored,
// with absolute offsets. Time bounds (ParseTime) are RFC 3339 or a date,
// which is midnight UTC.
//
// # Invariants
//
//   - Read-only: a replay issues etcd reads (gets, read-only transactions)
//     and store GetRange calls, nothing else. The command enforces it with
//     ReadOnlyKV and ReadOnlyStore.
//   - Output per partition is in offset order and holds each record once,
//     even when compaction swaps entries during the replay: a span whose
//     object vanished (replaced, then garbage-collected) makes the
//     partition re-read the index from the first offset it has not written.
//   - Every byte used is checked: index entry or footer CRC, chunk CRC,
//     batch structure (span.ParseSpan), then decompression (gzip,
//     snappy, lz4, zstd) within segment.MaxDecompressedBytes per batch.
//   - Memory is bounded: at most Parallel ranged GETs in flight, at most
//     ReadAhead bytes of fetched spans waiting to be decoded (a single span
//     larger than that still goes through alone), and per Parquet writer one
//     row group of about 8 MiB of record data.
//
// # Speed
//
// BenchmarkReplay (cli) measures every output format, and a Kafka
// consumer through a cold agent, against a raw ranged GET of the same
// bytes; BENCH.md says how to run it and keep its profiles, where each
// reader spends its CPU (before and after the work of issue #23), and
// the latest figures.
//
// # Errors
//
// ErrBadRange for a malformed or inverted range; metastore.ErrTopicNotFound
// and metastore.ErrPartitionMissing for what does not exist; ErrGap when
// retention deleted offsets the replay still had to read; segment.ErrCorrupt
// (and its kin) for damaged bytes; ErrReadOnly if anything tried to write
// through the read-only decorators. Errors name the partition and, for
// bytes, the object and byte range.
package replay
