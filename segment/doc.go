// Package segment is shale's object format: a Builder that packs Kafka v2
// record batches into per-partition chunks followed by a footer index, a
// Reader that opens an object through an io.ReaderAt and reads chunks, and
// the record-batch header parsing and validation the agent uses on produce.
// FORMAT.md is the byte-level specification; testdata/segment/golden-v1.seg
// pins it.
//
// The package is pure code over io interfaces: no network, no global state,
// no dependency on other shale packages.
//
// # Offsets
//
// A chunk's batches carry stored offsets: consecutive from the chunk's stored
// base, each batch spanning lastOffsetDelta+1 offsets. Fresh (WAL) objects
// store base 0 and the absolute base offset lives in the engine's index;
// compacted segments store absolute offsets. Chunk.AppendPatched translates
// stored offsets to absolute ones on the way out. The Kafka batch CRC does
// not cover baseOffset, so rewriting it keeps batches valid for clients.
//
// # Invariants
//
//   - Every byte of an object is checked on read: the header and trailer
//     exactly, the footer by its CRC, each chunk by its CRC (which, unlike the
//     Kafka batch CRC, covers the rewritten baseOffset fields). Chunks tile
//     the space between header and footer exactly.
//   - Within a chunk, batch stored offsets are consecutive from the footer's
//     stored base; a partition's chunks within an object are in increasing,
//     non-overlapping offset order.
//   - The Builder never modifies the caller's batches, and a failed AddChunk
//     writes nothing.
//   - Decoders never panic on any input and never allocate more than the
//     size of the input they were given, whatever lengths it declares.
//
// # Errors
//
// Damage in a stored object is a *CorruptError naming the object, the byte
// range that failed its check and why; it matches ErrCorrupt with errors.Is,
// and also its cause: ErrCRC (checksum mismatch), ErrTruncated, ErrMagic,
// ErrVersion. ErrCRC and ErrTruncated themselves match ErrCorrupt.
// SplitBatches and ParseBatchHeader return errors naming the batch's byte
// position that match ErrMagic (Kafka message format v0/v1 is not
// supported), ErrTruncated, ErrCRC or ErrCorrupt. Builder misuse is
// ErrInvalidChunk; using a Builder after Finish or a write error is
// ErrFinished. I/O errors from the io.ReaderAt are wrapped and returned as
// they are, not as corruption.
package segment
