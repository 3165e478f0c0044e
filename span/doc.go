// Package span reads what index entries point to as verified record
// batches: an index entry (metastore.IndexEntry) resolves to spans — the
// whole byte range of a chunk entry, or one chunk per span of a compacted
// segment entry, whose footer comes from a FooterCache — and each span is
// read with one ranged GET and checked (CRC, batch headers, exactly the
// offsets the index claims; ParseSpan). The engine's fetches and
// read-ahead, replay and the lifecycle jobs all read through it.
//
// # Read retries
//
// A body that fails after the store accepted the answer cannot be retried
// by the SDK; ReadRange and ReadRangeInto retry it: a body that ends early,
// is reset or stalls is a transport fault, and the read resumes with a GET
// of the missing bytes, up to ReadAttempts (3) GETs in all, 50 ms then
// 100 ms apart, stopping as soon as the caller's context is done. When they
// are spent the error wraps io.ErrUnexpectedEOF. A missing object
// (s3tier.IsNotFound), a range past the object's end
// (s3tier.ErrInvalidRange, also segment.ErrTruncated there: the index claims
// bytes the object lacks) and context errors are never retried.
//
// # Bounds
//
// An index entry or footer claiming a range of 0 bytes or above 1 GiB is
// segment.ErrCorrupt, so a corrupt index cannot make an agent allocate
// without bound. A FooterCache holds at most DefaultFooterCacheEntries
// footers unless told otherwise; objects are immutable, so an entry never
// goes stale.
//
// # Imports
//
// span uses s3tier, segment and metastore (for IndexEntry only); engine,
// replay and lifecycle import it.
package span
