package metastore

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// All etcd key encoding lives in this file. The schema is documented in doc.go;
// keep the two in step.

// Key prefixes and names, relative to the namespace prefix (namespace + "/").
const (
	dirTopics     = "topics/"
	dirTopicIDs   = "topic-ids/"
	dirPartitions = "partitions/"
	dirIndex      = "index/"
	dirTopicStats = "topic-stats/"
	dirAgents     = "agents/"
	dirJobs       = "jobs/"
	dirGroups     = "groups/"
	dirUsers      = "users/"
	dirACLs       = "acls/"
	dirAborted    = "aborted/"
	dirTxns       = "txns/"
	dirTxnOffsets = "txn-offsets/"
	dirCleaner    = "cleaner/"
	dirShares     = "share-groups/"
	dirGroupCfgs  = "group-configs/"
	dirBrokerCfgs = "broker-configs/"
	dirIceberg    = "iceberg/"
	dirQuotas     = "client-quotas/"
	keyProducerID = "producer-id"
	keyCluster    = "cluster"
	keyRecovering = "recovering"
	dirPins       = "manifest-pins/"
	keyManifest   = "manifest-last"
)

// Widths of the zero-padded decimal key components. Zero padding makes etcd's
// byte-order sort agree with numeric order.
const (
	partitionDigits = 10 // int32 max is 10 digits
	offsetDigits    = 20 // int64 max is 19 digits
	nodeIDDigits    = 10
)

// keys builds and parses the keys of one namespace. p is the namespace followed
// by exactly one "/".
type keys struct{ p string }

func newKeys(namespace string) keys {
	return keys{p: strings.TrimRight(namespace, "/") + "/"}
}

func (k keys) root() string { return k.p }

func (k keys) topicsPrefix() string          { return k.p + dirTopics }
func (k keys) topic(name string) string      { return k.p + dirTopics + name }
func (k keys) topicIDsPrefix() string        { return k.p + dirTopicIDs }
func (k keys) topicID(id TopicID) string     { return k.p + dirTopicIDs + id.String() }
func (k keys) statesPrefix() string          { return k.p + dirPartitions }
func (k keys) topicStates(id TopicID) string { return k.p + dirPartitions + id.String() + "/" }
func (k keys) indexPrefix() string           { return k.p + dirIndex }
func (k keys) topicIndex(id TopicID) string  { return k.p + dirIndex + id.String() + "/" }
func (k keys) producerID() string            { return k.p + keyProducerID }
func (k keys) topicStats(id TopicID) string  { return k.p + dirTopicStats + id.String() }
func (k keys) cluster() string               { return k.p + keyCluster }
func (k keys) agentsPrefix() string          { return k.p + dirAgents }
func (k keys) recovering() string            { return k.p + keyRecovering }
func (k keys) manifestLast() string          { return k.p + keyManifest }
func (k keys) pinsPrefix() string            { return k.p + dirPins }
func (k keys) pin(lease int64) string        { return k.p + dirPins + strconv.FormatInt(lease, 16) }

// job is the election prefix of one lifecycle job; candidates' keys are
// job(name) + "/" + lease ID (concurrency.Election's layout).
func (k keys) job(name string) string { return k.p + dirJobs + name }

// Group keys: <ns>/groups/<escaped group>/coordinator,
// <ns>/groups/<escaped group>/empty-since,
// <ns>/groups/<escaped group>/members-session,
// <ns>/groups/<escaped group>/offsets/<topic>/<p> and
// <ns>/groups/<escaped group>/protocol-type. The group ID is
// path-escaped (url.PathEscape) so any Kafka group ID, "/" included, is
// one key component; topic names need no escaping (legal names are
// [a-zA-Z0-9._-]).
func (k keys) groupsPrefix() string                    { return k.p + dirGroups }
func (k keys) group(g string) string                   { return k.p + dirGroups + url.PathEscape(g) + "/" }
func (k keys) groupCoordinator(g string) string        { return k.group(g) + groupTailCoordinator }
func (k keys) groupEmptySince(g string) string         { return k.group(g) + groupTailEmptySince }
func (k keys) groupMembersSession(g string) string     { return k.group(g) + groupTailMembersSession }
func (k keys) groupOffsets(g string) string            { return k.group(g) + groupTailOffsets }
func (k keys) groupProtocolType(g string) string       { return k.group(g) + groupTailProtocolType }
func (k keys) groupType(g string) string               { return k.group(g) + groupTailType }
func (k keys) groupOffsetTopic(g, topic string) string { return k.groupOffsets(g) + topic + "/" }
func (k keys) groupOffset(g, topic string, partition int32) string {
	return k.groupOffsetTopic(g, topic) + fmtPartition(partition)
}

// The keys of one group after its component; they sort in this order, so a
// scan meets a group's coordinator key before its other keys.
const (
	groupTailCoordinator    = "coordinator"
	groupTailEmptySince     = "empty-since"
	groupTailMembersSession = "members-session"
	groupTailOffsets        = "offsets/"
	groupTailProtocolType   = "protocol-type"
	groupTailType           = "type"
)

// parseGroupKey returns the group of any key under groups/ and the rest of
// the key after the group component.
func (k keys) parseGroupKey(key string) (string, string, error) {
	rest, ok := strings.CutPrefix(key, k.groupsPrefix())
	if !ok {
		return "", "", fmt.Errorf("%w: key %q is not a group key", ErrCorruptValue, key)
	}
	esc, tail, ok := strings.Cut(rest, "/")
	g, err := url.PathUnescape(esc)
	if !ok || err != nil || g == "" {
		return "", "", fmt.Errorf("%w: key %q is not a group key", ErrCorruptValue, key)
	}
	return g, tail, nil
}

// Share group keys: <ns>/share-groups/<escaped group>/group (the group's
// record: it is a share group) and <ns>/share-groups/<escaped
// group>/state/<id>/<p> (one share-partition's state, share.Partition's
// encoding). Group configs: <ns>/group-configs/<escaped group>.
func (k keys) sharesPrefix() string       { return k.p + dirShares }
func (k keys) share(g string) string      { return k.p + dirShares + url.PathEscape(g) + "/" }
func (k keys) shareGroup(g string) string { return k.share(g) + "group" }
func (k keys) shareStates(g string) string {
	return k.share(g) + "state/"
}
func (k keys) shareTopicStates(g string, id TopicID) string {
	return k.shareStates(g) + id.String() + "/"
}
func (k keys) shareState(g string, id TopicID, p int32) string {
	return k.shareTopicStates(g, id) + fmtPartition(p)
}
func (k keys) groupConfigs(g string) string { return k.p + dirGroupCfgs + url.PathEscape(g) }

// brokerConfigs is the key of node's dynamic broker configs, or with node
// "" of the cluster-wide defaults ("default": node IDs are decimal).
func (k keys) brokerConfigs(node string) string {
	if node == "" {
		return k.p + dirBrokerCfgs + "default"
	}
	return k.p + dirBrokerCfgs + url.PathEscape(node)
}

// parseShareKey returns the group of a key under share-groups/ and the rest
// of the key after the group component.
func (k keys) parseShareKey(key string) (string, string, error) {
	rest, ok := strings.CutPrefix(key, k.sharesPrefix())
	esc, tail, ok2 := strings.Cut(rest, "/")
	g, err := url.PathUnescape(esc)
	if !ok || !ok2 || err != nil || g == "" {
		return "", "", fmt.Errorf("%w: key %q is not a share group key", ErrCorruptValue, key)
	}
	return g, tail, nil
}

// User credential keys: <ns>/users/<escaped user>/<mechanism>. The user
// name is path-escaped so any name is one key component.
func (k keys) usersPrefix() string            { return k.p + dirUsers }
func (k keys) user(u string) string           { return k.p + dirUsers + url.PathEscape(u) + "/" }
func (k keys) userCred(u, mech string) string { return k.user(u) + mech }

// parseUserKey returns the user and mechanism of a key under users/.
func (k keys) parseUserKey(key string) (string, string, error) {
	rest, ok := strings.CutPrefix(key, k.usersPrefix())
	esc, mech, ok2 := strings.Cut(rest, "/")
	u, err := url.PathUnescape(esc)
	if !ok || !ok2 || err != nil || u == "" || mech == "" {
		return "", "", fmt.Errorf("%w: key %q is not a user key", ErrCorruptValue, key)
	}
	return u, mech, nil
}

// ACL keys: <ns>/acls/<id>, id a hex digest of the binding, so creating
// the same binding twice writes the same key.
func (k keys) aclsPrefix() string   { return k.p + dirACLs }
func (k keys) acl(id string) string { return k.p + dirACLs + id }

func (k keys) state(id TopicID, partition int32) string {
	return k.topicStates(id) + fmtPartition(partition)
}

// partitionIndex is the prefix of every index entry of one partition.
func (k keys) partitionIndex(id TopicID, partition int32) string {
	return k.topicIndex(id) + fmtPartition(partition) + "/"
}

func (k keys) entry(id TopicID, partition int32, base int64) string {
	return k.partitionIndex(id, partition) + fmtOffset(base)
}

func (k keys) agent(nodeID int32) string {
	return k.p + dirAgents + fmt.Sprintf("%0*d", nodeIDDigits, nodeID)
}

// topicScoped lists every prefix holding keys that belong to one topic ID,
// so DeleteTopic removes them all. Producer idempotence state lives inside
// the partition state values, so it is covered by topicStates.
func (k keys) topicScoped(id TopicID) []string {
	return []string{k.topicStates(id), k.topicIndex(id), k.topicStats(id), k.topicAborted(id), k.topicCleaner(id), k.iceberg(id)}
}

// Iceberg table pointer of a topic: <ns>/iceberg/<id> (TablePointer).
func (k keys) iceberg(id TopicID) string { return k.p + dirIceberg + id.String() }

// Key-compaction cleaner state: <ns>/cleaner/<id>/<p>.
func (k keys) topicCleaner(id TopicID) string { return k.p + dirCleaner + id.String() + "/" }
func (k keys) cleaner(id TopicID, partition int32) string {
	return k.topicCleaner(id) + fmtPartition(partition)
}

// Aborted-transaction index keys: <ns>/aborted/<id>/<p>/<last offset>,
// the last offset being the abort marker's, so a range from a fetch
// offset up finds every aborted transaction that ends at or after it.
func (k keys) topicAborted(id TopicID) string { return k.p + dirAborted + id.String() + "/" }
func (k keys) partitionAborted(id TopicID, partition int32) string {
	return k.topicAborted(id) + fmtPartition(partition) + "/"
}
func (k keys) aborted(id TopicID, partition int32, last int64) string {
	return k.partitionAborted(id, partition) + fmtOffset(last)
}

// Transactional ID keys: <ns>/txns/<escaped id>/coordinator and
// <ns>/txns/<escaped id>/state; pending transactional offsets:
// <ns>/txn-offsets/<escaped group>/<producer id>/<topic>/<p>.
func (k keys) txnsPrefix() string             { return k.p + dirTxns }
func (k keys) txn(t string) string            { return k.p + dirTxns + url.PathEscape(t) + "/" }
func (k keys) txnCoordinator(t string) string { return k.txn(t) + "coordinator" }
func (k keys) txnState(t string) string       { return k.txn(t) + "state" }
func (k keys) txnOffsetsGroup(g string) string {
	return k.p + dirTxnOffsets + url.PathEscape(g) + "/"
}
func (k keys) txnOffsetsProducer(g string, pid int64) string {
	return k.txnOffsetsGroup(g) + strconv.FormatInt(pid, 10) + "/"
}
func (k keys) txnOffset(g string, pid int64, topic string, p int32) string {
	return k.txnOffsetsProducer(g, pid) + topic + "/" + fmtPartition(p)
}

// parseTxnKey returns the transactional ID and the tail of a key under txns/.
func (k keys) parseTxnKey(key string) (string, string, error) {
	rest, ok := strings.CutPrefix(key, k.txnsPrefix())
	esc, tail, ok2 := strings.Cut(rest, "/")
	t, err := url.PathUnescape(esc)
	if !ok || !ok2 || err != nil || t == "" {
		return "", "", fmt.Errorf("%w: key %q is not a transactional id key", ErrCorruptValue, key)
	}
	return t, tail, nil
}

func fmtPartition(p int32) string { return fmt.Sprintf("%0*d", partitionDigits, p) }
func fmtOffset(o int64) string    { return fmt.Sprintf("%0*d", offsetDigits, o) }

// prefixEnd is the range end covering every key that starts with prefix.
func prefixEnd(prefix string) string { return clientv3.GetPrefixRangeEnd(prefix) }

// entryRangeEnd is the exclusive range end for entries with BaseOffset <= last.
func (k keys) entryRangeEnd(id TopicID, partition int32, last int64) string {
	if last == maxOffset {
		return prefixEnd(k.partitionIndex(id, partition))
	}
	return k.entry(id, partition, last+1)
}

// parseStateKey parses namespace/partitions/<id>/<partition>.
func (k keys) parseStateKey(key string) (TopicID, int32, error) {
	rest, ok := strings.CutPrefix(key, k.statesPrefix())
	if !ok {
		return TopicID{}, 0, fmt.Errorf("%w: key %q is not a partition state key", ErrCorruptValue, key)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 2 {
		return TopicID{}, 0, fmt.Errorf("%w: key %q is not a partition state key", ErrCorruptValue, key)
	}
	id, err := ParseTopicID(parts[0])
	if err != nil {
		return TopicID{}, 0, fmt.Errorf("%w: key %q: %v", ErrCorruptValue, key, err)
	}
	p, err := parsePartition(parts[1])
	if err != nil {
		return TopicID{}, 0, fmt.Errorf("%w: key %q: %v", ErrCorruptValue, key, err)
	}
	return id, p, nil
}

// parseIndexKey parses namespace/index/<id>/<partition>/<base offset>.
func (k keys) parseIndexKey(key string) (TopicID, int32, int64, error) {
	rest, ok := strings.CutPrefix(key, k.indexPrefix())
	if !ok {
		return TopicID{}, 0, 0, fmt.Errorf("%w: key %q is not an index key", ErrCorruptValue, key)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return TopicID{}, 0, 0, fmt.Errorf("%w: key %q is not an index key", ErrCorruptValue, key)
	}
	id, err := ParseTopicID(parts[0])
	if err != nil {
		return TopicID{}, 0, 0, fmt.Errorf("%w: key %q: %v", ErrCorruptValue, key, err)
	}
	p, err := parsePartition(parts[1])
	if err != nil {
		return TopicID{}, 0, 0, fmt.Errorf("%w: key %q: %v", ErrCorruptValue, key, err)
	}
	base, err := parseFixed(parts[2], offsetDigits)
	if err != nil {
		return TopicID{}, 0, 0, fmt.Errorf("%w: key %q: %v", ErrCorruptValue, key, err)
	}
	return id, p, base, nil
}

// parseAgentKey parses namespace/agents/<node id>.
func (k keys) parseAgentKey(key string) (int32, error) {
	rest, ok := strings.CutPrefix(key, k.agentsPrefix())
	if !ok {
		return 0, fmt.Errorf("%w: key %q is not an agent key", ErrCorruptValue, key)
	}
	n, err := parseFixed(rest, nodeIDDigits)
	if err != nil || n > maxInt32 {
		return 0, fmt.Errorf("%w: key %q is not an agent key", ErrCorruptValue, key)
	}
	return int32(n), nil
}

func parsePartition(s string) (int32, error) {
	n, err := parseFixed(s, partitionDigits)
	if err != nil {
		return 0, err
	}
	if n > maxInt32 {
		return 0, fmt.Errorf("partition %s out of range", s)
	}
	return int32(n), nil
}

// parseFixed parses a zero-padded non-negative decimal of exactly width digits.
func parseFixed(s string, width int) (int64, error) {
	if len(s) != width {
		return 0, fmt.Errorf("%q: want %d digits", s, width)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q: not a decimal", s)
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

const (
	maxInt32  = 1<<31 - 1
	maxOffset = 1<<63 - 1
)
