package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"

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
// may be written. Records without a transactional batch pass; malformed
// ones are left to the engine's validation.
func (v *txnVerifier) check(ctx context.Context, id metastore.TopicID, partition int32, records []byte) int16 {
	h, ok := firstTxnBatch(records)
	if !ok {
		return 0
	}
	if v.tid == nil {
		return kerr.InvalidRecord.Code
	}
	if !v.loaded {
		v.loaded = true
		st, ok, err := v.s.meta.GetTxnState(ctx, *v.tid)
		if err != nil {
			v.code = errCode(v.s.log, "produce: read transaction state", err)
		}
		v.st, v.exists = st, ok
	}
	switch {
	case v.code != 0:
		return v.code
	case !v.exists || v.st.ProducerID != h.ProducerID:
		return kerr.InvalidProducerIDMapping.Code
	case v.st.Epoch != h.ProducerEpoch:
		return kerr.InvalidProducerEpoch.Code
	case v.st.Phase != metastore.TxnOngoing || !v.st.HasPartition(id, partition):
		return kerr.InvalidTxnState.Code
	}
	return 0
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
