package agent

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment"
)

// txnVerifier checks the transactional batches of one produce request
// against the transactional ID's state, read from etcd once per request
// (see produce.go).
type txnVerifier struct {
	s      *Server
	tid    *string
	loaded bool
	exists bool
	st     metastore.TxnState
	code   int16 // reading the state failed
}

// check returns the error code for one partition's records, 0 if they
// may be written, and the transaction they were verified against
// (metastore.TxnState.StartRevision; 0 for records without a
// transactional batch), which the engine checks again at commit
// (engine.ProduceTxn): a transaction that ended meanwhile refuses them.
// Records without a transactional batch pass; malformed ones are left to
// the engine's validation.
func (v *txnVerifier) check(ctx context.Context, id metastore.TopicID, partition int32, records []byte) (code int16, txn int64) {
	h, ok := firstTxnBatch(records)
	if !ok {
		return 0, 0
	}
	if v.tid == nil {
		return kerr.InvalidRecord.Code, 0
	}
	v.load(ctx)
	switch {
	case v.code != 0:
		return v.code, 0
	case !v.exists || v.st.ProducerID != h.ProducerID:
		return kerr.InvalidProducerIDMapping.Code, 0
	case v.st.Epoch != h.ProducerEpoch:
		return kerr.InvalidProducerEpoch.Code, 0
	case v.st.Phase != metastore.TxnOngoing || !v.st.HasPartition(id, partition):
		return kerr.InvalidTxnState.Code, 0
	}
	return 0, v.st.StartRevision
}

// load reads the transaction state once per request.
func (v *txnVerifier) load(ctx context.Context) {
	if v.loaded {
		return
	}
	v.loaded = true
	st, ok, err := v.s.meta.GetTxnState(ctx, *v.tid)
	if err != nil {
		v.code = errCode(v.s.log, "produce: read transaction state", err)
	}
	v.st, v.exists = st, ok
}

// implicitAdd adds to producer pid's transaction, at epoch, the
// partitions of a Produce v12+ request that carry transactional batches
// and are not in it yet (KIP-890 part 2), in one write compared on the
// state's revision (txn_coord.go), starting the transaction if none is
// ongoing. A state of another producer or epoch is left for check to
// refuse; an end in progress is CONCURRENT_TRANSACTIONS, which clients
// retry.
func (v *txnVerifier) implicitAdd(ctx context.Context, parts []metastore.TxnPartition, pid int64, epoch int16) {
	for range claimAttempts {
		v.loaded = false
		v.load(ctx)
		if v.code != 0 || !v.exists || v.st.ProducerID != pid || v.st.Epoch != epoch {
			return
		}
		st, added, code := withPartitions(v.st, parts)
		if code != 0 {
			v.code = code
			return
		}
		if !added {
			return
		}
		st.UpdateMs = time.Now().UnixMilli()
		rev, err := v.s.meta.AddToTxnState(ctx, *v.tid, st)
		if err == nil {
			st.Revision = rev
			v.st = st
			return
		}
		if !errors.Is(err, metastore.ErrConflict) {
			v.code = errCode(v.s.log, "produce: add partitions to the transaction", err)
			return
		}
	}
	v.code = kerr.ConcurrentTransactions.Code
}

// implicitPartitions returns the partitions of a transactional Produce
// request that carry transactional batches, and the producer of the
// first such batch (ok false: none).
func (s *Server) implicitPartitions(ctx context.Context, req *kmsg.ProduceRequest) (parts []metastore.TxnPartition, pid int64, epoch int16, ok bool) {
	for _, rt := range req.Topics {
		t, terr := s.requestTopic(ctx, "produce", req.Version >= 13, rt.TopicID, rt.Topic)
		if terr != nil {
			continue
		}
		for _, p := range rt.Partitions {
			h, txn := firstTxnBatch(p.Records)
			if !txn || p.Partition < 0 || p.Partition >= t.Partitions {
				continue
			}
			if !ok {
				pid, epoch, ok = h.ProducerID, h.ProducerEpoch, true
			}
			parts = append(parts, metastore.TxnPartition{Topic: t.Name, TopicID: t.ID, Partition: p.Partition})
		}
	}
	return parts, pid, epoch, ok
}

// firstTxnBatch returns the header of the first transactional batch in
// records, reading only batch headers.
func firstTxnBatch(records []byte) (segment.BatchHeader, bool) {
	for len(records) >= segment.BatchHeaderSize {
		h, err := segment.ParseBatchHeader(records)
		if err != nil {
			return h, false
		}
		if h.IsTransactional() {
			return h, true
		}
		if int(h.Length) > len(records) {
			return h, false
		}
		records = records[h.Length:]
	}
	return segment.BatchHeader{}, false
}
