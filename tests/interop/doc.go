// Package interop proves that real Kafka clients, unmodified and in several
// languages, work against real shale agent processes (tests/cluster: the
// built binary, a real etcd, a real S3 server, two agents).
//
// What the tests prove, each against a fresh two-agent cluster:
//
//   - Round trip, per client: 10,000 keyed records with headers produced
//     through agent A come back through agent B with the same key, value,
//     headers and timestamp, each at the partition and offset its produce
//     acknowledgement named, in produce order within each partition, with
//     dense offsets from 0 and nothing extra. Go clients (franz-go over every
//     compression codec, sarama, segmentio/kafka-go) have every connection
//     pinned to one agent (cluster.DialTo), so the read really is served by
//     the agent that did not write. kcat and confluent-kafka-python
//     (librdkafka) run as subprocesses from these tests, bootstrapped
//     through A to produce and through B to read (consumer without a group:
//     kcat -C, assign()); end of partition must be reported for every
//     partition. kafkajs (also a subprocess) produces through A, lists
//     offsets through B and reads everything back through B with its
//     consumer (in a group: kafkajs has no other kind). kafka-python
//     (Debian's python3-kafka 2.0.2, pure Python, on older request
//     versions: Produce v7, Fetch v4, ListOffsets v1, JoinGroup v2,
//     SyncGroup and Heartbeat v1, OffsetCommit v2)
//     produces through A and reads in a group through B, and its commit
//     is each partition's end through both agents.
//   - Consumer groups (group_*_test.go): offsets committed through A are
//     fetched through B; sarama, confluent-kafka and kafkajs group consumers
//     read everything; SIGKILL of the coordinator hands the group to another
//     agent with no committed offset lost or moved backwards, also in the
//     middle of a rolling upgrade from the classic protocol to KIP-848
//     (group_migration_kill_test.go).
//   - Kill -9: acknowledged records survive SIGKILL of the agent that took
//     them (DESIGN invariant 1) at the offsets acknowledged, with dense
//     offsets and no duplicate from an idempotent producer's retries
//     (invariant 2), read through the surviving agent (invariant 3).
//
// The agents are built with the race detector (TestMain,
// cluster.MainWithRaceAgents), so this package's one pass in `make test`
// is also its race pass: a test whose agent reports a data race fails.
// TestLargeRecordAcrossAgents alone runs agents built without it, whose
// memory bound is the real one. The long failover tests (the group
// coordinator's SIGKILL, KIP-848 SIGKILL and SIGTERM, the SIGKILL during a
// classic-to-KIP-848 migration, and the transaction coordinator kills)
// run in parallel, two at a time (go test's -parallel
// defaults to the number of cores), each on a cluster of its own: they
// mostly wait for leases and timeouts, and so pay for the race
// detector's cost to the others.
//
// A client tool that is missing (kcat, /usr/bin/python3 with confluent_kafka,
// node with tests/js/node_modules) fails its test with how to install it
// (`make test-deps`); nothing is skipped.
//
// Subprocess protocol: each script gets its bootstrap addresses, topic and
// record count from the environment (SHALE_PRODUCE_BOOTSTRAP,
// SHALE_CONSUME_BOOTSTRAP, SHALE_TOPIC, SHALE_COUNT) and prints JSON lines
// on stdout: {"kind":"ack",...} per acknowledged record, {"kind":"record",...}
// per consumed record, then one {"kind":"summary",...}. Diagnostics go to
// stderr, which the test prints only on failure.
//
// Every record follows one scheme in every language (see recordFor): key
// "key-%05d", value "value-%05d-" plus i%61 filler bytes, headers idx=<i>
// and src=<client>, timestamp 1,700,000,000,000 ms + i.
package interop
