package agent

// Internal topics, as Kafka shows them.
//
// Kafka keeps its own state in topics clients can see: __consumer_offsets
// holds committed group offsets (and __transaction_state the transaction
// coordinator's log). Clients expect them: Metadata lists them with
// IsInternal set, regex subscriptions skip them, kcat -L and admin tools
// show them. shale keeps that state in etcd instead, so its internal topics
// are virtual: they are listed by Metadata (all topics, by name, by ID) with
// IsInternal and Kafka's default partition count (50), a topic ID derived
// from the name (the same on every agent), and a leader per partition
// hashed over the live agents like any topic's. They are not in etcd and
// hold no data.
//
// What each API does with one (decided here; tested in
// internal_topics_test.go):
//
//   - Produce: INVALID_TOPIC_EXCEPTION, as Kafka answers "Cannot append to
//     internal topic".
//   - Fetch, ListOffsets, OffsetForLeaderEpoch, DeleteRecords, OffsetCommit:
//     INVALID_TOPIC_EXCEPTION. shale does not serve committed offsets in
//     Kafka's __consumer_offsets record format: lag tools that read the
//     topic (Burrow's Kafka-topic consumer) get this error and must read
//     lag through OffsetFetch/ListOffsets (kadm Lag, Burrow's ZK-less
//     "kafka_client" with OffsetFetch, `shale group describe`) instead.
//     Serving the topic would mean a log of commits with dense offsets,
//     which etcd does not keep.
//   - DescribeConfigs: the configs Kafka sets on it (cleanup.policy=compact,
//     compression.type=producer, segment.bytes=104857600).
//   - CreateTopics: TOPIC_ALREADY_EXISTS. DeleteTopics and
//     CreatePartitions: INVALID_TOPIC_EXCEPTION with a message (the topic
//     is not shale's to change). A topic of an internal name that an older
//     shale auto-created in etcd is hidden: the internal one wins.
//
// __transaction_state is listed since shale serves transactions (its
// state is in etcd, txn_coord.go). Adding one: append it to
// internalTopics; every rule above then applies to it.

import (
	"crypto/sha256"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/metastore"
)

// internalTopicPartitions is Kafka's default offsets.topic.num.partitions
// (and transaction.state.log.num.partitions).
const internalTopicPartitions = 50

// internalTopics are the internal topics Metadata lists, in order.
var internalTopics = []metastore.Topic{
	internalTopic("__consumer_offsets"),
	internalTopic("__transaction_state"), // transactions' state is in etcd (txn_coord.go)
}

func internalTopic(name string) metastore.Topic {
	sum := sha256.Sum256([]byte("shale internal topic " + name))
	var id metastore.TopicID
	copy(id[:], sum[:])
	// The configs Kafka sets on its internal topics, for DescribeConfigs.
	configs := map[string]string{"cleanup.policy": "compact", "compression.type": "producer", "segment.bytes": "104857600"}
	return metastore.Topic{Name: name, ID: id, Partitions: internalTopicPartitions, Configs: configs}
}

// lookupInternal returns the internal topic called name.
func lookupInternal(name string) (metastore.Topic, bool) {
	for _, t := range internalTopics {
		if t.Name == name {
			return t, true
		}
	}
	return metastore.Topic{}, false
}

func isInternal(name string) bool {
	_, ok := lookupInternal(name)
	return ok
}

// lookupInternalID returns the internal topic with the given ID.
func lookupInternalID(id metastore.TopicID) (metastore.Topic, bool) {
	for _, t := range internalTopics {
		if t.ID == id {
			return t, true
		}
	}
	return metastore.Topic{}, false
}

// errInternalTopic is what the data APIs answer for an internal topic
// (INVALID_TOPIC_EXCEPTION through errCode).
func errInternalTopic(name string) error {
	return fmt.Errorf("%w: %s is an internal topic: shale keeps its state in etcd and serves no records for it", kerr.InvalidTopicException, name)
}
