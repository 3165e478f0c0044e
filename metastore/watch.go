package metastore

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/internal/retry"
)

// StateEvent is a change of one partition state key.
//
// Resync means events were lost (the watch could not resume, typically
// because etcd compacted the revisions it needed): the receiver must re-read
// what it caches, at or after Revision; the watch continues with events after
// Revision. A re-read may already reflect some of those later events, so
// receivers should ignore an event whose State.Revision is not newer than
// what they hold.
type StateEvent struct {
	TopicID   TopicID
	Partition int32
	// State is the new state (Revision set to its ModRevision); zero when Deleted.
	State   PartitionState
	Deleted bool
	Resync  bool
	// Revision is the etcd revision of the change (for Resync: of the restart point).
	Revision int64
}

// IndexEvent is a change of one index entry key. For a deletion only
// Entry.BaseOffset is set. Resync has the meaning described at StateEvent.
type IndexEvent struct {
	TopicID   TopicID
	Partition int32
	Entry     IndexEntry
	Deleted   bool
	// Overwrite marks a put to an existing entry key: a compaction that
	// replaced one entry by another with the same base offset (no key was
	// deleted), so cached copies of the old entry are stale.
	Overwrite bool
	Resync    bool
	Revision  int64
}

// watchBuffer is the capacity of the channels returned by watches.
const watchBuffer = 256

// WatchStates streams changes of every partition state in the namespace with
// revision > afterRev (afterRev <= 0: from now), in revision order. The
// channel is closed when ctx ends or the client is closed.
func (s *Store) WatchStates(ctx context.Context, afterRev int64) <-chan StateEvent {
	out := make(chan StateEvent, watchBuffer)
	go func() {
		defer close(out)
		watchPrefix(ctx, s, s.keys.statesPrefix(), afterRev, out,
			func(ev *clientv3.Event) (StateEvent, error) {
				key := string(ev.Kv.Key)
				id, p, err := s.keys.parseStateKey(key)
				if err != nil {
					return StateEvent{}, err
				}
				e := StateEvent{TopicID: id, Partition: p, Revision: ev.Kv.ModRevision}
				if ev.Type == mvccpb.DELETE {
					e.Deleted = true
					return e, nil
				}
				e.State, err = DecodePartitionState(key, ev.Kv.Value)
				e.State.Revision = ev.Kv.ModRevision
				return e, err
			},
			func(rev int64) StateEvent { return StateEvent{Resync: true, Revision: rev} })
	}()
	return out
}

// WatchIndex streams changes of every index entry in the namespace with
// revision > afterRev (afterRev <= 0: from now), in revision order. The
// channel is closed when ctx ends or the client is closed.
func (s *Store) WatchIndex(ctx context.Context, afterRev int64) <-chan IndexEvent {
	out := make(chan IndexEvent, watchBuffer)
	go func() {
		defer close(out)
		watchPrefix(ctx, s, s.keys.indexPrefix(), afterRev, out,
			func(ev *clientv3.Event) (IndexEvent, error) {
				id, p, base, err := s.keys.parseIndexKey(string(ev.Kv.Key))
				if err != nil {
					return IndexEvent{}, err
				}
				e := IndexEvent{TopicID: id, Partition: p, Revision: ev.Kv.ModRevision}
				if ev.Type == mvccpb.DELETE {
					e.Deleted = true
					e.Entry.BaseOffset = base
					return e, nil
				}
				e.Overwrite = ev.Kv.Version > 1
				e.Entry, err = s.decodeEntryKV(ev.Kv, id, p)
				return e, err
			},
			func(rev int64) IndexEvent { return IndexEvent{Resync: true, Revision: rev} })
	}()
	return out
}

// watchRetry paces a watch that failed (etcd unreachable, watch canceled)
// before it is opened again; a watch that delivers resets it.
var watchRetry = retry.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second}

// watchPrefix runs one logical watch of prefix until ctx ends or the client
// closes, re-establishing the etcd watch after failures: from the next
// revision when it can, else (compaction) from the current revision after
// sending a resync event.
func watchPrefix[E any](ctx context.Context, s *Store, prefix string, afterRev int64, out chan<- E,
	convert func(*clientv3.Event) (E, error), resync func(rev int64) E,
) {
	send := func(e E) bool {
		select {
		case out <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	pause := watchRetry.BackOff()
	wait := func() bool { return retry.Wait(ctx, pause) }
	alive := func() bool { return ctx.Err() == nil && s.cli.Ctx().Err() == nil }

	next := afterRev + 1 // first revision still to deliver; 0 or less: unknown yet
	needResync := false
	for alive() {
		if next <= 0 || needResync {
			rev, err := s.Revision(ctx)
			if err != nil {
				if !wait() {
					return
				}
				continue
			}
			next = rev + 1
			if needResync {
				needResync = false
				if !send(resync(rev)) {
					return
				}
			}
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(next))
		for wresp := range wch {
			if err := wresp.Err(); err != nil {
				if wresp.CompactRevision > 0 || errors.Is(err, rpctypes.ErrCompacted) {
					needResync = true
				}
				break
			}
			pause.Reset()
			for _, ev := range wresp.Events {
				next = ev.Kv.ModRevision + 1
				e, err := convert(ev)
				if err != nil {
					s.log.Error("metastore: skipping undecodable watch event",
						"key", string(ev.Kv.Key), "revision", ev.Kv.ModRevision, "err", err)
					continue
				}
				if !send(e) {
					cancel()
					return
				}
			}
		}
		cancel()
		if !alive() || !wait() {
			return
		}
	}
}
