// Package cluster runs shale the way users do, for integration tests: the
// real `shale` binary, built once per test process from the module root,
// started as N separate OS processes (`shale agent ...`) that share one real
// embedded etcd (internal/testenv.Etcd) and one real S3 server (versitygw,
// internal/testenv.S3).
//
// What it guarantees to a test:
//
//   - Start returns only when every agent answers a Kafka ApiVersions request
//     and every agent's Metadata lists all N agents, so partition leadership
//     (hashed over live agents) is stable when the test begins.
//   - Every process listens on 127.0.0.1, has its own data directory
//     (t.TempDir) and dies with the test binary (Pdeathsig=SIGKILL on Linux).
//     t.Cleanup stops every agent (SIGTERM, then SIGKILL after a bound)
//     before etcd and S3 stop.
//   - Kill(i) is a real SIGKILL: the agent gets no chance to flush. Restart(i)
//     starts agent i again on the same address and data directory.
//   - Every agent's output (all incarnations) is printed to the test log when
//     the test failed, and only then.
//   - DialTo pins a client's connections to one agent whatever address the
//     metadata names, so "produced through A, consumed through B" means
//     exactly that: every agent serves every partition.
//
// Tests that use it must call Main from TestMain: Start's etcd is a
// separate process (testenv.StartEtcdProcess, at a stock etcd server's
// limits: 128 operations per transaction, 1.5 MiB per request), this test
// binary re-executed in etcd mode, which Main serves; Main also removes the
// binary built for the agents at exit.
//
// Errors: a binary that does not build, an agent that exits or does not
// answer within its start bound fail the test with t.Fatalf and the agent's
// output; nothing is skipped.
package cluster
