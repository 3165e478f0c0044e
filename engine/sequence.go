package engine

import (
	"math"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/metastore"
)

// Idempotence bookkeeping, evaluated at commit time against the partition
// state read from etcd, so it holds across agents: a producer that retries
// through another agent is still de-duplicated.

const (
	// producerBatchesKept is how many recent batches per producer are
	// remembered for duplicate detection (Kafka keeps 5, matching
	// max.in.flight.requests.per.connection).
	producerBatchesKept = 5
	// producerExpiryMs drops the state of producers idle this long (Kafka's
	// producer.id.expiration.ms default, one day).
	producerExpiryMs = 24 * 60 * 60 * 1000
	// maxProducersPerPartition bounds the state value's size in etcd.
	maxProducersPerPartition = 2000
)

// batchMeta is what sequencing needs from a record batch header.
type batchMeta struct {
	records    int64 // offsets the batch occupies (lastOffsetDelta+1)
	producerID int64
	epoch      int16
	baseSeq    int32
	lastDelta  int32
	txn        bool       // transactional attribute
	marker     markerKind // a transaction marker (WriteMarker), else noMarker
	// txnStart is the transaction (metastore.TxnState.StartRevision) a
	// transactional batch was verified against, or a marker ends; 0:
	// unknown.
	txnStart int64
}

type markerKind int8

const (
	noMarker markerKind = iota
	markerCommit
	markerAbort
)

// verdict is the commit-time outcome for one batch.
type verdict struct {
	accept bool  // written at offset
	offset int64 // absolute base offset (accepted or original of a duplicate)
	err    error // a *kerr.Error when rejected
	// aborted is set for an accepted abort marker: the transaction it
	// closes, for the aborted-transaction index.
	aborted *metastore.AbortedTxn
	// noted is set for a marker not written that still changed the
	// producer's state (its ended transaction or epoch), which must then
	// be committed without an index entry.
	noted bool
}

func lastSeq(b batchMeta) int32 {
	s := int64(b.baseSeq) + int64(b.lastDelta)
	if s > math.MaxInt32 {
		s -= math.MaxInt32 + 1
	}
	return int32(s)
}

func nextSeq(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

// sequence assigns offsets to batches in order, mutating st (a clone the
// caller owns). Non-idempotent batches (producerID < 0) are always accepted.
// Idempotent batches are accepted when their sequence follows the producer's
// last one, answered with the original offset when they repeat one of the
// last five batches, and rejected otherwise.
//
// A producer unknown to the partition may start at any sequence: its state
// may have expired, and refusing it would make the client fail hard. This is
// more lenient than Kafka, which answers OUT_OF_ORDER_SEQUENCE_NUMBER there.
func sequence(st *metastore.PartitionState, batches []batchMeta, nowMs int64) []verdict {
	out := make([]verdict, len(batches))
	for i, b := range batches {
		if b.marker != noMarker {
			out[i] = sequenceMarker(st, b, nowMs)
			continue
		}
		if b.producerID < 0 {
			out[i] = verdict{accept: true, offset: st.NextOffset}
			st.NextOffset += b.records
			continue
		}
		if st.Producers == nil {
			st.Producers = make(map[int64]*metastore.ProducerState)
		}
		ps := st.Producers[b.producerID]
		switch {
		case ps == nil:
			ps = &metastore.ProducerState{Epoch: b.epoch}
			st.Producers[b.producerID] = ps
		case b.epoch < ps.Epoch:
			out[i] = verdict{err: kerr.InvalidProducerEpoch}
			continue
		case b.txn && b.txnStart > 0 && b.txnStart <= ps.EndedTxn:
			// Verified while its transaction was ongoing, committing
			// after the transaction's marker (ProduceTxn).
			if off, ok := findDuplicate(ps, b); ok && b.epoch == ps.Epoch {
				out[i] = verdict{offset: off}
			} else {
				out[i] = verdict{err: kerr.InvalidTxnState}
			}
			continue
		case b.epoch > ps.Epoch:
			if b.baseSeq != 0 {
				out[i] = verdict{err: kerr.OutOfOrderSequenceNumber}
				continue
			}
			ps.Epoch, ps.Batches = b.epoch, nil
		default:
			if off, ok := findDuplicate(ps, b); ok {
				out[i] = verdict{offset: off}
				continue
			}
			if n := len(ps.Batches); n > 0 && b.baseSeq != nextSeq(ps.Batches[n-1].LastSeq) {
				out[i] = verdict{err: kerr.OutOfOrderSequenceNumber}
				continue
			}
		}
		out[i] = verdict{accept: true, offset: st.NextOffset}
		if b.txn {
			if _, open := st.Txns[b.producerID]; !open {
				if st.Txns == nil {
					st.Txns = make(map[int64]int64)
				}
				st.Txns[b.producerID] = st.NextOffset
			}
		}
		ps.Batches = append(ps.Batches, metastore.BatchMeta{FirstSeq: b.baseSeq, LastSeq: lastSeq(b), BaseOffset: st.NextOffset})
		if len(ps.Batches) > producerBatchesKept {
			ps.Batches = append(ps.Batches[:0], ps.Batches[len(ps.Batches)-producerBatchesKept:]...)
		}
		ps.LastMs = nowMs
		st.NextOffset += b.records
	}
	expireProducers(st, nowMs)
	return out
}

// sequenceMarker decides one transaction marker. A marker closes its
// producer's open transaction in the partition and takes the next offset;
// an abort marker's verdict carries the aborted transaction. A marker
// finding no open transaction of its producer is a repeat (a coordinator
// finishing an end that a dead one had started) or closes a transaction
// that never wrote here: it is not written (a duplicate verdict). Either
// way it records its transaction as the producer's ended one (a batch of
// it committing later is refused) and its epoch, when newer, as the
// producer's, fencing batches of older epochs; a marker not written that
// changed either is noted, so that the state is committed.
func sequenceMarker(st *metastore.PartitionState, b batchMeta, nowMs int64) verdict {
	first, open := st.Txns[b.producerID]
	ps := st.Producers[b.producerID]
	changes := ps == nil || b.txnStart > ps.EndedTxn || b.epoch > ps.Epoch
	if !open && !changes {
		return verdict{offset: -1}
	}
	if st.Producers == nil {
		st.Producers = make(map[int64]*metastore.ProducerState)
	}
	if ps == nil {
		ps = &metastore.ProducerState{Epoch: b.epoch}
		st.Producers[b.producerID] = ps
	}
	if b.epoch > ps.Epoch {
		ps.Epoch, ps.Batches = b.epoch, nil
	}
	ps.EndedTxn = max(ps.EndedTxn, b.txnStart)
	ps.LastMs = nowMs
	if !open {
		return verdict{offset: -1, noted: true}
	}
	off := st.NextOffset
	v := verdict{accept: true, offset: off}
	if b.marker == markerAbort {
		v.aborted = &metastore.AbortedTxn{ProducerID: b.producerID, FirstOffset: first, LastOffset: off}
	}
	delete(st.Txns, b.producerID)
	if len(st.Txns) == 0 {
		st.Txns = nil
	}
	st.NextOffset += b.records
	return v
}

func findDuplicate(ps *metastore.ProducerState, b batchMeta) (int64, bool) {
	last := lastSeq(b)
	for _, m := range ps.Batches {
		if m.FirstSeq == b.baseSeq && m.LastSeq == last {
			return m.BaseOffset, true
		}
	}
	return 0, false
}

// expireProducers drops idle producers and, past the bound, the least
// recently active ones.
func expireProducers(st *metastore.PartitionState, nowMs int64) {
	for id, ps := range st.Producers {
		if nowMs-ps.LastMs > producerExpiryMs {
			delete(st.Producers, id)
		}
	}
	for len(st.Producers) > maxProducersPerPartition {
		var oldID int64
		oldMs := int64(math.MaxInt64)
		for id, ps := range st.Producers {
			if ps.LastMs < oldMs {
				oldID, oldMs = id, ps.LastMs
			}
		}
		delete(st.Producers, oldID)
	}
	if len(st.Producers) == 0 {
		st.Producers = nil
	}
}
