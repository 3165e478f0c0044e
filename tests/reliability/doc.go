// Package reliability holds shale's reliability campaigns: real agent
// processes (tests/cluster) under load from franz-go producers while agents
// are SIGKILLed, etcd is SIGKILLed, the object store misbehaves (through
// internal/faultproxy), clients abuse the protocol, and agents are stopped
// with SIGTERM. Each campaign ends with an audit.
//
// # The auditor
//
// Producers (acks=all; idempotent, and non-idempotent with one request in
// flight) record every acknowledged record: partition, offset, producer and
// sequence number; a record's value names its producer and sequence and
// pads them with bytes derived from both, so any damage is visible. The
// audit reads the whole topic, from log start to end offset, through every
// agent separately (each client pinned to one agent with cluster.DialTo)
// and checks: every acknowledged record is at the offset it was
// acknowledged at (DESIGN invariant 1); no offset below the end is missing
// and every agent returns the same key, value, timestamp and headers for
// every offset (invariants 2 and 3); an idempotent producer's record
// appears once; every producer's records keep their order per partition.
// Records that got an error may or may not be in the log; non-idempotent
// producers may duplicate (counted, allowed).
//
// # etcd as a process
//
// The cluster harness runs etcd as a child process
// (testenv.StartEtcdProcess: the test binary re-executed in "etcd mode",
// environment SHALE_TESTENV_ETCD_DIR, _CLIENT, _PEER; cluster.Main, this
// package's TestMain, calls testenv.RunEtcdIfAsked first), which runs
// metastore.StartEmbedded on a fixed directory and fixed 127.0.0.1 ports at
// a stock etcd's limits. The crash campaign starts its own so that it can
// kill it: Kill SIGKILLs that process and Restart starts it again on the
// same directory and ports, so agents reconnect to the same endpoints and
// every key survives. (The embedded etcd runs with Fast: no fsync, which a
// process crash does not hurt.)
//
// # Bounds
//
// make test runs short campaigns (about 10 kills); make soak runs
// SHALE_SOAK_KILLS kills (default 200 there) and prints the counts. The
// key-compaction campaign (TestCrashCampaignCompacted: the agent leading
// the key-compaction job SIGKILLed over and over under keyed load, then
// every live key's latest value present, nothing deleted back, at most one
// record per key) runs in make soak only. Every
// loop is bounded in count and time; every server listens on 127.0.0.1.
package reliability
