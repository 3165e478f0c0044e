// Package manifest is the format of a recovery manifest: a snapshot of a
// cluster's etcd namespace, written to the bucket by the manifest
// lifecycle job and read back by `shale recover` (and by garbage
// collection, which keeps every object a manifest references). It is pure
// code over bytes and imports nothing of shale's, like package segment.
//
// # What a manifest holds
//
// Every key of the namespace not bound to an etcd lease
// (metastore.Snapshot), as its raw value, at one etcd revision: topics and
// topic IDs, partition states (next offset, log start offset, idempotent
// producer state, open transactions), every index entry, topic stats,
// cleaner checkpoints, the producer ID counter, the cluster record, group
// offsets and group records, transaction states and pending transactional
// offsets, the aborted-transaction index, ACLs and SCRAM credentials
// (salted keys only; no password is ever stored, so none is in a manifest).
// Leased keys (agents, job elections, group and transaction coordinators,
// manifest pins) belong to live processes and are rebuilt by them. It also
// lists every object key an index entry of the snapshot points into.
//
// # Layout
//
//	+------------------+----------------------------+-------------------------------+
//	| magic "SHMF" (4) | version (1) | zero (3)     | body: zstd frame of records   |
//	+------------------+----------------------------+-------------------------------+
//	| trailer: body length u64 BE | CRC-32C of body u32 BE | magic "SHME" (4)         |
//	+---------------------------------------------------------------------------------+
//
// Decompressed, the body is a sequence of records:
//
//	kind (1) | uvarint len(a) | a | uvarint len(b) | b
//
//	KindHeader (1)  a = Header as JSON, b empty: exactly once, first
//	KindObject (2)  a = an object key the index references, b empty
//	KindKV     (3)  a = a key relative to the namespace, b = its value
//	KindEnd    (4)  a = Counts as JSON, b empty: exactly once, last
//
// Keys are at most MaxKeyBytes, values MaxValueBytes, the decompressed
// body at most the decoder's limit (DefaultMaxBodyBytes): a decoder's
// memory is bounded whatever the input. Any violation, a short object, a
// CRC mismatch, a count that disagrees with the records, an unknown kind or
// a missing end record is ErrCorrupt, never a panic.
//
// # Restoring, and agents kept out meanwhile
//
// `shale recover` writes a manifest's keys back with metastore.Restore.
// It first sets <namespace>/recovering to the manifest's key
// (metastore.BeginRestore), in one etcd transaction with the check that
// the namespace holds no key at all (or already names that manifest: a
// restore killed midway, resumed), and deletes it after the last key. An
// agent records the cluster (metastore.RecordCluster) before it serves,
// and that transaction fails while the marker exists: an agent started
// during a recover, or after one was killed and not run again, refuses to
// start and says so, and an agent that started first makes the recover
// refuse. So no agent ever serves a half-restored namespace.
//
// # Keys in the bucket
//
// Manifests live under Prefix ("meta/manifests/"), named by their snapshot
// revision zero-padded to 20 digits (Key, ParseKey), so the newest is the
// last in key order. An object store's PUT is atomic (a crash mid-upload
// leaves no object, or the local-directory store's reserved temporary
// name), so a manifest that exists is whole unless the bucket corrupted
// it; the trailer catches that.
package manifest
