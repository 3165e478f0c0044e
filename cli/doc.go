// Package cli is the shale command (cobra + viper); only main.go imports
// it. Execute runs it; NewRoot builds the command tree:
//
//   - agent (agent.go, stack.go): one agent and what it connects to.
//     StartStack wires etcd (embedded with --dev), the object store, the
//     storage engine, the Kafka server, the lifecycle jobs and the admin
//     server; StackOptions carries engine.Config and agent.Config as the
//     packages define them, and flag defaults are those packages' Default*
//     constants, or cli's own for what only the command decides
//     (DefaultDataDir, DevEtcdListen, DevAdminListen, DevFlushInterval,
//     shared by the commands that have the flag), so a default lives in
//     one place.
//   - topic, group, produce, consume, perf, status, user, acl: clients of a
//     running cluster through the Kafka API (--bootstrap-server), with a few
//     reads straight from etcd (topic describe's storage columns, user and
//     status). List and describe commands, status and recover's plan print
//     through one table helper (table.go; only cost's report, whose money
//     columns align right, has a tabwriter of its own), and the commands
//     using the admin API connect through adminRun.
//   - replay: history from etcd and the bucket, with every agent stopped if
//     need be (package replay); it never writes to etcd.
//   - cost (cost.go): the bucket's estimated bill per topic from etcd's
//     index, the bucket listing and the agents' /metrics (package cost
//     prices them); read-only. Agents find each other's admin servers
//     through the registration: StartStack starts the admin server before
//     the agent registers and records its address (admin_addr.go).
//   - recover (recover.go): rebuilds an empty etcd namespace from the
//     bucket's newest recovery manifest (packages manifest, lifecycle's
//     manifest job, metastore.Restore); the only command besides agent
//     that writes to etcd wholesale. It first checks every object the
//     manifest's index references (recover_verify.go: listing size and
//     footer by default, one ranged GET each, 16 at once; every chunk's
//     CRC with --verify-data), because a corrupt object is better named
//     before the restore than met by a consumer after it. --skip-corrupt
//     drops a corrupt object's index entries (whole objects, not single
//     chunks: simpler to state, and a bucket that damages one chunk is
//     suspect anyway), moves a partition's log start past ranges lost at
//     its start, and leaves ranges lost between kept entries as gaps,
//     which the engine's fetch skips (engine/doc.go, Read path).
//
// # Settings
//
// Every flag can also come from a SHALE_* environment variable (the flag
// name in upper case, "-" as "_") or, for agent, from a YAML file given with
// --config whose keys are the flag names; flags win over the environment,
// which wins over the file (newViper). An unknown key in the file is an
// error, not silently ignored.
//
// # Errors
//
// A command that fails prints "shale: <error>" on stderr and exits 1; errors
// say what to do next where there is something to do (an agent that does
// not answer, an unknown topic or group, a bad flag value).
package cli
