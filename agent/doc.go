// Package agent is shale's Kafka protocol server: it listens for Kafka
// clients, decodes their requests with franz-go's kmsg, serves them from the
// storage engine (package engine) and the metastore, and registers the agent
// in etcd under a lease so that other agents and clients can find it.
//
// # Connections
//
// Each connection reads frames of a 4-byte big-endian size and a body. A
// size below the smallest request header or above Config.MaxFrameBytes
// closes the connection before anything is allocated, and a body is read
// into a buffer that grows as bytes arrive, so a client that declares a large
// frame and sends little costs little; the bytes of requests being read and
// handled are bounded across connections by Config.MaxInflightRequestBytes,
// taken as the bytes arrive (a slow client holds at most 8x what it sent:
// the buffer doubles until an eighth of the frame has arrived, then takes
// the whole frame, so a large request costs about 1.25x its size in
// allocations, TestReadBodyAllocs).
// Requests are decoded and handled in
// order by the connection's read loop; a handler may defer its answer
// (Produce waits for durability off the read loop, so a connection can have
// several produces in flight), and the write loop writes answers strictly in
// request order. Response headers are v1 (with a tag section) for flexible
// versions, except ApiVersions, whose response header is always v0. A
// connection idle for Config.IdleTimeout is closed, and so is one whose
// request is not read whole within IdleTimeout (slow-loris). Above
// Config.MaxConnections, new connections are closed at accept.
//
// Record batches as large as a request: a topic's max.message.bytes
// (default 1048588, Kafka's message.max.bytes) is what Produce enforces,
// up to Config.MaxFrameBytes (--max-request-bytes, 100 MiB); a batch larger
// than Fetch's limits is returned whole when it is the first, as Kafka does.
// A large batch is held once: the request's bytes are what the engine
// uploads, and a fetch answer's records are written from the bytes read
// (fetch_write.go). Once the answer to a request of 16 MiB or more, or a
// fetch answer carrying that much, is written, the agent collects garbage
// at once (collectLarge, conn.go) so the next large batch reuses the
// memory: peak RSS grew 1.3x a 100 MiB batch on the agent producing two
// and serving kcat's reads, 1.0x on the agent serving franz-go's (3.9x and
// 3.0x before; SHALE_LARGE_RECORD_MIB=100 TestLargeRecordAcrossAgents).
// Internal topics (__consumer_offsets) are listed but hold no records:
// internal_topics.go.
//
// Close is graceful: no new connection or request is read, the engine seals
// its buffer, and each connection writes the answers of the requests it had
// read (produces once durable) before it closes, bounded by Close's ctx.
//
// # APIs
//
// One file per API, each starting with the versions served and how shale
// differs from Kafka; each registers its key and version range once
// (registry.go), and ApiVersions is built from that registry. Served:
//
//	Produce            v3-v13   ListOffsets           v1-v11
//	Fetch              v4-v18   Metadata              v0-v13
//	ApiVersions        v0-v5    CreateTopics          v0-v7
//	DeleteTopics       v0-v6    InitProducerID        v0-v5
//	OffsetForLeaderEpoch v0-v4  DescribeConfigs       v0-v4
//	AlterConfigs       v0-v2    CreatePartitions      v0-v3
//	IncrementalAlterConfigs v0-v1  DescribeCluster    v0-v2
//	DeleteRecords      v0-v2    ElectLeaders          v0-v2
//	AlterPartitionReassignments v0-v1  ListPartitionReassignments v0
//	FindCoordinator    v0-v6    JoinGroup             v0-v9
//	SyncGroup          v0-v5    Heartbeat             v0-v4
//	LeaveGroup         v0-v5    OffsetCommit          v0-v9
//	OffsetFetch        v0-v9    ListGroups            v0-v5
//	DescribeGroups     v0-v6    DeleteGroups          v0-v3
//	OffsetDelete       v0       ConsumerGroupHeartbeat v0-v1
//	ConsumerGroupDescribe v0-v1
//	SaslHandshake      v0-v1    SaslAuthenticate      v0-v2
//	CreateAcls         v0-v3    DescribeAcls          v0-v3
//	DeleteAcls         v0-v3
//	DescribeUserScramCredentials v0  AlterUserScramCredentials v0
//	AddPartitionsToTxn v0-v5    AddOffsetsToTxn       v0-v4
//	EndTxn             v0-v5    TxnOffsetCommit       v0-v6
//	DescribeTransactions v0     ListTransactions      v0-v2
//	DescribeProducers  v0
//	ShareGroupHeartbeat v1      ShareGroupDescribe    v0-v1
//	ShareFetch         v1-v2    ShareAcknowledge      v1-v2
//	DescribeShareGroupOffsets v0-v1  AlterShareGroupOffsets v0
//	DeleteShareGroupOffsets v0
//	DescribeClientQuotas v0-v1  AlterClientQuotas     v0-v1
//
// # Client quotas
//
// Quotas (KIP-546) are stored in etcd, so every agent describes the same;
// producer_byte_rate and consumer_byte_rate are enforced with Kafka's
// throttle_time_ms and a muted connection (KIP-219). Decision: enforced
// per agent, as Kafka enforces them per broker: each agent meters the
// bytes it takes and gives, so a client spread over N agents may move up
// to N x its rate (dividing by the live agents would starve a client that
// talks to one). client_quotas.go (configuration), quotas.go (enforcement).
//
// Dynamic broker configs (AlterConfigs and IncrementalAlterConfigs of a
// BROKER resource: a live agent's node ID, or "" for the cluster-wide
// defaults) are stored in etcd and described by every agent with Kafka's
// sources (DYNAMIC_BROKER_CONFIG over DYNAMIC_DEFAULT_BROKER_CONFIG).
// Decision: shale accepts only the dynamic configs that mean nothing on it
// (Kerberos, thread pools, cleaner tuning, replication throttles...): they
// are validated by their Kafka type, stored, and have no effect, which
// their documentation says. Static configs, unknown names and the dynamic
// configs that map onto a shale setting (topic defaults such as
// log.retention.ms, TLS, listeners, max.connections) are INVALID_REQUEST
// naming them and where shale takes them. broker_configs.go has the list.
//
// # Security
//
// Config.Listen is a PLAINTEXT listener; Config.Listeners adds SSL, SASL_PLAINTEXT
// and SASL_SSL ones, with certificates re-read when their files change and
// optional client certificates (mTLS, principal User:<CN>) (tls.go). SASL
// offers PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 against SCRAM credentials in
// etcd (and OAUTHBEARER with Kafka's unsecured default validator when
// AuthConfig.OAuthBearerUnsecured is set); a connection on a SASL listener may send nothing but ApiVersions,
// SaslHandshake and SaslAuthenticate before it has authenticated (sasl.go).
// ACLs live in etcd and in every agent's memory, kept fresh by a watch
// (acl.go); when authorization is on (AuthConfig.Authorizer, or any SASL or
// mTLS listener) every request is checked as Kafka checks it
// (acl_enforce.go). Each API declares the permission it needs where it is
// registered (register's last argument: operation and resource type, read
// from the typed request by the accessors of acl_items.go); register panics
// at start-up on an API without one, and TestEveryAPIDeclaresItsPermission
// walks every registered API with and without the declared ACLs.
//
// Produce and Fetch start at the first versions that carry record batch v2;
// a client that can only speak message format v0/v1 has its connection
// closed (old Produce and Fetch responses have no field to carry
// UNSUPPORTED_VERSION) or gets INVALID_RECORD, never a silent misread.
// A topic's compression.type is applied at produce time, as Kafka applies
// it: batches in another codec are recompressed before the engine stores
// them (compression.go).
//
// Share groups (KIP-932, the work queue) are described in share_groups.go:
// membership on the group's coordinator, share-partition states in etcd,
// changed by compare-and-swap from any agent.
//
// Consumer groups (classic protocol, eager and cooperative, static members)
// have one coordinator agent at a time, claimed in etcd under that agent's
// lease (groups.go); membership lives in the coordinator's memory (members
// rejoin after a failover) and committed offsets in etcd, acknowledged only
// once etcd has them. Unlike Kafka, OffsetFetch is answered by any agent.
// A group's protocol type goes to etcd at the JoinGroup that sets it
// (groups/<g>/protocol-type, fenced by the coordinator's lease) and again at
// release, so a group whose coordinator died before releasing it is still
// described and listed as Kafka does: "consumer" once a consumer joined,
// "" for a simple group (offsets committed, no member ever). Groups whose
// members last joined through an agent older than this record, and whose
// coordinator then died, read as "" until a member joins again.
//
// # Transactions
//
// Kafka's transactional protocol (KIP-98, with KIP-890 part 1's
// verification of transactional produces), with no agent special:
//
//   - Each transactional.id has one coordinator agent at a time, claimed in
//     etcd like a group's (txns/<t>/coordinator under the agent's lease)
//     and found with FindCoordinator key type 1. Its state (producer ID,
//     epoch, timeout, phase Empty/Ongoing/PrepareCommit/PrepareAbort/
//     CompleteCommit/CompleteAbort, partitions, groups, start time) is
//     one etcd value, written only under that lease (txn_coord.go).
//   - Ending a transaction makes the decision durable (Prepare*), writes a
//     commit or abort marker (a control batch, segment.ControlBatch) into
//     each of its partitions through the engine's normal write path, so
//     each takes an offset, commits or drops the group offsets
//     TxnOffsetCommit stored as pending, and marks it Complete*. A
//     coordinator that dies midway is replaced by whichever agent the
//     producer reaches next, which first finishes the end; a marker for a
//     partition whose transaction is already closed is dropped at commit
//     time, so markers are never written twice.
//   - EndTxn is answered once the markers are committed, not, as Kafka's
//     coordinator answers, once Prepare* is durable (end_txn.go). Decided
//     on measurements (`go run ./bench -scenarios txn -duration 8s`: 4
//     producers, 64 partitions, a commit every second, on a loaded
//     2-core machine, two runs each). Answering at Prepare* (a prototype,
//     commit 2a3368e, not on main) cut EndTxn p50/p99 from 44-66/161-743
//     ms to 12-47/91-267 ms in dev mode and from 205-229/433-839 ms to
//     7-9/58-210 ms at flush 250 ms, but not a transaction's cycle: the
//     producer's next AddPartitionsToTxn, InitProducerId or Produce v12
//     then gets CONCURRENT_TRANSACTIONS until the markers commit (as in
//     Kafka; clients retry every 20 ms), so its records still wait for
//     the markers' flush. Transactional throughput against plain
//     produce was no better (0.62-0.92 against 0.68-1.22; the machine's
//     noise is that wide), etcd reads per transaction rose from 17-17.7
//     to 20.5-21 (the retries), one transaction failed in the bench
//     (OPERATION_NOT_ATTEMPTED), and TestTxnV2ExactlyOnce (franz-go's
//     GroupTransactSession) stalled at 300 of 400 offsets committed for
//     a minute (not investigated further). And a committed transaction would
//     no longer be readable (read_committed) nor its offsets fetchable
//     when EndTxn returns, which it is now. So shale keeps answering
//     after the markers: a producer that blocks on its commit pays one
//     flush of its topics' latency class (markers go into the class of
//     their topic, shale.flush.ms), and nothing else changes for it.
//   - Per partition, the engine keeps the open transactions in the
//     partition state (their first offsets give the last stable offset)
//     and an aborted-transaction index in etcd (metastore). Fetch with
//     read_committed stops before the last stable offset and lists the
//     aborted transactions of what it returns; ListOffsets read_committed
//     answers the last stable offset as latest.
//   - A transactional produce is checked against the ID's state in etcd:
//     the producer's current epoch, the partition added to the ongoing
//     transaction (produce.go, txn_verify.go). As Kafka checks again at
//     append, the engine checks again at the batch's etcd commit that its
//     transaction (TxnState.StartRevision, which markers carry) has not
//     ended in the partition meanwhile: a batch verified before an abort
//     and committing after the partition's marker is INVALID_TXN_STATE,
//     never a hanging transaction (TestTxnLateBatchRefused).
//   - Transactions older than transaction.timeout.ms (at most 15 minutes)
//     are aborted by their coordinator, bumping the epoch (the producer is
//     fenced, as in Kafka).
//   - A transaction whose coordinator died is finished by the next agent
//     the producer reaches; if the producer never returns, an agent
//     adopts it (the rendezvous winner among the live agents, within
//     about ten seconds) once it is Prepare* or past its timeout.
//   - DescribeTransactions and ListTransactions answer as the
//     coordinator does (describe_transactions.go, list_transactions.go);
//     `shale txn list|describe` uses them.
//   - KIP-890 part 2 is served as Kafka 4 serves it: EndTxn v5 bumps the
//     epoch per transaction (end_txn.go); Produce v12+ and TxnOffsetCommit
//     v5+ add their partition or group to the transaction themselves,
//     from whichever agent answers them, with a write compared on the
//     state's revision (txn_coord.go). Clients use it only when
//     ApiVersions finalizes transaction.version 2, which `shale agent`
//     does by default (--transaction-version 1 keeps them to part 1;
//     Config.TransactionVersion's zero value advertises nothing).
//     DescribeProducers lists each partition's producers from its state
//     in etcd (describe_producers.go). A
//     transactional ID's coordinator keeps it claimed until the agent
//     stops (Kafka expires idle IDs after transactional.id.expiration.ms,
//     7 days).
//
// Every agent serves every partition. Metadata still names a "leader" per
// partition (a hash of topic and partition over the live agents) so clients
// spread their connections, but no agent ever answers
// NOT_LEADER_OR_FOLLOWER. Leader epochs are always 0.
//
// # Errors
//
// A Kafka-level problem is an error code in the response: *kerr.Error values
// from the engine keep their code, a missing topic is
// UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID when named by ID), a deadline
// REQUEST_TIMED_OUT, and anything else UNKNOWN_SERVER_ERROR with a log line.
// A Go error from a handler closes the connection; so do frames kmsg cannot
// decode, API keys it does not know, and versions we do not serve whose
// response has no top-level error code (others get UNSUPPORTED_VERSION).
// Client input never panics the process: a panic in a handler (a bug) is
// recovered, logged with its stack, and closes only that connection.
//
// # Invariants
//
//   - A produce with acks=1 or acks=-1 is answered with success only after
//     the engine reports it durable (in the bucket and indexed in etcd).
//   - Answers on a connection leave in request order, and one connection's
//     produces reach the engine in request order.
//   - The agent holds no state that etcd and the bucket do not: the topic
//     cache expires after a second and is refreshed on a miss; Metadata and
//     admin requests read etcd directly; group membership is rebuilt by
//     clients rejoining; fetch sessions (KIP-227, fetch.go) are rebuilt by
//     clients, who open a new one on FETCH_SESSION_ID_NOT_FOUND.
package agent
