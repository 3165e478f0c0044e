package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrNotCoordinator means the caller does not hold the group's coordinator
// key under the lease it named: another agent coordinates the group (or
// nobody does any more). The caller must stop acting as its coordinator.
var ErrNotCoordinator = errors.New("metastore: not the group coordinator")

// groupTxnOps bounds the puts or deletes of one group transaction, below
// etcd's default --max-txn-ops (128) with room for the fencing compare.
const groupTxnOps = 100

// GroupOffset is one committed offset of a consumer group.
type GroupOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// TopicID is the ID of the topic when the offset was committed; a
	// reader ignores an offset whose topic has since been re-created.
	TopicID     TopicID `json:"topic_id"`
	Offset      int64   `json:"offset"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Metadata    string  `json:"metadata,omitempty"`
	CommitMs    int64   `json:"commit_ms"`
}

// GroupListing is a group known to etcd: it has committed offsets or a
// coordinator (or both).
type GroupListing struct {
	Name string
	// Coordinator is the node ID holding the coordinator key, -1 if none.
	Coordinator int32
	// HasOffsets reports whether any offset is committed.
	HasOffsets bool
	// ProtocolType is the protocol type the group's last release recorded
	// (ReleaseGroup), if HasProtocolType.
	ProtocolType    string
	HasProtocolType bool
	// Type is the group's type as recorded (RecordGroupType): "consumer"
	// for a KIP-848 consumer group, "" for a classic one.
	Type string
}

// The recorded types of a KIP-848 consumer group (groups/<g>/type; a
// classic group has no record): an active record (ActiveRecord) from its
// first member's join under a coordinator until that coordinator releases
// it (empty) — so a claim that reads one knows the previous coordinator
// died with members that may still own partitions, and which — and
// GroupTypeConsumer once released.
const (
	GroupTypeConsumer       = "consumer"
	GroupTypeConsumerActive = "consumer-active"
)

// maxActiveRecord bounds an active record's member list; a longer one is
// recorded unlisted.
const maxActiveRecord = 64 << 10

// ActiveRecord is the type record of a consumer group with members ids:
// "consumer-active", then each ID on a line of its own. Without the IDs
// (too many bytes, or an ID holding a newline) it is "consumer-active"
// alone: members unknown.
func ActiveRecord(ids []string) string {
	var b strings.Builder
	b.WriteString(GroupTypeConsumerActive)
	b.WriteByte('\n')
	for _, id := range ids {
		if strings.ContainsRune(id, '\n') || b.Len()+len(id)+1 > maxActiveRecord {
			return GroupTypeConsumerActive
		}
		b.WriteString(id)
		b.WriteByte('\n')
	}
	return b.String()
}

// ActiveMembers parses a type record: whether it is an active record, the
// member IDs it lists, and whether it lists them (false: members unknown).
func ActiveMembers(typ string) (active bool, ids []string, listed bool) {
	rest, ok := strings.CutPrefix(typ, GroupTypeConsumerActive)
	switch {
	case !ok:
		return false, nil, false
	case rest == "":
		return true, nil, false
	case rest[0] != '\n':
		return false, nil, false
	}
	for _, id := range strings.Split(rest[1:], "\n") {
		if id != "" {
			ids = append(ids, id)
		}
	}
	return true, ids, true
}

// IsConsumerType reports whether a recorded type is a KIP-848 group's.
func IsConsumerType(typ string) bool {
	active, _, _ := ActiveMembers(typ)
	return typ == GroupTypeConsumer || active
}

// GroupClaim is the outcome of ClaimGroup.
type GroupClaim struct {
	// Holder is the node ID holding the coordinator key.
	Holder int32
	// Mine reports whether the holder's lease is the caller's.
	Mine bool
	// EmptySince is the group's empty-since record that this claim took
	// out of etcd (zero if there was none, or if the key was held
	// already): the group has been without members since then, unless
	// members join it now. The claimant passes it back to
	// ReleaseGroupCoordinator if the group gets no member meanwhile.
	EmptySince time.Time
	// ProtocolType is the protocol type recorded for the group (by the
	// JoinGroup that set it, RecordGroupProtocolType, or by its last
	// release, ReleaseGroup), if HasProtocolType; the claim reads it and
	// leaves it in etcd. None if the group never had a member and was
	// never released with a type, or if another lease holds the key. A
	// claim of a key the caller's lease holds already reads it too: two
	// requests of one agent may claim at once, and the one that lost the
	// race may be the first to build the group from its claim.
	ProtocolType    string
	HasProtocolType bool
	// Type is the group's recorded type (RecordGroupType): "consumer" for
	// a KIP-848 group, "" for a classic one. Like ProtocolType, only when
	// the caller's lease holds the coordinator key.
	Type string
	// MembersActive reports that the group had classic members under a
	// coordinator that never released it (RecordMembersSession): it died
	// with them, and they may still own partitions. MembersSession is the
	// largest session timeout they joined with (zero if the record is
	// corrupt). Like ProtocolType, only when the caller's lease holds the
	// coordinator key.
	MembersActive  bool
	MembersSession time.Duration
	// MembersListed reports that the record lists the members' IDs
	// (MembersRecord), MembersIDs: a claim may then end its hold once
	// they have all heard of the failover. False for a record written by
	// an older agent (the session alone), too long a list, or a corrupt
	// record.
	MembersListed bool
	MembersIDs    []string
}

// ClaimGroupCoordinator is ClaimGroup without the claimed empty-since
// record.
func (s *Store) ClaimGroupCoordinator(ctx context.Context, group string, nodeID int32, lease clientv3.LeaseID) (int32, bool, error) {
	c, err := s.ClaimGroup(ctx, group, nodeID, lease)
	return c.Holder, c.Mine, err
}

// ClaimGroup makes nodeID the coordinator of group, under lease (the
// agent's session lease), unless someone holds it already. It returns the
// holder's node ID and whether the holder's lease is lease (true also when
// the caller already held it). A claim that creates the coordinator key
// deletes, in the same transaction, the group's empty-since record (and
// returns it): from then on the group may have members, so a record left
// in etcd would let ExpireGroupOffsets count an abandonment that has
// ended, should the new coordinator die without a release. It reads the
// protocol-type record in the same transaction and leaves it: a
// coordinator that dies before any release leaves the type its members
// joined with for whoever answers for the group next.
func (s *Store) ClaimGroup(ctx context.Context, group string, nodeID int32, lease clientv3.LeaseID) (GroupClaim, error) {
	if group == "" {
		return GroupClaim{Holder: -1}, fmt.Errorf("claim group coordinator: %w: empty group id", ErrInvalid)
	}
	k := s.keys.groupCoordinator(group)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, strconv.Itoa(int(nodeID)), clientv3.WithLease(lease)),
			clientv3.OpDelete(s.keys.groupEmptySince(group), clientv3.WithPrevKV()),
			clientv3.OpGet(s.keys.groupProtocolType(group)),
			clientv3.OpGet(s.keys.groupType(group)),
			clientv3.OpGet(s.keys.groupMembersSession(group))).
		Else(clientv3.OpGet(k),
			clientv3.OpGet(s.keys.groupProtocolType(group)),
			clientv3.OpGet(s.keys.groupType(group)),
			clientv3.OpGet(s.keys.groupMembersSession(group))).Commit()
	if err != nil {
		return GroupClaim{Holder: -1}, fmt.Errorf("claim group coordinator %q: %w", group, err)
	}
	if resp.Succeeded {
		c := GroupClaim{Holder: nodeID, Mine: true}
		if del := resp.Responses[1].GetResponseDeleteRange(); del != nil && len(del.PrevKvs) == 1 {
			// A corrupt record reads as none: the claimant then counts
			// from the claim, which is later, never earlier.
			if ms, err := strconv.ParseInt(string(del.PrevKvs[0].Value), 10, 64); err == nil {
				c.EmptySince = time.UnixMilli(ms)
			}
		}
		c.readRecords(resp.Responses[2:5])
		return c, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 { // deleted between compare and get: cannot happen in one txn
		return GroupClaim{Holder: -1}, fmt.Errorf("claim group coordinator %q: %w", group, ErrConflict)
	}
	holder, err := parseNode(string(kvs[0].Key), kvs[0].Value)
	if err != nil {
		return GroupClaim{Holder: -1}, fmt.Errorf("claim group coordinator: %w", err)
	}
	c := GroupClaim{Holder: holder, Mine: clientv3.LeaseID(kvs[0].Lease) == lease}
	if c.Mine {
		// Held by the caller already: another request of the same agent
		// claimed it a moment earlier, and this one may be the first to
		// build the group from the claim (the agent's acquire), so it
		// reads the same records (all but empty-since, which that claim
		// took). Returning none gave the group no type and no members
		// record: a coordinator's failover grace skipped at random when
		// two requests claimed at once (TestGroupMigrationKillDuringRevocation
		// in tests/interop, 2 of 11 runs).
		c.readRecords(resp.Responses[1:4])
	}
	return c, nil
}

// readRecords fills c from the gets of the protocol-type, type and
// members-session records, in that order.
func (c *GroupClaim) readRecords(rs []*etcdserverpb.ResponseOp) {
	if get := rs[0].GetResponseRange(); get != nil && len(get.Kvs) == 1 {
		c.ProtocolType, c.HasProtocolType = string(get.Kvs[0].Value), true
	}
	if get := rs[1].GetResponseRange(); get != nil && len(get.Kvs) == 1 {
		c.Type = string(get.Kvs[0].Value)
	}
	if get := rs[2].GetResponseRange(); get != nil && len(get.Kvs) == 1 {
		// A corrupt record still says the members were there, not
		// which, nor for how long.
		c.MembersActive = true
		if r, err := DecodeMembersRecord(string(get.Kvs[0].Key), get.Kvs[0].Value); err == nil {
			c.MembersSession, c.MembersListed, c.MembersIDs = r.Session, r.Listed, r.IDs
		}
	}
}

// GroupCoordinator returns the node ID holding group's coordinator key, or
// -1 when nobody does.
func (s *Store) GroupCoordinator(ctx context.Context, group string) (int32, error) {
	if group == "" {
		return -1, nil
	}
	resp, err := s.cli.Get(ctx, s.keys.groupCoordinator(group))
	if err != nil {
		return -1, fmt.Errorf("read group coordinator %q: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return -1, nil
	}
	return parseNode(string(resp.Kvs[0].Key), resp.Kvs[0].Value)
}

func parseNode(key string, v []byte) (int32, error) {
	n, err := strconv.ParseInt(string(v), 10, 32)
	if err != nil || n < 0 {
		return -1, corrupt(key, fmt.Errorf("bad node id %q", v))
	}
	return int32(n), nil
}

// fence is the compare every group write carries: the coordinator key is
// held under lease.
func (s *Store) fence(group string, lease clientv3.LeaseID) clientv3.Cmp {
	return clientv3.Compare(clientv3.LeaseValue(s.keys.groupCoordinator(group)), "=", lease)
}

// CommitGroupOffsets writes offsets if the caller holds group's coordinator
// key under lease (ErrNotCoordinator otherwise). Up to groupTxnOps offsets
// commit in one transaction; more are split, each transaction fenced. When
// it returns nil every offset is in etcd.
func (s *Store) CommitGroupOffsets(ctx context.Context, group string, lease clientv3.LeaseID, offs []GroupOffset) error {
	for start := 0; start < len(offs); start += groupTxnOps {
		chunk := offs[start:min(start+groupTxnOps, len(offs))]
		ops := make([]clientv3.Op, 0, len(chunk))
		for _, o := range chunk {
			if o.Topic == "" || o.Partition < 0 {
				return fmt.Errorf("commit group offsets %q: %w: topic %q partition %d", group, ErrInvalid, o.Topic, o.Partition)
			}
			v, err := json.Marshal(o)
			if err != nil {
				return fmt.Errorf("commit group offsets %q: %w", group, err)
			}
			ops = append(ops, clientv3.OpPut(s.keys.groupOffset(group, o.Topic, o.Partition), string(v)))
		}
		resp, err := s.cli.Txn(ctx).If(s.fence(group, lease)).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("commit group offsets %q: %w", group, err)
		}
		if !resp.Succeeded {
			return fmt.Errorf("commit group offsets %q: %w", group, ErrNotCoordinator)
		}
	}
	return nil
}

// FetchGroupOffsets returns every offset committed by group, sorted by
// topic and partition. Any agent may call it: it is a linearizable read.
func (s *Store) FetchGroupOffsets(ctx context.Context, group string) ([]GroupOffset, error) {
	if group == "" {
		return nil, nil
	}
	resp, err := s.cli.Get(ctx, s.keys.groupOffsets(group), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("fetch group offsets %q: %w", group, err)
	}
	out := make([]GroupOffset, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var o GroupOffset
		if err := json.Unmarshal(kv.Value, &o); err != nil || o.Topic == "" {
			return nil, fmt.Errorf("fetch group offsets %q: %w", group, corrupt(string(kv.Key), fmt.Errorf("bad group offset: %v", err)))
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}

// DeleteGroupOffsets deletes the given partitions' offsets (partitions nil:
// every partition of the topic), fenced like CommitGroupOffsets.
func (s *Store) DeleteGroupOffsets(ctx context.Context, group string, lease clientv3.LeaseID, topic string, partitions []int32) error {
	var ops []clientv3.Op
	if partitions == nil {
		ops = append(ops, clientv3.OpDelete(s.keys.groupOffsetTopic(group, topic), clientv3.WithPrefix()))
	}
	for _, p := range partitions {
		ops = append(ops, clientv3.OpDelete(s.keys.groupOffset(group, topic, p)))
	}
	for start := 0; start < len(ops); start += groupTxnOps {
		resp, err := s.cli.Txn(ctx).If(s.fence(group, lease)).Then(ops[start:min(start+groupTxnOps, len(ops))]...).Commit()
		if err != nil {
			return fmt.Errorf("delete group offsets %q: %w", group, err)
		}
		if !resp.Succeeded {
			return fmt.Errorf("delete group offsets %q: %w", group, ErrNotCoordinator)
		}
	}
	return nil
}

// DeleteGroup deletes every key of group, its coordinator key included, in
// one transaction fenced like CommitGroupOffsets.
func (s *Store) DeleteGroup(ctx context.Context, group string, lease clientv3.LeaseID) error {
	resp, err := s.cli.Txn(ctx).If(s.fence(group, lease)).
		Then(clientv3.OpDelete(s.keys.group(group), clientv3.WithPrefix())).Commit()
	if err != nil {
		return fmt.Errorf("delete group %q: %w", group, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("delete group %q: %w", group, ErrNotCoordinator)
	}
	return nil
}

// ReleaseGroupCoordinator deletes group's coordinator key if it is held
// under lease; otherwise it does nothing. A coordinator calls it when it
// stops coordinating a group that has no members. A non-zero emptySince
// (when the group lost its last member or, if it had none while claimed,
// the record its claim took, else the claim's time) is recorded, in the
// same transaction and only if the group has committed offsets, as
// groups/<g>/empty-since: offset expiry (ExpireGroupOffsets) counts the
// retention from it or from the newest commit, whichever is later. A zero
// emptySince records nothing, so expiry counts from the first pass that
// finds the group, as after a coordinator's death. It records no protocol
// type (ReleaseGroup does). It deletes the members-session record
// (RecordMembersSession): released empty, the group has no member that
// could own a partition.
func (s *Store) ReleaseGroupCoordinator(ctx context.Context, group string, lease clientv3.LeaseID, emptySince time.Time) error {
	return s.release(ctx, group, lease, emptySince, nil)
}

// ReleaseGroup is ReleaseGroupCoordinator that also records, with the
// empty-since record (so only if emptySince is non-zero and the group has
// committed offsets), the group's protocol type as
// groups/<g>/protocol-type: "consumer" for a consumer group whose members
// left, "" for a simple group (offsets committed, no member). Whoever
// answers for the group while nobody holds it reads it
// (GroupProtocolType); the next claim reads it too (GroupClaim).
func (s *Store) ReleaseGroup(ctx context.Context, group string, lease clientv3.LeaseID, emptySince time.Time, protocolType string) error {
	return s.release(ctx, group, lease, emptySince, &protocolType)
}

func (s *Store) release(ctx context.Context, group string, lease clientv3.LeaseID, emptySince time.Time, protocolType *string) error {
	k := s.keys.groupCoordinator(group)
	tk := s.keys.groupType(group)
	ops := []clientv3.Op{clientv3.OpDelete(k),
		// Released empty: no member of it can own a partition any more.
		clientv3.OpDelete(s.keys.groupMembersSession(group)),
		clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(tk), ">", 0)},
			[]clientv3.Op{clientv3.OpPut(tk, GroupTypeConsumer)}, nil)}
	if !emptySince.IsZero() {
		// Every offset key has CreateRevision > 0; an empty range compares
		// as one absent key (0), so this holds iff an offset exists.
		hasOffsets := clientv3.Compare(clientv3.CreateRevision(s.keys.groupOffsets(group)), ">", 0).WithPrefix()
		puts := []clientv3.Op{clientv3.OpPut(s.keys.groupEmptySince(group), strconv.FormatInt(emptySince.UnixMilli(), 10))}
		if protocolType != nil {
			puts = append(puts, clientv3.OpPut(s.keys.groupProtocolType(group), *protocolType))
		}
		ops = append(ops, clientv3.OpTxn([]clientv3.Cmp{hasOffsets}, puts, nil))
	}
	if _, err := s.cli.Txn(ctx).If(s.fence(group, lease)).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("release group coordinator %q: %w", group, err)
	}
	return nil
}

// RecordGroupProtocolType records protocolType as group's protocol type
// (groups/<g>/protocol-type) if the caller holds group's coordinator key
// under lease (ErrNotCoordinator otherwise). A coordinator calls it when a
// JoinGroup sets the type, so the type outlives a coordinator that dies
// before any release.
func (s *Store) RecordGroupProtocolType(ctx context.Context, group string, lease clientv3.LeaseID, protocolType string) error {
	resp, err := s.cli.Txn(ctx).If(s.fence(group, lease)).
		Then(clientv3.OpPut(s.keys.groupProtocolType(group), protocolType)).Commit()
	if err != nil {
		return fmt.Errorf("record group protocol type %q: %w", group, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("record group protocol type %q: %w", group, ErrNotCoordinator)
	}
	return nil
}

// RecordGroupType records group's type (groups/<g>/type) if the caller
// holds group's coordinator key under lease (ErrNotCoordinator
// otherwise): GroupTypeConsumer when a KIP-848 consumer group forms, ""
// (the record deleted) when it becomes classic again. A KIP-848 group
// stays one, members or not, until it is deleted (DeleteGroup, offset
// expiry: the record goes with the group's keys) or converted: whoever
// claims or lists it next reads the record (GroupClaim, ListGroups).
func (s *Store) RecordGroupType(ctx context.Context, group string, lease clientv3.LeaseID, typ string) error {
	op := clientv3.OpDelete(s.keys.groupType(group))
	if typ != "" {
		op = clientv3.OpPut(s.keys.groupType(group), typ)
	}
	resp, err := s.cli.Txn(ctx).If(s.fence(group, lease)).Then(op).Commit()
	if err != nil {
		return fmt.Errorf("record group type %q: %w", group, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("record group type %q: %w", group, ErrNotCoordinator)
	}
	return nil
}

// RecordMembersSession records that group has classic members under the
// caller, session being the largest session timeout they joined with
// (groups/<g>/members-session), if the caller holds group's coordinator
// key under lease (ErrNotCoordinator otherwise). The release deletes it:
// a claim that finds it (GroupClaim.MembersActive) knows the previous
// coordinator died with members, which may still own partitions for up
// to session. The record lists no member IDs (as agents wrote it before
// RecordMembers): the claim cannot tell when they have all heard of it.
func (s *Store) RecordMembersSession(ctx context.Context, group string, lease clientv3.LeaseID, session time.Duration) error {
	return s.RecordMembers(ctx, group, lease, MembersRecord{Session: session})
}

// RecordMembers is RecordMembersSession with the record r: the session
// and, when r.Listed, the IDs of the members that may own partitions
// (GroupClaim.MembersIDs).
func (s *Store) RecordMembers(ctx context.Context, group string, lease clientv3.LeaseID, r MembersRecord) error {
	resp, err := s.cli.Txn(ctx).If(s.fence(group, lease)).
		Then(clientv3.OpPut(s.keys.groupMembersSession(group), string(r.Encode()))).Commit()
	if err != nil {
		return fmt.Errorf("record group members session %q: %w", group, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("record group members session %q: %w", group, ErrNotCoordinator)
	}
	return nil
}

// GroupType returns group's recorded type (RecordGroupType): "consumer"
// for a KIP-848 group, "" for a classic one or none.
func (s *Store) GroupType(ctx context.Context, group string) (string, error) {
	resp, err := s.cli.Get(ctx, s.keys.groupType(group))
	if err != nil {
		return "", fmt.Errorf("read group type %q: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// GroupProtocolType returns the protocol type recorded for group (by a
// JoinGroup, RecordGroupProtocolType, or a release, ReleaseGroup) and
// whether there is one: none if the group never had a member and was
// never released with one (a simple group whose coordinator died), or if
// its keys were deleted.
func (s *Store) GroupProtocolType(ctx context.Context, group string) (string, bool, error) {
	resp, err := s.cli.Get(ctx, s.keys.groupProtocolType(group))
	if err != nil {
		return "", false, fmt.Errorf("read group protocol type %q: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return "", false, nil
	}
	return string(resp.Kvs[0].Value), true, nil
}

// ListGroups returns every group with a coordinator or committed offsets,
// sorted by name. It reads keys only, plus the coordinator and
// protocol-type values.
func (s *Store) ListGroups(ctx context.Context) ([]GroupListing, error) {
	resp, err := s.cli.Get(ctx, s.keys.groupsPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	byName := map[string]*GroupListing{}
	var names []string
	for _, kv := range resp.Kvs {
		g, tail, err := s.keys.parseGroupKey(string(kv.Key))
		if err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		l := byName[g]
		if l == nil {
			l = &GroupListing{Name: g, Coordinator: -1}
			byName[g] = l
			names = append(names, g)
		}
		switch {
		case tail == groupTailCoordinator:
			if l.Coordinator, err = s.GroupCoordinator(ctx, g); err != nil {
				return nil, fmt.Errorf("list groups: %w", err)
			}
		case strings.HasPrefix(tail, groupTailOffsets):
			l.HasOffsets = true
		case tail == groupTailProtocolType:
			if l.ProtocolType, l.HasProtocolType, err = s.GroupProtocolType(ctx, g); err != nil {
				return nil, fmt.Errorf("list groups: %w", err)
			}
		case tail == groupTailType:
			l.Type = GroupTypeConsumer // the only type recorded
		}
	}
	sort.Strings(names)
	out := make([]GroupListing, 0, len(names))
	for _, n := range names {
		if l := byName[n]; l.HasOffsets || l.Coordinator >= 0 { // not a lone empty-since, protocol-type or type record
			out = append(out, *l)
		}
	}
	return out, nil
}
