// Package conformance runs other Kafka clients' own integration suites
// against shale: tests someone else wrote, pointed at a shale agent.
//
// franz-go's pkg/kgo integration suite (the version this module requires,
// v1.22.3) runs twice, in TestKgoSuite:
//
//   - dev: one `shale agent --dev` process, as `make run` starts it
//     (embedded etcd, local-directory bucket, its default flush);
//   - cluster: two agent processes on an embedded etcd and a real S3
//     server (versitygw, tests/cluster), the seed broker being agent 0;
//     clients follow Metadata to both agents.
//
// segmentio/kafka-go's integration suite (v0.4.51) runs in
// TestKafkaGoSuite against a dev agent. Its tests dial localhost:9092 and
// expect the broker to advertise "localhost", so the agent runs in a network
// namespace of its own (unshare -n; root, as `make test` runs in CI) and
// every test process joins it (nsenter); the machine's port 9092 is never
// used. A SASL_PLAINTEXT listener on localhost:9093 with kafka-go's user
// (adminplain) serves its SASL tests. Its integration tests are those that
// mention "localhost" (its helpers dial localhost:9092).
//
// How it runs:
//
//   - the suite's test binary is built once (`go test -c
//     github.com/twmb/franz-go/pkg/kgo`, from this module, so go.sum pins
//     it) and each integration test runs in its own process
//     (`-test.run '^Name$'`) with KGO_SEEDS, KGO_TEST_RF=1 and
//     KGO_TEST_RECORDS, bounded by a timeout (a hung test is killed and
//     fails).
//   - The integration tests are found, not listed: every Test function of
//     kgo's _test.go files that reaches the seed-broker helpers
//     (getSeedBrokers, or the SCRAM/OAUTHBEARER seed variables) through
//     its calls. kgo's unit tests (no broker) are not run; a franz-go
//     upgrade that adds integration tests runs them without an edit here.
//     The SCRAM tests run against a SASL_PLAINTEXT listener of the agent
//     with a user created through AlterUserScramCredentials; TestOAuthAuth
//     against the same listener, which offers OAUTHBEARER with Kafka's
//     default (unsecured JWS) validator (--sasl-oauthbearer-unsecured).
//   - pending_test.go lists the tests that cannot pass until an open issue
//     lands, each with its issue. A pending test that fails, or skips
//     itself because the broker does not advertise an API, is reported as
//     pending; a pending test that passes fails the run (remove it from
//     the list), so the list cannot go stale. A test whose first
//     statement skips it, whatever the broker (its authors turned it off:
//     kafka-go's TestReadTruncatedMessages and
//     TestConsumerGroupWithMissingTopic), still runs and is shown as "off",
//     counted apart from passes; if its authors turn it back on it is
//     judged like any other. Any other failure or skip fails the run.
//   - The result is one table per topology (test, outcome, duration,
//     note), printed to stdout, plus the tail of each failing test's
//     output in the test log.
//
// librdkafka's own suite (tests/ of its source tree, a C program built by
// scripts/test-deps.sh from Debian's librdkafka_2.0.2.orig.tar.gz,
// sha256-checked, into the test cache once) runs in TestLibrdkafkaSuite
// (librdkafka_test.go) against dev agents: one test-runner process per
// test number (-Q quick mode, as librdkafka's own CI runs it: subtests
// declared SUB_TEST rather than SUB_TEST_QUICK return at once; -L broker
// tests only; the socket-emulation tests included), six at a time, the
// pending ones first. A test that skips itself in quick mode runs again in
// full mode. A test is off, with its reason, when it says it cannot run
// here whatever the broker (it needs RapidJSON, trivup's SSL or SASL
// setup, or Kafka's own command-line tools through KAFKA_PATH), or when its
// authors flag it as a known issue and it fails (their runner does not
// count that failure either; 0028's 255-byte topic name, which Kafka
// refuses too). Any other skip or failure fails the run; pending list
// librdkafkaPending. The kgo suite and librdkafka's run at the same time
// (both t.Parallel), after kafka-go's: librdkafka's processes mostly
// wait, about a third of a core in all.
//
// Other clients' suites, looked at and not run here (yet):
//
//   - sarama (v1.61.1, in go.mod): its functional tests (build tag
//     "functional", 17 files) start five Kafka brokers with docker compose,
//     or, given TOXIPROXY_ADDR and KAFKA_VERSION, take an existing cluster
//     behind a toxiproxy server that routes ports 29091-29095 to five
//     brokers; their topics are created with replication factor 3, and the
//     tests that need `docker compose exec` skip themselves on an existing
//     cluster. Running them needs a toxiproxy server (not installed here)
//     and five agents. sarama is driven against shale by tests/interop
//     (sarama_test.go, group_sarama_test.go, txn_sarama_test.go).
//   - kafkajs: the npm package (tests/js) ships no tests; its suite lives
//     in its repository and starts its brokers with docker compose.
//     tests/js drives kafkajs against shale.
//
// Knobs (environment): SHALE_KGO_RECORDS (KGO_TEST_RECORDS, default
// 20000), SHALE_KGO_PARALLEL (test processes at once per run, default 3),
// SHALE_KGO_RUN (a regexp: only the integration tests it matches, for a
// focused rerun), SHALE_KGO_TOPOLOGY (dev, cluster, kafka-go or
// librdkafka: only that run), SHALE_LIBRDKAFKA_PARALLEL (librdkafka
// test-runner processes at once, default 6).
package conformance
