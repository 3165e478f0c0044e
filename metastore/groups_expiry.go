package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// GroupExpiryStats counts what one ExpireGroupOffsets pass did.
type GroupExpiryStats struct {
	// Groups is how many groups had their offsets deleted.
	Groups int
	// Offsets is how many committed offsets were deleted.
	Offsets int
	// Kept is how many uncoordinated groups were looked at and kept: a
	// commit or the group's emptying is recent, the group had no
	// empty-since record (the pass wrote one), or the group changed (was
	// claimed, committed) while the pass looked at it.
	Kept int
}

// ExpireGroupOffsets deletes the committed offsets of abandoned groups, as
// Kafka's offsets.retention.minutes does: a group expires when no agent
// coordinates it (it has no coordinator key) and both its newest commit
// (GroupOffset.CommitMs) and the time it became empty (groups/<g>/empty-since)
// are older than now - retention.
//
// The empty-since record is written by the coordinator that releases a
// group without members (ReleaseGroupCoordinator) and deleted by the next
// claim (ClaimGroup). A group without coordinator key nor record lost its
// coordinator without a release (the agent died or lost its lease): its
// members may be alive, rejoining on another agent, so no coordinator key
// does not mean no member. Such a group is not expired: the pass writes
// the record (now, the first time the group is seen uncoordinated) and the
// retention counts from there; a claim meanwhile (members rejoining)
// deletes it again.
//
// Every key of an expiring group goes, in one transaction per group that
// applies only if the coordinator key is still absent (CreateRevision 0: a
// group claimed meanwhile is left alone), the empty-since record read is
// still there (a claim deletes it) and no key of the group changed after
// the read (a range compare of ModRevision over the group's prefix: a
// concurrent commit, or a new empty-since record, wins). The transaction
// is constant-size (three compares, one range delete), whatever the
// number of offsets, so it stays far below etcd's --max-txn-ops, and a
// group's offsets go all at once or not at all.
//
// A pass reads the keys (not the values) of the groups prefix, skipping
// ahead past each coordinated group's keys at page ends, and then the
// values of each uncoordinated group: its cost grows with the number of
// abandoned groups, which is what it removes.
//
// retention < 0 expires nothing. A group whose keys cannot be decoded is
// skipped and reported in the returned error after the others are done.
func (s *Store) ExpireGroupOffsets(ctx context.Context, now time.Time, retention time.Duration) (GroupExpiryStats, error) {
	var st GroupExpiryStats
	if retention < 0 {
		return st, nil
	}
	cutoff, nowMs := now.Add(-retention).UnixMilli(), now.UnixMilli()
	names, errs := s.uncoordinatedGroups(ctx)
	if ctx.Err() != nil {
		return st, errors.Join(errs...)
	}
	for _, g := range names {
		n, expired, err := s.expireGroup(ctx, g, cutoff, nowMs)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return st, fmt.Errorf("expire group offsets: %w", ctx.Err())
			}
			errs = append(errs, err)
		case expired:
			st.Groups++
			st.Offsets += n
		default:
			st.Kept++
		}
	}
	return st, errors.Join(errs...)
}

// uncoordinatedGroups returns the groups that have keys but no coordinator
// key. It reads keys only, page by page, and skips the rest of a
// coordinated group's keys (its coordinator key sorts first).
func (s *Store) uncoordinatedGroups(ctx context.Context) ([]string, []error) {
	var (
		out    []string
		errs   []error
		cur    string
		active bool
	)
	flush := func() {
		if cur != "" && !active {
			out = append(out, cur)
		}
	}
	from, end := s.keys.groupsPrefix(), prefixEnd(s.keys.groupsPrefix())
	for {
		page, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(scanPage))
		if err != nil {
			return nil, append(errs, fmt.Errorf("expire group offsets: scan groups: %w", err))
		}
		for _, kv := range page.Kvs {
			g, tail, err := s.keys.parseGroupKey(string(kv.Key))
			if err != nil {
				errs = append(errs, fmt.Errorf("expire group offsets: %w", err))
				continue
			}
			if g != cur {
				flush()
				cur, active = g, false
			}
			if tail == groupTailCoordinator {
				active = true
			}
		}
		if !page.More || len(page.Kvs) == 0 {
			break
		}
		from = string(page.Kvs[len(page.Kvs)-1].Key) + "\x00"
		if active { // skip the rest of a coordinated group
			from = prefixEnd(s.keys.group(cur))
		}
	}
	flush()
	return out, errs
}

// expireGroup deletes every key of group if it has no coordinator and its
// newest commit and empty-since record are older than cutoff (Unix ms); a
// group with offsets but no record gets one, at nowMs. It returns the
// number of offsets deleted and whether the group was.
func (s *Store) expireGroup(ctx context.Context, group string, cutoff, nowMs int64) (int, bool, error) {
	prefix := s.keys.group(group)
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, false, fmt.Errorf("expire group offsets %q: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, false, nil
	}
	newest, offsets := int64(math.MinInt64), 0
	var record *mvccpb.KeyValue
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		tail := strings.TrimPrefix(key, prefix)
		switch {
		case tail == groupTailCoordinator:
			return 0, false, nil // claimed since the scan
		case tail == groupTailEmptySince:
			ms, err := strconv.ParseInt(string(kv.Value), 10, 64)
			if err != nil {
				return 0, false, fmt.Errorf("expire group offsets %q: %w", group, corrupt(key, fmt.Errorf("bad empty-since %q", kv.Value)))
			}
			newest = max(newest, ms)
			record = kv
		case strings.HasPrefix(tail, groupTailOffsets):
			var o GroupOffset
			if err := json.Unmarshal(kv.Value, &o); err != nil {
				return 0, false, fmt.Errorf("expire group offsets %q: %w", group, corrupt(key, fmt.Errorf("bad group offset: %v", err)))
			}
			newest = max(newest, o.CommitMs)
			offsets++
		}
	}
	unchanged := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(s.keys.groupCoordinator(group)), "=", 0),
		clientv3.Compare(clientv3.ModRevision(prefix), "<", resp.Header.Revision+1).WithPrefix(),
	}
	if record == nil && offsets > 0 {
		// Nobody released the group: its coordinator died, maybe with
		// live members. Count from now.
		_, err := s.cli.Txn(ctx).If(unchanged...).
			Then(clientv3.OpPut(s.keys.groupEmptySince(group), strconv.FormatInt(nowMs, 10))).Commit()
		if err != nil {
			return 0, false, fmt.Errorf("expire group offsets %q: record empty-since: %w", group, err)
		}
		return 0, false, nil
	}
	if newest >= cutoff {
		return 0, false, nil
	}
	if record != nil { // a claim and a death since the read delete it
		unchanged = append(unchanged, clientv3.Compare(clientv3.ModRevision(string(record.Key)), "=", record.ModRevision))
	}
	if s.expiryHook != nil {
		s.expiryHook(group)
	}
	txn, err := s.cli.Txn(ctx).If(unchanged...).Then(clientv3.OpDelete(prefix, clientv3.WithPrefix())).Commit()
	if err != nil {
		return 0, false, fmt.Errorf("expire group offsets %q: %w", group, err)
	}
	if !txn.Succeeded {
		return 0, false, nil
	}
	s.log.Info("expired consumer group offsets", "group", group, "offsets", offsets, "newest_ms", newest)
	return offsets, true, nil
}
