package agent

// KIP-848 consumer groups: the state a coordinator keeps for a group of
// type "consumer" (ConsumerGroupHeartbeat, consumer_group_heartbeat.go),
// beside the classic state machine (groups_state.go) in the same group
// object, under the same coordinator key and lock (groups.go). A group is
// one type or the other: g.cg is non-nil exactly while it is a consumer
// group. Reconciliation follows Kafka's GroupMetadataManager and
// CurrentAssignmentBuilder:
//
//   - The group epoch is bumped when a member joins or leaves, a
//     subscription or the assignor changes, or the metadata of the
//     subscribed topics changes (a topic created, deleted, or given
//     partitions; a regex matching a new topic). Each bump computes a new
//     target assignment with the group's assignor (package assignor), and
//     the target assignment epoch becomes the group epoch.
//   - A member converges towards its target over heartbeats. Partitions it
//     must give up are revoked first: its epoch stays, the response lists
//     only what it keeps, and it must send a heartbeat whose owned
//     partitions no longer include them. A partition is given to its new
//     owner only after its previous owner acknowledged the revocation
//     (owners, below): until then the new owner's epoch advances with the
//     partition withheld (UNRELEASED_PARTITIONS).
//   - A member that does not heartbeat for the session timeout is removed;
//     one that does not finish a revocation within its rebalance timeout
//     is removed too (its partitions become free).
//
// # Failover
//
// Membership lives in the coordinator's memory, as for classic groups
// (groups.go, State): when the coordinator dies, its members' heartbeats
// to the next one get UNKNOWN_MEMBER_ID, and they rejoin with epoch 0,
// owning nothing; only committed offsets (etcd) carry over. Until a
// member hears of the failover it still owns what the dead coordinator
// gave it (its commits are refused: UNKNOWN_MEMBER_ID), and the new
// coordinator does not know what that is. So a coordinator that claims a
// group recorded active (it had members under a coordinator that never
// released it: metastore.ActiveRecord, rewritten at each join and leave
// with the member IDs) assigns no free partition (members get their
// epochs with the partitions withheld, UNRELEASED_PARTITIONS) until every
// member the record lists has heard of the failover — its heartbeat or
// leave answered UNKNOWN_MEMBER_ID, on which clients give up their
// partitions, or its join with epoch 0 — or for one session timeout from
// the claim at the most (also when the record lists no IDs), by when a
// member that never came is past its session, as Kafka treats a member
// that stops heartbeating. Without it a member that reached the new coordinator
// first was given partitions another still consumed
// (TestConsumerGroup848KillDuringRevocation: 3 partitions owned by two
// members at once in 1 of 3 runs). A group released empty (recorded
// GroupTypeConsumer) has no such members: no wait. So does the
// group's type: etcd records that it is a consumer group
// (metastore.RecordGroupType, written when it forms), so that once its
// members left, released or claimed again by any agent, it is still an
// Empty consumer group for ListGroups, DescribeGroups and
// ConsumerGroupDescribe, as in Kafka, until it is deleted or a classic
// member converts it (join_group.go; the record is then deleted).
//
// # Online migration between the protocols
//
// A live group converts between the classic protocol and KIP-848, so that
// a rolling upgrade of an application's consumers from the classic
// protocol to KIP-848 (or back) goes on without stopping them, as Kafka 4
// does it (GroupMetadataManager's classicGroup*ToConsumerGroup and
// convertTo*Group), in the same group object and lock
// (consumer_group_migration.go):
//
//   - Policy: the agent flag --group-consumer-migration-policy
//     (Config.ConsumerMigrationPolicy), Kafka's broker-level
//     group.consumer.migration.policy: bidirectional (the default),
//     upgrade, downgrade or disabled, case-insensitive; another value
//     stops the agent at start-up with Kafka's message. Not a group config:
//     Kafka has none, and the downgrade runs in timers (a member's session
//     ending), under the group's lock, where no etcd read of a group
//     config may happen.
//   - Upgrade, on a ConsumerGroupHeartbeat with epoch 0 to a classic group
//     with members: refused as before (GROUP_ID_NOT_FOUND, the message
//     saying why) unless the policy allows it, the protocol type is
//     "consumer", the group is below maxGroupMembers, and every member's
//     metadata and assignment decode as ConsumerMemberMetadata and
//     ConsumerMemberAssignment. Kafka converts in any state; here a group
//     in CompletingRebalance (or holding a takeover, groups.go Failover)
//     answers COORDINATOR_LOAD_IN_PROGRESS, which clients retry: its
//     members' new assignments are not known yet while they still own
//     the previous ones. In Stable or PreparingRebalance the members'
//     assignments are those of the last Stable generation, which they own
//     (an eager member that already gave them up rejoins owning nothing,
//     so its revocations are complete at once). Conversion: group epoch
//     and target epoch = the generation; each classic member becomes a
//     cmember marked classic (classicMember: the protocols it joined with
//     and its session timeout), subscribed to its metadata's topics, with
//     assigned = target = its assignment, member epoch = the generation,
//     its partitions claimed in owners, its session timer touchConsumer's
//     with its own timeout; waiting JoinGroup and SyncGroup requests are
//     answered REBALANCE_IN_PROGRESS; the classic members record
//     (groups_failover.go) is rewritten listing nobody, and the type
//     record (syncGroupType) lists every member. The heartbeat is then
//     handled as a join: the epoch bump gives every member, classic ones
//     included, a new target, reached through revocation first as for
//     KIP-848 members.
//   - Classic members served from the KIP-848 state (Kafka's rules).
//     JoinGroup: protocol type "consumer" and a protocol name every other
//     classic member offered, else INCONSISTENT_GROUP_PROTOCOL; a dynamic
//     member without an ID at v4+ gets MEMBER_ID_REQUIRED; a member ID the
//     group does not know joins as a new member (Kafka's), owning what its
//     JoinGroup reports owning and no other member holds (adoptOwned,
//     Failover below); a subscription
//     that does not decode is INCONSISTENT_GROUP_PROTOCOL (Kafka: an
//     unknown server error). The subscription and owned partitions (v1+
//     metadata; an eager member owns none at a rejoin) update the member
//     (a new member or a subscription change bumps the epoch) and
//     reconcile it; the answer comes at once: generation = member epoch,
//     the first protocol name the member offered, no leader and no member
//     list (the server assigns). A member that must revoke keeps its epoch,
//     gets what it keeps in SyncGroup, gives up the rest (the cooperative
//     clients rejoin after revoking) and reaches the new epoch at its next
//     JoinGroup. SyncGroup checks the generation (ILLEGAL_GENERATION),
//     protocol type and name (INCONSISTENT_GROUP_PROTOCOL), answers
//     REBALANCE_IN_PROGRESS when the group epoch moved past the member's
//     and it is not revoking, ignores any assignments sent, and answers the
//     member's current assignment as a ConsumerMemberAssignment of its
//     metadata's version. Heartbeat checks the generation, touches the
//     session, and answers REBALANCE_IN_PROGRESS when the member must
//     rejoin: the group epoch is past its epoch, it is revoking, or the
//     partitions it waited for are free (the classic protocol reports owned
//     partitions only in JoinGroup). LeaveGroup removes the member
//     (removeConsumer); a KIP-848 member named there is UNKNOWN_MEMBER_ID,
//     and so is a classic member named in a ConsumerGroupHeartbeat other
//     than a join. OffsetCommit (any version) and OffsetFetch from a
//     classic member check its generation against the member epoch:
//     ILLEGAL_GENERATION, not STALE_MEMBER_EPOCH, which classic clients do
//     not handle. ConsumerGroupDescribe shows it with member type 0
//     (classic), DescribeGroups with the metadata it joined with.
//     Timeouts: the session timeout is the member's own (its JoinGroup's);
//     a JoinGroup must follow REBALANCE_IN_PROGRESS within the rebalance
//     timeout, a SyncGroup a JoinGroup within it, and revocations are
//     acknowledged (by a rejoin) within it, else the member is removed.
//   - Downgrade, when a KIP-848 member leaves or is removed and only
//     classic members remain (policy permitting): generation = group epoch
//     (the removal does not bump it); the members are rebuilt with their
//     protocols, timeouts and current assignments encoded; g.cg is
//     dropped and the type record deleted; the group, Stable, then
//     prepares a rebalance, so that every member rejoins (its heartbeat
//     answered REBALANCE_IN_PROGRESS) and the client-side assignor takes
//     over (Kafka does the same). Likewise when the last KIP-848 member is
//     a static one and a classic member joins with its instance ID,
//     replacing it (Kafka's validateOnlineDowngradeWithReplacedMemberId):
//     the join is answered with the group's generation, and its SyncGroup
//     REBALANCE_IN_PROGRESS. Kafka keeps that group Stable, giving the
//     members their target assignments; here they rejoin, as a target a
//     member has not reached may hold partitions another still owns.
//   - Failover: membership is in memory, members of both protocols rejoin
//     the next coordinator, and the type record decides which protocol
//     finds the group a consumer group. It lists the classic members too
//     (the classic members record is rewritten listing nobody at the
//     upgrade), so the next coordinator's grace (Failover above) waits for
//     them as well, and a classic JoinGroup during that grace is served as
//     a classic member of the consumer group — its partitions withheld —
//     instead of turning the empty group classic, where the leader it
//     would be could hand itself partitions an old member still consumes
//     (TestConsumerGroupMigrationFailover, which fails without it). A
//     classic member of the dead coordinator may rejoin the next one
//     still owning partitions: franz-go's cooperative consumer sends its
//     JoinGroup after a revocation under its old member ID (or, answered
//     UNKNOWN_MEMBER_ID, under a new one) keeping what it owns. Its join
//     counts as told only because what it reports owning, where no other
//     member holds it, becomes its assignment and target, claimed
//     (adoptOwned, as the upgrade does), so another member gets it only
//     once it revoked it and rejoined without it; the join reads the topic
//     view even when it is the join that claims the group (join_group.go),
//     else the owned partitions resolved against an empty view. Without
//     either, the KIP-848 member was given partitions a classic member
//     still owned (TestConsumerGroupMigrationFailoverOwnedRejoin, and
//     TestGroupMigrationKillDuringRevocation in tests/interop: SIGKILL of
//     the coordinator of two agent processes while the classic member
//     revoked for the upgrade, 3 of 3 runs failed). A group left with
//     classic members only after a failover stays a consumer group until
//     a KIP-848 member joins and leaves again.
//
// Tests: TestConsumerGroupMigrationRaw (raw requests: an eager and a
// cooperative classic member through the upgrade, revocation, the bad
// input above, and the downgrade), TestConsumerGroupMigrationStaticDowngrade,
// TestConsumerGroupMigrationPolicy
// (disabled and downgrade refuse the upgrade; upgrade keeps the group a
// consumer group when its KIP-848 member leaves),
// TestConsumerGroupMigrationTimeouts (rebalance timeout 1 s, session 6 s:
// removed 1.02 s after a JoinGroup with no SyncGroup, 1.01 s after
// REBALANCE_IN_PROGRESS with no rejoin, 6.04 s after the last request),
// and TestConsumerGroupMigrationFranz: two classic (cooperative-sticky)
// franz-go consumers of a 6-partition topic under a steady producer, one
// restarted as a KIP-848 member, which owned partitions 0.35 s after it
// started (no GROUP_ID_NOT_FOUND; the group listed as consumer with a
// classic and a KIP-848 member; no partition owned by two members in the
// clients' callbacks or in any of about 40 describes; committed offsets
// never backwards; every record read, about 1,000), then that member
// leaving: classic again, the classic member owning all 6 partitions
// 0.26 s after it closed.

import (
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shale-dev/shale/agent/assignor"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/metrics"
)

type tid = assignor.TopicID

// Defaults of the consumer group protocol (Kafka's).
const (
	DefaultConsumerSessionTimeout    = 45 * time.Second // group.consumer.session.timeout.ms
	DefaultConsumerHeartbeatInterval = 5 * time.Second  // group.consumer.heartbeat.interval.ms
	defConsumerRebalanceTimeout      = 45 * time.Second
)

// cmState is a member's reconciliation state.
type cmState int8

const (
	cmStable     cmState = iota // at the target epoch with what it may have
	cmUnrevoked                 // must acknowledge revocations first
	cmUnreleased                // waits for partitions others still hold
)

func (s cmState) String() string {
	return [...]string{"stable", "unrevoked_partitions", "unreleased_partitions"}[s]
}

type cmember struct {
	id         string
	instanceID *string
	rackID     *string
	clientID   string
	clientHost string

	epoch, prevEpoch int32
	state            cmState
	rebalance        time.Duration
	assignor         string
	topics           []string // subscribed names, sorted
	regex            *regexp.Regexp
	regexSrc         string

	target   map[tid][]int32 // what the assignor wants it to own
	assigned map[tid][]int32 // what it was last told to own
	revoking map[tid][]int32 // told to give up, not yet acknowledged
	// assignEpochs: the member epoch at which each owned partition was
	// given to it (OffsetCommit accepts epochs from there on, KIP-1251).
	assignEpochs map[tid]map[int32]int32

	session *time.Timer
	rebal   *time.Timer
	// classic is set for a member that speaks the classic protocol
	// (consumer_group_migration.go), nil for a KIP-848 member.
	classic *classicMember
}

// powner is who holds a partition: its owner until it acknowledged the
// partition's revocation.
type powner struct {
	member string
	epoch  int32
}

type cgroup struct {
	members     map[string]*cmember
	static      map[string]string // instance ID -> member ID
	epoch       int32
	targetEpoch int32
	assignor    string
	owners      map[tid]map[int32]powner
	// topicSig is the subscribed topics' metadata the target was computed
	// for; a heartbeat seeing other metadata bumps the epoch.
	topicSig string
	// session is the members' session timeout, as the last heartbeat
	// read it (consumerTimeouts).
	session time.Duration
	// metrics counts the group's epoch bumps (nil: none).
	metrics *metrics.Metrics
	// graceUntil: until then, while awaiting is not empty (or the members
	// of the previous coordinator are unknown: awaitUnlisted), no free
	// partition is assigned (Failover).
	graceUntil    time.Time
	awaiting      map[string]bool
	awaitUnlisted bool
}

// inGrace reports whether free partitions are still withheld.
func (cg *cgroup) inGrace() bool {
	return time.Now().Before(cg.graceUntil) && (cg.awaitUnlisted || len(cg.awaiting) > 0)
}

// told notes that a member of the previous coordinator heard of the
// failover (UNKNOWN_MEMBER_ID answered, or it joins owning nothing): it
// gives up what it owned.
func (cg *cgroup) told(id string) { delete(cg.awaiting, id) }

func newCgroup(m *metrics.Metrics) *cgroup {
	return &cgroup{members: map[string]*cmember{}, static: map[string]string{}, owners: map[tid]map[int32]powner{}, metrics: m}
}

// topicView is a snapshot of the cluster's topics, internal ones
// included, that subscriptions are resolved against.
type topicView struct {
	at     time.Time
	byName map[string]metastore.Topic
	names  []string // sorted
}

// consumerState is the group state as ConsumerGroupDescribe, DescribeGroups
// and ListGroups name it.
func (cg *cgroup) state() string {
	active := 0
	for _, m := range cg.members {
		if m.epoch == -2 {
			continue
		}
		active++
		if m.state != cmStable || m.epoch != cg.targetEpoch {
			return "Reconciling"
		}
	}
	if active == 0 {
		return "Empty"
	}
	if cg.targetEpoch != cg.epoch {
		return "Assigning"
	}
	return "Stable"
}

func (cg *cgroup) active() int {
	n := 0
	for _, m := range cg.members {
		if m.epoch != -2 {
			n++
		}
	}
	return n
}

// compileSubscriptionRegex compiles a subscription regex: RE2 (as Kafka's
// RE2J), matched against whole topic names.
func compileSubscriptionRegex(src string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + src + ")$")
}

// resolve returns the existing topics m subscribes to, by name or regex.
func (m *cmember) resolve(tv *topicView) []string {
	var out []string
	for _, n := range m.topics {
		if _, ok := tv.byName[n]; ok {
			out = append(out, n)
		}
	}
	if m.regex != nil {
		for _, n := range tv.names {
			if m.regex.MatchString(n) && !slices.Contains(m.topics, n) {
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}

// signature describes the metadata of every topic the group subscribes to.
func (cg *cgroup) signature(tv *topicView) string {
	set := map[string]bool{}
	for _, m := range cg.members {
		for _, n := range m.resolve(tv) {
			set[n] = true
		}
	}
	names := slices.Sorted(maps.Keys(set))
	var b strings.Builder
	for _, n := range names {
		t := tv.byName[n]
		b.WriteString(n)
		b.Write(t.ID[:])
		b.WriteString(strconv.Itoa(int(t.Partitions)))
		b.WriteByte(0)
	}
	return b.String()
}

// bump advances the group epoch and computes the new target assignment.
func (cg *cgroup) bump(tv *topicView) {
	cg.epoch++
	cg.metrics.GroupRebalance(metrics.GroupConsumer)
	var ms []assignor.Member
	var ts []assignor.Topic
	seen := map[string]bool{}
	for _, m := range cg.members {
		if m.epoch == -2 {
			continue // a static member away: its partitions stay reserved
		}
		am := assignor.Member{ID: m.id, Topics: m.resolve(tv), Current: m.target}
		if m.instanceID != nil {
			am.InstanceID = *m.instanceID
		}
		for _, n := range am.Topics {
			if !seen[n] {
				seen[n] = true
				t := tv.byName[n]
				ts = append(ts, assignor.Topic{ID: tid(t.ID), Name: n, Partitions: t.Partitions})
			}
		}
		ms = append(ms, am)
	}
	a := assignor.Assign(cg.assignor, ms, ts)
	for _, am := range ms {
		cg.members[am.ID].target = a[am.ID]
	}
	cg.targetEpoch = cg.epoch
	cg.topicSig = cg.signature(tv)
}

// ownerEpoch returns the epoch of the member holding (id, p), -1 if free.
func (cg *cgroup) ownerEpoch(id tid, p int32) int32 {
	if o, ok := cg.owners[id][p]; ok {
		return o.epoch
	}
	return -1
}

func (cg *cgroup) claim(a map[tid][]int32, member string, epoch int32) {
	for id, parts := range a {
		pm := cg.owners[id]
		if pm == nil {
			pm = map[int32]powner{}
			cg.owners[id] = pm
		}
		for _, p := range parts {
			if o, ok := pm[p]; ok && o.member != member {
				continue // never two owners: the holder keeps it
			}
			pm[p] = powner{member, epoch}
		}
	}
}

func (cg *cgroup) release(a map[tid][]int32, member string) {
	for id, parts := range a {
		pm := cg.owners[id]
		for _, p := range parts {
			if o, ok := pm[p]; ok && o.member == member {
				delete(pm, p)
			}
		}
		if len(pm) == 0 {
			delete(cg.owners, id)
		}
	}
}

// restamp replaces m's old ownership records by its current ones.
func (cg *cgroup) restamp(m *cmember, oldAssigned, oldRevoking map[tid][]int32) {
	cg.release(oldAssigned, m.id)
	cg.release(oldRevoking, m.id)
	cg.claim(m.assigned, m.id, m.epoch)
	cg.claim(m.revoking, m.id, m.epoch)
}

// fence stops m's timers and frees what it holds; the caller removes it.
func (cg *cgroup) fence(m *cmember) {
	if m.session != nil {
		m.session.Stop()
	}
	if m.rebal != nil {
		m.rebal.Stop()
	}
	if m.classic != nil {
		m.classic.stop()
	}
	cg.release(m.assigned, m.id)
	cg.release(m.revoking, m.id)
}

func ownedMap(owned []ownedTopic) map[tid][]int32 {
	out := make(map[tid][]int32, len(owned))
	for _, t := range owned {
		out[t.id] = append(out[t.id], t.parts...)
	}
	return out
}

// ownedTopic is one topic of a heartbeat's owned partitions.
type ownedTopic struct {
	id    tid
	parts []int32
}

// stillOwns reports whether the member still owns one of pending. Owned
// partitions not sent (a keep-alive heartbeat) count as owning them.
func stillOwns(pending map[tid][]int32, owned []ownedTopic, sent bool) bool {
	if !sent {
		return len(pending) > 0
	}
	o := ownedMap(owned)
	for id, parts := range pending {
		for _, p := range parts {
			if slices.Contains(o[id], p) {
				return true
			}
		}
	}
	return false
}

func isSubset(owned []ownedTopic, of map[tid][]int32) bool {
	for _, t := range owned {
		for _, p := range t.parts {
			if !slices.Contains(of[t.id], p) {
				return false
			}
		}
	}
	return true
}

func cloneAssignment(a map[tid][]int32) map[tid][]int32 {
	out := make(map[tid][]int32, len(a))
	for id, ps := range a {
		out[id] = slices.Clone(ps)
	}
	return out
}

func sameCGAssignment(a, b map[tid][]int32) bool {
	return maps.EqualFunc(a, b, slices.Equal)
}

// nextAssignment moves m one step towards its target (Kafka's
// CurrentAssignmentBuilder): revoke first; else assign what is free and
// advance to the target epoch.
func (cg *cgroup) nextAssignment(m *cmember, owned []ownedTopic, sent bool) (assigned, revoking map[tid][]int32) {
	keep, revoke, add := map[tid][]int32{}, map[tid][]int32{}, map[tid][]int32{}
	unreleased, grace := false, cg.inGrace()
	ids := map[tid]bool{}
	for id := range m.assigned {
		ids[id] = true
	}
	for id := range m.target {
		ids[id] = true
	}
	for id := range ids {
		cur, want := m.assigned[id], m.target[id]
		for _, p := range cur {
			if slices.Contains(want, p) {
				keep[id] = append(keep[id], p)
			} else {
				revoke[id] = append(revoke[id], p)
			}
		}
		for _, p := range want {
			if slices.Contains(cur, p) {
				continue
			}
			if o, ok := cg.owners[id][p]; ok && o.member == m.id || !ok && !grace {
				add[id] = append(add[id], p)
			} else {
				unreleased = true
			}
		}
	}
	pending := cloneAssignment(m.revoking)
	for id, parts := range revoke {
		for _, p := range parts {
			if !slices.Contains(pending[id], p) {
				pending[id] = append(pending[id], p)
			}
		}
	}
	if len(pending) > 0 && stillOwns(pending, owned, sent) {
		m.state = cmUnrevoked
		return keep, pending
	}
	m.state = cmStable
	if unreleased {
		m.state = cmUnreleased
	}
	m.prevEpoch, m.epoch = m.epoch, cg.targetEpoch
	for id, parts := range add {
		keep[id] = append(keep[id], parts...)
		slices.Sort(keep[id])
	}
	return keep, map[tid][]int32{}
}

// reconcile clears the revocations m acknowledged and moves it on; it
// reports whether what m must own changed (the response then carries it).
func (cg *cgroup) reconcile(m *cmember, owned []ownedTopic, sent bool) bool {
	if sent {
		o := ownedMap(owned)
		old := m.revoking
		left := map[tid][]int32{}
		for id, parts := range old {
			for _, p := range parts {
				if slices.Contains(o[id], p) {
					left[id] = append(left[id], p)
				}
			}
		}
		m.revoking = left
		cg.release(old, m.id)
		cg.claim(left, m.id, m.epoch)
	}
	if m.state == cmStable && m.epoch == cg.targetEpoch {
		return false
	}
	if m.state == cmUnrevoked && stillOwns(m.revoking, owned, sent) {
		return false
	}
	oldAssigned, oldRevoking, oldEpoch := m.assigned, m.revoking, m.epoch
	assigned, revoking := cg.nextAssignment(m, owned, sent)
	changed := !sameCGAssignment(assigned, oldAssigned) || !sameCGAssignment(revoking, oldRevoking)
	m.assigned, m.revoking = assigned, revoking
	if changed || m.epoch != oldEpoch {
		cg.restamp(m, oldAssigned, oldRevoking)
	}
	m.stampAssignEpochs()
	return changed
}

// stampAssignEpochs records, for each partition m owns, the epoch at
// which it got it.
func (m *cmember) stampAssignEpochs() {
	next := make(map[tid]map[int32]int32, len(m.assigned))
	for id, parts := range m.assigned {
		next[id] = make(map[int32]int32, len(parts))
		for _, p := range parts {
			if e, ok := m.assignEpochs[id][p]; ok {
				next[id][p] = e
			} else {
				next[id][p] = m.epoch
			}
		}
	}
	for id, parts := range m.revoking {
		for _, p := range parts {
			if e, ok := m.assignEpochs[id][p]; ok {
				if next[id] == nil {
					next[id] = map[int32]int32{}
				}
				next[id][p] = e
			}
		}
	}
	m.assignEpochs = next
}
