package metastore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TxnPhase is where a transactional ID's current transaction stands, as
// Kafka's transaction coordinator names its states.
type TxnPhase string

const (
	// TxnEmpty: no transaction since InitProducerId.
	TxnEmpty TxnPhase = "Empty"
	// TxnOngoing: partitions or groups were added; nothing decided.
	TxnOngoing TxnPhase = "Ongoing"
	// TxnPrepareCommit and TxnPrepareAbort: the outcome is decided and
	// durable; markers (and, for a commit, the group offsets) are being
	// written. Whoever coordinates the ID finishes them.
	TxnPrepareCommit TxnPhase = "PrepareCommit"
	TxnPrepareAbort  TxnPhase = "PrepareAbort"
	// TxnCompleteCommit and TxnCompleteAbort: every marker is written.
	TxnCompleteCommit TxnPhase = "CompleteCommit"
	TxnCompleteAbort  TxnPhase = "CompleteAbort"
)

// TxnPartition is one partition in a transaction. The topic ID is kept so
// that a marker never lands in a re-created topic of the same name.
type TxnPartition struct {
	Topic     string  `json:"topic"`
	TopicID   TopicID `json:"topic_id"`
	Partition int32   `json:"p"`
}

// TxnState is the durable state of one transactional ID
// (txns/<t>/state), written only by its coordinator.
type TxnState struct {
	ProducerID int64    `json:"pid"`
	Epoch      int16    `json:"epoch"`
	TimeoutMs  int32    `json:"timeout_ms"`
	Phase      TxnPhase `json:"phase"`
	// Partitions and Groups are the current transaction's (empty unless
	// Ongoing or Prepare*).
	Partitions []TxnPartition `json:"partitions,omitempty"`
	Groups     []string       `json:"groups,omitempty"`
	// StartMs is when the current transaction began (its deadline is
	// StartMs + TimeoutMs); UpdateMs the last change of the state.
	StartMs  int64 `json:"start_ms,omitempty"`
	UpdateMs int64 `json:"update_ms"`
	// StartRevision identifies the current transaction: the revision of
	// the state it was started from (Begin). Every start is a write
	// compared on that revision, so no two transactions of an ID share
	// one, and a later transaction's is larger. Its markers carry it, and
	// a partition refuses a transactional batch verified against a
	// transaction whose marker it already has (ProducerState.EndedTxn).
	// 0: started by an agent that did not record it.
	StartRevision int64 `json:"start_rev,omitempty"`
	// EndBumped: the epoch was bumped by the end of the last transaction
	// (EndTxn v5+, KIP-890 part 2), so a retry of that EndTxn carries
	// the epoch below. PrevProducerID is the producer ID before an end
	// that ran out of epochs; NextProducerID the one an end in Prepare*
	// moves to once complete (its markers carry the old ID).
	EndBumped      bool  `json:"end_bumped,omitempty"`
	PrevProducerID int64 `json:"prev_pid,omitempty"`
	NextProducerID int64 `json:"next_pid,omitempty"`
	// Revision is the etcd ModRevision of the key when read (0: absent).
	Revision int64 `json:"-"`
}

// Validate checks the invariants of a stored state.
func (t TxnState) Validate() error {
	switch t.Phase {
	case TxnEmpty, TxnOngoing, TxnPrepareCommit, TxnPrepareAbort, TxnCompleteCommit, TxnCompleteAbort:
	default:
		return fmt.Errorf("%w: transaction state: unknown phase %q", ErrInvalid, t.Phase)
	}
	if t.ProducerID < 0 || t.Epoch < 0 || t.TimeoutMs <= 0 || t.StartRevision < 0 {
		return fmt.Errorf("%w: transaction state: producer %d epoch %d timeout %d start revision %d",
			ErrInvalid, t.ProducerID, t.Epoch, t.TimeoutMs, t.StartRevision)
	}
	for _, p := range t.Partitions {
		if p.Topic == "" || p.TopicID.IsZero() || p.Partition < 0 {
			return fmt.Errorf("%w: transaction state: bad partition %+v", ErrInvalid, p)
		}
	}
	return nil
}

// Begin returns st (read at st.Revision) with a new transaction started
// at nowMs: Ongoing, with no partitions or groups yet.
func (t TxnState) Begin(nowMs int64) TxnState {
	t.Phase, t.StartMs, t.StartRevision, t.Partitions, t.Groups = TxnOngoing, nowMs, t.Revision, nil, nil
	return t
}

// HasPartition reports whether the transaction holds the partition.
func (t TxnState) HasPartition(id TopicID, partition int32) bool {
	for _, p := range t.Partitions {
		if p.TopicID == id && p.Partition == partition {
			return true
		}
	}
	return false
}

// HasGroup reports whether the transaction holds the group's offsets.
func (t TxnState) HasGroup(g string) bool {
	for _, x := range t.Groups {
		if x == g {
			return true
		}
	}
	return false
}

func (a AbortedTxn) validate() error {
	if a.ProducerID < 0 || a.FirstOffset < 0 || a.LastOffset < a.FirstOffset {
		return fmt.Errorf("%w: aborted transaction %+v", ErrInvalid, a)
	}
	return nil
}

func encodeAborted(a AbortedTxn) ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(a)
}

// ClaimTxnCoordinator makes nodeID the coordinator of transactional ID t
// under lease, unless someone holds it: txns/<t>/coordinator is created
// with CreateRevision == 0, as ClaimGroup does for groups. It returns the
// holder and whether the holder's lease is lease.
func (s *Store) ClaimTxnCoordinator(ctx context.Context, t string, nodeID int32, lease clientv3.LeaseID) (int32, bool, error) {
	if t == "" {
		return -1, false, fmt.Errorf("claim transaction coordinator: %w: empty transactional id", ErrInvalid)
	}
	k := s.keys.txnCoordinator(t)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, strconv.Itoa(int(nodeID)), clientv3.WithLease(lease))).
		Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return -1, false, fmt.Errorf("claim transaction coordinator %q: %w", t, err)
	}
	if resp.Succeeded {
		return nodeID, true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return -1, false, fmt.Errorf("claim transaction coordinator %q: %w", t, ErrConflict)
	}
	holder, err := parseNode(string(kvs[0].Key), kvs[0].Value)
	if err != nil {
		return -1, false, fmt.Errorf("claim transaction coordinator: %w", err)
	}
	return holder, clientv3.LeaseID(kvs[0].Lease) == lease, nil
}

// TxnCoordinator returns the node ID holding t's coordinator key, -1 if none.
func (s *Store) TxnCoordinator(ctx context.Context, t string) (int32, error) {
	resp, err := s.cli.Get(ctx, s.keys.txnCoordinator(t))
	if err != nil {
		return -1, fmt.Errorf("read transaction coordinator %q: %w", t, err)
	}
	if len(resp.Kvs) == 0 {
		return -1, nil
	}
	return parseNode(string(resp.Kvs[0].Key), resp.Kvs[0].Value)
}

// GetTxnState returns t's state; ok is false when it has none.
func (s *Store) GetTxnState(ctx context.Context, t string) (st TxnState, ok bool, err error) {
	k := s.keys.txnState(t)
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return TxnState{}, false, fmt.Errorf("read transaction state %q: %w", t, err)
	}
	if len(resp.Kvs) == 0 {
		return TxnState{}, false, nil
	}
	st, err = decodeTxnState(k, resp.Kvs[0].Value)
	st.Revision = resp.Kvs[0].ModRevision
	return st, err == nil, err
}

func decodeTxnState(key string, v []byte) (TxnState, error) {
	var st TxnState
	if err := decodeStrict(v, &st); err != nil {
		return TxnState{}, corrupt(key, err)
	}
	if err := st.Validate(); err != nil {
		return TxnState{}, corrupt(key, err)
	}
	return st, nil
}

// PutTxnState writes t's state if the caller holds t's coordinator key
// under lease (else ErrNotCoordinator) and the state is still at
// st.Revision (0: absent; else ErrConflict). It returns the new revision.
func (s *Store) PutTxnState(ctx context.Context, t string, lease clientv3.LeaseID, st TxnState) (int64, error) {
	if err := st.Validate(); err != nil {
		return 0, fmt.Errorf("put transaction state %q: %w", t, err)
	}
	val, err := json.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("put transaction state %q: %w", t, err)
	}
	ck, sk := s.keys.txnCoordinator(t), s.keys.txnState(t)
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.LeaseValue(ck), "=", lease),
		clientv3.Compare(clientv3.ModRevision(sk), "=", st.Revision),
	).Then(clientv3.OpPut(sk, string(val))).Else(clientv3.OpGet(ck)).Commit()
	if err != nil {
		return 0, fmt.Errorf("put transaction state %q: %w", t, err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 0 || clientv3.LeaseID(kvs[0].Lease) != lease {
		return 0, fmt.Errorf("put transaction state %q: %w", t, ErrNotCoordinator)
	}
	return 0, fmt.Errorf("put transaction state %q: %w: changed since revision %d", t, ErrConflict, st.Revision)
}

// AddToTxnState writes st, a state read at st.Revision with partitions
// or groups added (KIP-890 part 2's implicit adds, made by the agent
// answering a Produce or TxnOffsetCommit, which need not be the
// coordinator), if the state is still at that revision (else
// ErrConflict). Unlike PutTxnState it needs no coordinator lease: the
// revision alone orders it with the coordinator's writes, which compare
// it too, so an add racing an end fails one of the two. It returns the
// new revision.
func (s *Store) AddToTxnState(ctx context.Context, t string, st TxnState) (int64, error) {
	if st.Revision <= 0 {
		return 0, fmt.Errorf("add to transaction state %q: %w: no state read", t, ErrInvalid)
	}
	if err := st.Validate(); err != nil {
		return 0, fmt.Errorf("add to transaction state %q: %w", t, err)
	}
	val, err := json.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("add to transaction state %q: %w", t, err)
	}
	sk := s.keys.txnState(t)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(sk), "=", st.Revision)).
		Then(clientv3.OpPut(sk, string(val))).Commit()
	if err != nil {
		return 0, fmt.Errorf("add to transaction state %q: %w", t, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("add to transaction state %q: %w: changed since revision %d", t, ErrConflict, st.Revision)
	}
	return resp.Header.Revision, nil
}

// TxnListing is one transactional ID known to etcd.
type TxnListing struct {
	ID string
	// State is its state (HasState false: none written yet).
	State    TxnState
	HasState bool
	// Coordinator is the node ID holding its coordinator key, -1 if none.
	Coordinator int32
}

// ListTxns returns every transactional ID with a state or a coordinator,
// sorted by ID, in one ranged read.
func (s *Store) ListTxns(ctx context.Context) ([]TxnListing, error) {
	resp, err := s.cli.Get(ctx, s.keys.txnsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	var out []TxnListing
	for _, kv := range resp.Kvs {
		t, tail, err := s.keys.parseTxnKey(string(kv.Key))
		if err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].ID != t {
			out = append(out, TxnListing{ID: t, Coordinator: -1})
		}
		l := &out[len(out)-1]
		switch tail {
		case "coordinator":
			if l.Coordinator, err = parseNode(string(kv.Key), kv.Value); err != nil {
				return nil, err
			}
		case "state":
			if l.State, err = decodeTxnState(string(kv.Key), kv.Value); err != nil {
				return nil, err
			}
			l.State.Revision, l.HasState = kv.ModRevision, true
		}
	}
	return out, nil
}

// PutTxnOffsets stores a transaction's pending offsets for group (under
// txn-offsets/<g>/<pid>/), if t's state is still at stateRevision: the
// caller read it Ongoing with the group added, and a state that changed
// meanwhile (the transaction ended) fails with ErrConflict. The offsets
// become the group's at commit (FinishTxnOffsets).
func (s *Store) PutTxnOffsets(ctx context.Context, t string, stateRevision int64, group string, pid int64, offs []GroupOffset) error {
	if len(offs) > groupTxnOps {
		return fmt.Errorf("put transaction offsets %q: %w: %d offsets, at most %d per request", group, ErrInvalid, len(offs), groupTxnOps)
	}
	ops := make([]clientv3.Op, 0, len(offs))
	for _, o := range offs {
		if o.Topic == "" || o.Partition < 0 {
			return fmt.Errorf("put transaction offsets %q: %w: topic %q partition %d", group, ErrInvalid, o.Topic, o.Partition)
		}
		v, err := json.Marshal(o)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(s.keys.txnOffset(group, pid, o.Topic, o.Partition), string(v)))
	}
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(s.keys.txnState(t)), "=", stateRevision)).
		Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("put transaction offsets %q: %w", group, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("put transaction offsets %q: %w: transaction state changed", group, ErrConflict)
	}
	return nil
}

// FinishTxnOffsets ends producer pid's pending offsets for group: with
// commit they become the group's committed offsets, without they are
// dropped. Pending keys are deleted in the same transactions that copy
// them, so a repeated call (a new coordinator finishing a commit) does
// only what is left. Each transaction is fenced by t's coordinator key
// (ErrNotCoordinator when lease no longer holds it).
func (s *Store) FinishTxnOffsets(ctx context.Context, t string, lease clientv3.LeaseID, group string, pid int64, commit bool) error {
	prefix := s.keys.txnOffsetsProducer(group, pid)
	fence := clientv3.Compare(clientv3.LeaseValue(s.keys.txnCoordinator(t)), "=", lease)
	const rounds = 1000 // of groupTxnOps/2 offsets each
	for range rounds {
		resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithLimit(groupTxnOps/2))
		if err != nil {
			return fmt.Errorf("finish transaction offsets %q: %w", group, err)
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		var ops []clientv3.Op
		cmps := []clientv3.Cmp{fence}
		for _, kv := range resp.Kvs {
			if commit {
				var o GroupOffset
				if err := json.Unmarshal(kv.Value, &o); err != nil || o.Topic == "" || o.Partition < 0 {
					return fmt.Errorf("finish transaction offsets %q: %w", group, corrupt(string(kv.Key), fmt.Errorf("bad offset: %v", err)))
				}
				ops = append(ops, clientv3.OpPut(s.keys.groupOffset(group, o.Topic, o.Partition), string(kv.Value)))
			}
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
		}
		tr, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(s.keys.txnCoordinator(t))).Commit()
		if err != nil {
			return fmt.Errorf("finish transaction offsets %q: %w", group, err)
		}
		if !tr.Succeeded {
			if kvs := tr.Responses[0].GetResponseRange().Kvs; len(kvs) == 0 || clientv3.LeaseID(kvs[0].Lease) != lease {
				return fmt.Errorf("finish transaction offsets %q: %w", group, ErrNotCoordinator)
			}
			// A pending key changed (a concurrent finisher): the next Get
			// sees what is left.
		}
	}
	return fmt.Errorf("finish transaction offsets %q: %w (gave up after %d rounds)", group, ErrConflict, rounds)
}

// PendingTxnOffsets returns the partitions (topic -> partitions) of group
// that have a transactional offset waiting for its transaction's end
// (OffsetFetch's require_stable answers UNSTABLE_OFFSET_COMMIT for them).
func (s *Store) PendingTxnOffsets(ctx context.Context, group string) (map[string]map[int32]bool, error) {
	resp, err := s.cli.Get(ctx, s.keys.txnOffsetsGroup(group), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("pending transaction offsets %q: %w", group, err)
	}
	out := map[string]map[int32]bool{}
	for _, kv := range resp.Kvs {
		var o GroupOffset
		if err := json.Unmarshal(kv.Value, &o); err != nil {
			return nil, corrupt(string(kv.Key), err)
		}
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]bool{}
		}
		out[o.Topic][o.Partition] = true
	}
	return out, nil
}

// DeleteAbortedTxns removes aborted transactions from a partition's index,
// named by their last offset (the abort marker's), in transactions of at
// most 100 deletes. Key compaction calls it before it rewrites the markers
// away, once their records are gone: an index entry without its marker
// would make read_committed clients skip the producer's later batches,
// while a marker without its entry is ignored by them.
func (s *Store) DeleteAbortedTxns(ctx context.Context, id TopicID, partition int32, lastOffsets []int64) error {
	for len(lastOffsets) > 0 {
		n := min(len(lastOffsets), 100)
		ops := make([]clientv3.Op, 0, n)
		for _, last := range lastOffsets[:n] {
			ops = append(ops, clientv3.OpDelete(s.keys.aborted(id, partition, last)))
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("delete aborted transactions of %s/%d: %w", id, partition, err)
		}
		lastOffsets = lastOffsets[n:]
	}
	return nil
}

// AbortedTxns returns the aborted transactions of a partition that end at
// or after from and begin at or before to, oldest first, at most limit
// (read_committed Fetch).
func (s *Store) AbortedTxns(ctx context.Context, id TopicID, partition int32, from, to int64, limit int) ([]AbortedTxn, error) {
	resp, err := s.cli.Get(ctx, s.keys.aborted(id, partition, max(from, 0)),
		clientv3.WithRange(prefixEnd(s.keys.partitionAborted(id, partition))), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("aborted transactions %s/%d: %w", id, partition, err)
	}
	var out []AbortedTxn
	for _, kv := range resp.Kvs {
		var a AbortedTxn
		if err := decodeStrict(kv.Value, &a); err != nil || a.validate() != nil {
			return nil, corrupt(string(kv.Key), fmt.Errorf("bad aborted transaction: %v", err))
		}
		if a.FirstOffset <= to {
			out = append(out, a)
		}
	}
	return out, nil
}
