package agent

// Share-partition states on one agent: a cache of etcd's values, changed
// only by compare-and-swap (share_groups.go explains why), and the share
// sessions (Kafka's ShareSessionCache, per agent).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shale-dev/shale/internal/retry"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/share"
)

// shareCacheTTL is how long a cached state is used for a request that
// changes nothing; a request that changes it writes by compare-and-swap,
// so a stale cache costs one retry, never a wrong answer.
const shareCacheTTL = 500 * time.Millisecond

// shareCASAttempts bounds the compare-and-swap retries of one change.
const shareCASAttempts = 8

var shareCASRetry = retry.Policy{Attempts: shareCASAttempts, Initial: 2 * time.Millisecond, Max: 50 * time.Millisecond, Growth: retry.Double, Jitter: retry.FullJitter}

type sharePartKey struct {
	group string
	id    metastore.TopicID
	p     int32
}

type sharePart struct {
	mu     sync.Mutex
	st     *share.Partition // nil until loaded
	rev    int64            // etcd ModRevision of st; 0: absent
	loaded time.Time
}

func (r *shareRegistry) part(k sharePartKey) *sharePart {
	r.mu.Lock()
	defer r.mu.Unlock()
	sp := r.parts[k]
	if sp == nil {
		if len(r.parts) > 100000 {
			clear(r.parts) // a cache: etcd has every state
		}
		sp = &sharePart{}
		r.parts[k] = sp
	}
	return sp
}

// load refreshes sp from etcd when its cache is older than maxAge (with
// sp.mu held). A share-partition with no state yet gets init's (absent:
// rev 0).
func (r *shareRegistry) load(ctx context.Context, k sharePartKey, sp *sharePart, maxAge time.Duration, init func() (*share.Partition, error)) error {
	if sp.st != nil && time.Since(sp.loaded) < maxAge {
		return nil
	}
	ss, ok, err := r.s.meta.GetShareState(ctx, k.group, k.id, k.p)
	if err != nil {
		return err
	}
	if !ok {
		st, err := init()
		if err != nil {
			return err
		}
		sp.st, sp.rev, sp.loaded = st, 0, time.Now()
		return nil
	}
	st, err := share.Unmarshal(ss.Data)
	if err != nil {
		return fmt.Errorf("share state %q %s/%d: %w", k.group, k.id, k.p, err)
	}
	sp.st, sp.rev, sp.loaded = st, ss.Revision, time.Now()
	return nil
}

func cloneShare(p *share.Partition) *share.Partition {
	q := *p
	q.Records = slices.Clone(p.Records)
	return &q
}

// update applies fn to a copy of the share-partition's state and, when fn
// reports a change (or the state is new), writes it by compare-and-swap;
// a lost race re-reads etcd and runs fn again, so fn must compute
// everything it returns afresh. It returns fn's error, or etcd's.
func (r *shareRegistry) update(ctx context.Context, k sharePartKey, init func() (*share.Partition, error), fn func(st *share.Partition) (bool, error)) error {
	sp := r.part(k)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	maxAge := shareCacheTTL
	return retry.Do(ctx, shareCASRetry, func(int) error {
		if err := r.load(ctx, k, sp, maxAge, init); err != nil {
			return retry.Permanent(err)
		}
		next := cloneShare(sp.st)
		changed, err := fn(next)
		if err != nil {
			return retry.Permanent(err)
		}
		if !changed && sp.rev != 0 {
			return nil
		}
		rev, err := r.s.meta.PutShareState(ctx, k.group, k.id, k.p, next.Marshal(), sp.rev)
		if errors.Is(err, metastore.ErrConflict) {
			r.s.cfg.Metrics.ShareConflict()
			sp.st, maxAge = nil, 0 // re-read
			return err
		}
		if err != nil {
			sp.st = nil
			return retry.Permanent(err)
		}
		sp.st, sp.rev, sp.loaded = next, rev, time.Now()
		return nil
	})
}

// releaseMember releases member's records in every share-partition of
// group (it left the group or timed out).
func (r *shareRegistry) releaseMember(group, member string) {
	ctx, cancel := context.WithTimeout(r.s.ctx, requestTimeout)
	defer cancel()
	states, err := r.s.meta.ShareStates(ctx, group)
	if err != nil {
		r.s.log.Warn("share: release a member's records: list states; their locks will expire", "group", group, "member", member, "err", err)
		return
	}
	released := false
	for _, ss := range states {
		st, err := share.Unmarshal(ss.Data)
		if err != nil || !holds(st, member) {
			continue
		}
		k := sharePartKey{group, ss.TopicID, ss.Partition}
		lim := r.s.shareLimits(ctx, group)
		err = r.update(ctx, k, func() (*share.Partition, error) { return nil, errShareGone }, func(st *share.Partition) (bool, error) {
			return st.ReleaseMember(member, lim), nil
		})
		if err != nil && !errors.Is(err, errShareGone) {
			r.s.log.Warn("share: release a member's records; their locks will expire", "group", group, "member", member, "err", err)
		}
		released = true
	}
	if released {
		r.wake()
	}
}

// errShareGone: a state that vanished while being released (deleted).
var errShareGone = errors.New("share state deleted")

func holds(st *share.Partition, member string) bool {
	for _, r := range st.Records {
		if r.State == share.Acquired && r.Member == member {
			return true
		}
	}
	return false
}

// shareLimits are group's lock duration and delivery limit.
func (s *Server) shareLimits(ctx context.Context, group string) share.Limits {
	return share.Limits{
		Lock:          time.Duration(s.groupConfigInt(ctx, group, "share.record.lock.duration.ms")) * time.Millisecond,
		DeliveryLimit: int16(s.groupConfigInt(ctx, group, "share.delivery.count.limit")),
	}
}

// shareInit returns the initial state of a share-partition of group:
// share.auto.offset.reset's offset.
func (s *Server) shareInit(ctx context.Context, group string, id metastore.TopicID, p int32) func() (*share.Partition, error) {
	return func() (*share.Partition, error) {
		start, _, next, err := s.eng.CachedStableOffsets(ctx, id, p)
		if err != nil {
			return nil, err
		}
		reset := s.groupConfig(ctx, group, "share.auto.offset.reset")
		if reset == "earliest" {
			return share.New(start), nil
		}
		if v, ok := strings.CutPrefix(reset, shareResetByDuration); ok {
			d, err := parseISODuration(v)
			if err != nil {
				return nil, err
			}
			off, _, err := s.eng.ListOffset(ctx, id, p, time.Now().Add(-d).UnixMilli())
			if err != nil {
				return nil, err
			}
			if off >= 0 { // else no record that recent: latest
				return share.New(min(max(off, start), next)), nil
			}
		}
		return share.New(next), nil
	}
}

// Share sessions.

type shareSessKey struct{ group, member string }

type shareSessPart struct {
	id metastore.TopicID
	p  int32
}

type shareSession struct {
	epoch int32
	parts []shareSessPart
	fresh map[shareSessPart]bool // added since the last answer: answered even when empty
	// conn is the connection that last used the session: its close ends
	// the session and releases the member's records of its partitions.
	conn *conn
}

// maxShareSessions bounds the share sessions of one agent (Kafka's
// group.share.max.share.sessions is 2,000 per broker);
// beyond it ShareFetch answers SHARE_SESSION_LIMIT_REACHED.
const maxShareSessions = 2000

func (r *shareRegistry) dropSessions(group, member string) {
	r.mu.Lock()
	delete(r.sessions, shareSessKey{group, member})
	r.mu.Unlock()
}

// forgetTopic drops the cached states of group's partitions of a topic
// (deleted from etcd).
func (r *shareRegistry) forgetTopic(group string, id metastore.TopicID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.parts {
		if k.group == group && (k.id == id || id.IsZero()) {
			delete(r.parts, k)
		}
	}
}

// connClosed ends the share sessions c was the last to use and releases
// their members' records of the sessions' partitions, as a ShareFetch with
// epoch -1 would: a consumer that vanished with records acquired has them
// redelivered now rather than when their locks expire. It runs after c's
// last answer was settled, so no acquisition of c's is still on its way.
func (r *shareRegistry) connClosed(c *conn) {
	type closed struct {
		key   shareSessKey
		parts []shareSessPart
	}
	var ended []closed
	r.mu.Lock()
	for k, sess := range r.sessions {
		if sess.conn == c {
			delete(r.sessions, k)
			ended = append(ended, closed{k, sess.parts})
		}
	}
	r.mu.Unlock()
	for _, e := range ended {
		ctx, cancel := context.WithTimeout(r.s.ctx, requestTimeout)
		r.s.releaseSession(ctx, e.key.group, e.key.member, e.parts, r.s.shareLimits(ctx, e.key.group))
		cancel()
	}
}
