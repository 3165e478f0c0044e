package metastore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/shale-dev/shale/internal/retry"
)

// This file holds what the lifecycle jobs (compaction, retention, garbage
// collection) need from etcd: a consistent snapshot of a partition's index,
// the compaction swap, log-start advancement, and one-holder-at-a-time job
// elections.

// ScanIndex reads a partition's state and then calls fn for each of its
// index entries in BaseOffset order (from the first, whatever the log start
// offset), until fn returns false. Everything is read at one etcd revision,
// which it returns: ReplaceEntries takes it to detect any later change.
func (s *Store) ScanIndex(ctx context.Context, id TopicID, partition int32, fn func(IndexEntry) bool) (PartitionState, int64, error) {
	sk := s.keys.state(id, partition)
	resp, err := s.cli.Get(ctx, sk)
	if err != nil {
		return PartitionState{}, 0, fmt.Errorf("scan index %s/%d: %w", id, partition, err)
	}
	rev := resp.Header.Revision
	var st PartitionState
	if len(resp.Kvs) > 0 {
		if st, err = DecodePartitionState(sk, resp.Kvs[0].Value); err != nil {
			return PartitionState{}, 0, err
		}
		st.Revision = resp.Kvs[0].ModRevision
	}
	from := s.keys.entry(id, partition, 0)
	end := prefixEnd(s.keys.partitionIndex(id, partition))
	for {
		page, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(scanPage), clientv3.WithRev(rev))
		if err != nil {
			return PartitionState{}, 0, fmt.Errorf("scan index %s/%d at revision %d: %w", id, partition, rev, err)
		}
		for _, kv := range page.Kvs {
			e, err := s.decodeEntryKV(kv, id, partition)
			if err != nil {
				return PartitionState{}, 0, err
			}
			if !fn(e) {
				return st, rev, nil
			}
		}
		if !page.More || len(page.Kvs) == 0 {
			return st, rev, nil
		}
		from = string(page.Kvs[len(page.Kvs)-1].Key) + "\x00"
	}
}

// ReplaceEntries is compaction's swap: in one transaction it replaces the
// dense run of entries first..last (as read by ScanIndex at revision
// readRev) with repl, which must cover exactly the same offsets. It applies
// only if the topic still exists, the first and last entries still exist,
// and no entry key in the run changed after readRev; otherwise nothing is
// written and the error wraps ErrConflict. The partition state is neither
// compared nor written, so produce commits to the partition's tail never
// conflict with it. The transaction has four compares and two operations,
// whatever the number of entries replaced.
func (s *Store) ReplaceEntries(ctx context.Context, id TopicID, partition int32, readRev int64, first, last, repl IndexEntry) error {
	switch {
	case repl.BaseOffset != first.BaseOffset || repl.LastOffset != last.LastOffset || last.BaseOffset < first.BaseOffset:
		return fmt.Errorf("replace entries %s/%d %d..%d: %w: replacement covers %d..%d",
			id, partition, first.BaseOffset, last.LastOffset, ErrInvalid, repl.BaseOffset, repl.LastOffset)
	case readRev <= 0:
		return fmt.Errorf("replace entries %s/%d: %w: read revision %d", id, partition, ErrInvalid, readRev)
	}
	val, err := encodeIndexEntry(repl)
	if err != nil {
		return fmt.Errorf("replace entries %s/%d: %w", id, partition, err)
	}
	fk := s.keys.entry(id, partition, first.BaseOffset)
	lk := s.keys.entry(id, partition, last.BaseOffset)
	runEnd := s.keys.entry(id, partition, last.BaseOffset+1)
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(s.keys.topicID(id)), ">", 0),
		clientv3.Compare(clientv3.ModRevision(fk), ">", 0),
		clientv3.Compare(clientv3.ModRevision(lk), ">", 0),
		clientv3.Compare(clientv3.ModRevision(fk), "<", readRev+1).WithRange(runEnd),
	}
	var ops []clientv3.Op
	if last.BaseOffset > first.BaseOffset {
		// etcd refuses a put inside a deleted range of the same txn: delete
		// the keys after the first, overwrite the first.
		ops = append(ops, clientv3.OpDelete(s.keys.entry(id, partition, first.BaseOffset+1), clientv3.WithRange(runEnd)))
	}
	ops = append(ops, clientv3.OpPut(fk, string(val)))
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("replace entries %s/%d %d..%d: %w", id, partition, first.BaseOffset, last.LastOffset, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("replace entries %s/%d %d..%d: %w: the run changed after revision %d",
			id, partition, first.BaseOffset, last.LastOffset, ErrConflict, readRev)
	}
	return nil
}

// ErrOffsetOutOfRange is returned by TruncateBefore for an offset past the
// partition's next offset.
var ErrOffsetOutOfRange = errors.New("metastore: offset out of range")

// TruncateBefore advances the partition's log start offset to offset (when
// it is below it) and deletes every index entry that lies wholly below the
// new start, in one transaction that compares the partition state's
// revision and the deleted entries' (so it never deletes an entry a
// concurrent compaction just wrote). Entries straddling the new start stay;
// readers skip the records below it. It retries on conflicts with
// concurrent commits (which, comparing the state revision too, retry in
// turn) and returns the resulting log start offset. offset > NextOffset
// fails with ErrOffsetOutOfRange; a deleted topic with ErrTopicNotFound.
func (s *Store) TruncateBefore(ctx context.Context, id TopicID, partition int32, offset int64) (int64, error) {
	if offset < 0 || partition < 0 {
		return 0, fmt.Errorf("truncate %s/%d before %d: %w", id, partition, offset, ErrInvalid)
	}
	pause := truncateRetry.BackOff()
	for attempt := range truncateRetry.Attempts {
		if attempt > 0 && !retry.Wait(ctx, pause) {
			return 0, fmt.Errorf("truncate %s/%d: %w", id, partition, ctx.Err())
		}
		var lastDrop *IndexEntry
		st, rev, err := s.ScanIndex(ctx, id, partition, func(e IndexEntry) bool {
			if e.LastOffset < offset {
				lastDrop = &e
				return true
			}
			return false
		})
		if err != nil {
			return 0, err
		}
		if offset > st.NextOffset {
			return st.LogStartOffset, fmt.Errorf("truncate %s/%d before %d: %w: next offset is %d", id, partition, offset, ErrOffsetOutOfRange, st.NextOffset)
		}
		if offset <= st.LogStartOffset && lastDrop == nil {
			return st.LogStartOffset, nil
		}
		// A concurrent commit changes only the state: the entries to drop
		// lie below the next offset and stay as scanned. Such a conflict
		// is retried at once against the state the failed transaction
		// read back, without a new scan, so a truncation is not starved by
		// a partition committed to every millisecond; anything else (an
		// entry rewritten or deleted meanwhile) goes back to the scan.
		for fast := 0; fast < truncateFastRetries; fast++ {
			var lsn int64
			var done bool
			st, lsn, done, err = s.truncateTxn(ctx, id, partition, offset, st, rev, lastDrop)
			if err != nil || done {
				return lsn, err
			}
			if st.Revision == 0 {
				break // more than the state changed: scan again
			}
		}
	}
	return 0, fmt.Errorf("truncate %s/%d before %d: %w (gave up after %d attempts)", id, partition, offset, ErrConflict, truncateRetry.Attempts)
}

// truncateFastRetries bounds the retries of one TruncateBefore scan
// against a state that only concurrent commits changed.
const truncateFastRetries = 16

// truncateTxn sets the log start offset of a partition whose state st and
// entries (read at revision rev; lastDrop the last wholly below offset, or
// nil) were scanned, in one transaction that deletes those entries and
// the aborted transactions below the new start. done reports success (lsn
// is then the new log start). On a conflict it returns the state read back
// when only the state changed (a commit: retry with it), else the zero
// state (scan again).
func (s *Store) truncateTxn(ctx context.Context, id TopicID, partition int32, offset int64, st PartitionState, rev int64, lastDrop *IndexEntry) (fresh PartitionState, lsn int64, done bool, err error) {
	next := st.Clone()
	next.LogStartOffset = max(st.LogStartOffset, offset)
	val, err := encodePartitionState(next)
	if err != nil {
		return PartitionState{}, 0, false, fmt.Errorf("truncate %s/%d: %w", id, partition, err)
	}
	sk := s.keys.state(id, partition)
	ik := s.keys.topicID(id)
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(sk), "=", st.Revision),
		clientv3.Compare(clientv3.CreateRevision(ik), ">", 0),
	}
	var ops []clientv3.Op
	elses := []clientv3.Op{clientv3.OpGet(ik, clientv3.WithKeysOnly()), clientv3.OpGet(sk)}
	if lastDrop != nil {
		lk := s.keys.entry(id, partition, lastDrop.BaseOffset)
		dropEnd := s.keys.entry(id, partition, lastDrop.BaseOffset+1)
		first := s.keys.entry(id, partition, 0)
		cmps = append(cmps,
			clientv3.Compare(clientv3.ModRevision(lk), ">", 0),
			clientv3.Compare(clientv3.ModRevision(first), "<", rev+1).WithRange(dropEnd))
		ops = append(ops, clientv3.OpDelete(first, clientv3.WithRange(dropEnd)))
		// Read back whether the entries to drop are as scanned: the last
		// one still there, none written since (etcd filters by revision
		// after the range, so keys, not a count, are asked for).
		elses = append(elses, clientv3.OpGet(lk, clientv3.WithKeysOnly()),
			clientv3.OpGet(first, clientv3.WithRange(dropEnd), clientv3.WithMinModRev(rev+1), clientv3.WithKeysOnly()))
	}
	ops = append(ops, clientv3.OpPut(sk, string(val)))
	if next.LogStartOffset > 0 {
		// Aborted transactions that end below the log start can no
		// longer be fetched: the index drops them with the entries.
		ops = append(ops, clientv3.OpDelete(s.keys.aborted(id, partition, 0),
			clientv3.WithRange(s.keys.aborted(id, partition, next.LogStartOffset))))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(elses...).Commit()
	if err != nil {
		return PartitionState{}, 0, false, fmt.Errorf("truncate %s/%d before %d: %w", id, partition, offset, err)
	}
	if resp.Succeeded {
		return next, next.LogStartOffset, true, nil
	}
	if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		return PartitionState{}, 0, false, fmt.Errorf("truncate %s/%d: %w", id, partition, ErrTopicNotFound)
	}
	if lastDrop != nil && (len(resp.Responses[2].GetResponseRange().Kvs) == 0 || len(resp.Responses[3].GetResponseRange().Kvs) > 0) {
		return PartitionState{}, 0, false, nil
	}
	kvs := resp.Responses[1].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return PartitionState{}, 0, false, nil
	}
	cur, err := DecodePartitionState(sk, kvs[0].Value)
	if err != nil {
		return PartitionState{}, 0, false, err
	}
	cur.Revision = kvs[0].ModRevision
	if cur.LogStartOffset >= offset && lastDrop == nil || cur.LogStartOffset != st.LogStartOffset {
		return PartitionState{}, 0, false, nil // truncated meanwhile: scan again
	}
	return cur, 0, false, nil
}

// truncateRetry paces TruncateBefore's compare-and-swap against concurrent
// commits: a random pause below 5 ms times the attempt (at most 50 ms).
var truncateRetry = retry.Policy{Attempts: maxCASAttempts, Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond,
	Growth: retry.Linear, Jitter: retry.FullJitter}

// JobLease is the leadership of one lifecycle job, held through an etcd
// lease: while Done is open no other holder of the same job's election is
// leader. If the process dies the lease expires after its TTL and the next
// candidate takes over.
type JobLease struct {
	sess *concurrency.Session
	el   *concurrency.Election
}

// Done is closed when the lease is lost (expired, revoked, client closed).
// The holder must stop acting as leader.
func (l *JobLease) Done() <-chan struct{} { return l.sess.Done() }

// Close resigns and revokes the lease, so another candidate takes over at
// once. It is safe to call more than once.
func (l *JobLease) Close(ctx context.Context) error {
	rerr := l.el.Resign(ctx)
	cerr := l.sess.Close()
	if rerr != nil && !errors.Is(rerr, context.Canceled) {
		return fmt.Errorf("resign job: %w", rerr)
	}
	if cerr != nil && !strings.Contains(cerr.Error(), "requested lease not found") {
		return fmt.Errorf("close job session: %w", cerr)
	}
	return nil
}

// CampaignJob blocks until holder leads the election of job (one leader per
// job across all agents; see the key schema) or ctx ends. ttl is the lease
// TTL, rounded up to whole seconds (etcd's unit), at least one.
func (s *Store) CampaignJob(ctx context.Context, job, holder string, ttl time.Duration) (*JobLease, error) {
	if job == "" || strings.Contains(job, "/") {
		return nil, fmt.Errorf("campaign %q: %w: bad job name", job, ErrInvalid)
	}
	secs := max(1, int((ttl+time.Second-1)/time.Second))
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(secs), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("campaign %q: new session: %w", job, err)
	}
	el := concurrency.NewElection(sess, s.keys.job(job))
	if err := el.Campaign(ctx, holder); err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("campaign %q: %w", job, err)
	}
	return &JobLease{sess: sess, el: el}, nil
}

// JobLeader returns the value (holder) of job's current leader, or "" when
// none.
func (s *Store) JobLeader(ctx context.Context, job string) (string, error) {
	resp, err := s.cli.Get(ctx, s.keys.job(job)+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("job leader %q: %w", job, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}
