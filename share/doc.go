// Package share is the state of one share-partition of a KIP-932 share
// group (a group's view of one topic partition): pure logic, no I/O. The
// agent (agent/share_*.go) loads a Partition from etcd, applies one
// request's acknowledgements and acquisitions to it, and writes it back
// with a compare-and-swap (metastore, shares.go).
//
// # Model
//
// Records below Start (the share-partition start offset, SPSO) are done:
// acknowledged or archived, never delivered again. Records from Start to
// End-1 are in flight, each with a state, a delivery count, and, while
// acquired, the member holding it and the lock's deadline. Records from End
// on have never been acquired: available, delivery count 0.
//
//	Available --acquire--> Acquired --ACCEPT--> Acknowledged
//	    ^                    |  |  \--REJECT/GAP/Skip--> Archived
//	    +--RELEASE, lock expiry, member left--+  (or Archived once the
//	                                              delivery count reached
//	                                              the limit)
//
// # Invariants
//
//   - Start only moves forward (Acknowledge, Archive, log truncation) or
//     where an operator puts it (Reset, AlterShareGroupOffsets with the
//     group empty). Every record below Start is Acknowledged or Archived,
//     so no record below Start is ever acquired again.
//   - The record at Start is never Acknowledged or Archived: those are
//     dropped from the front as soon as they get there.
//   - End - Start <= MaxInFlight (Kafka's group.share.partition.max.record.locks,
//     2,000): acquisition never extends the window past it, so the state of
//     a partition is bounded whatever its consumers do.
//   - A record is Acquired by exactly one member; only that member's
//     acknowledgement changes it (others get ErrInvalidRecordState).
//   - A record's delivery count is the number of times it was acquired; it
//     is never acquired again once the count reached the delivery limit:
//     a release or a lock expiry then archives it.
//   - Acknowledgement batches are validated all together before any is
//     applied: a request is applied whole or not at all.
//   - Lock expiry is evaluated lazily, against a clock passed in (Expire):
//     the state holds deadlines, not timers, so any agent that loads it
//     enforces the same locks.
//
// # Errors
//
// ErrInvalidRequest: malformed acknowledgement batches (overlapping, out of
// order, a type list of the wrong length, an unknown type, offsets never
// delivered). ErrInvalidRecordState: a record not acquired by the member
// acknowledging it. ErrCorrupt: Unmarshal of bytes that are not a valid
// state (the encoding is in codec.go).
package share
