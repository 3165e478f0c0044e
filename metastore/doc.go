// Package metastore is shale's typed API over etcd: topics and their configs,
// per-partition sequencing state (next offset, log start offset, idempotent
// producer state), the offset-to-object index, producer ID allocation and
// agent membership. It also runs the embedded etcd used by dev mode and tests
// (StartEmbedded).
//
// Nothing else in shale builds etcd keys: all key encoding lives in keys.go.
//
// Topic configs are stored as given (Topic.Configs); the names and defaults
// of the ones the lifecycle jobs apply, retention.ms and retention.bytes,
// and how to read them (RetentionOf) are in topic_configs.go, next to them,
// so the agent (DescribeConfigs) and the retention job share one default.
//
// # Key schema
//
// Every key lives under the namespace (New's argument, e.g. "/shale") plus
// "/". <id> is a topic ID as 32 lower-case hex digits, <p> a partition as 10
// zero-padded decimal digits, <offset> an offset as 20 zero-padded decimal
// digits, <node> a node ID as 10 zero-padded digits. Zero padding makes
// etcd's byte order equal numeric order, so ranges are offset ranges. Values
// are JSON (readable with etcdctl) unless noted.
//
//	<ns>/topics/<name>                       Topic            no lease
//	<ns>/topic-ids/<id>                      <name> (raw)     no lease
//	<ns>/partitions/<id>/<p>                 PartitionState   absent = {next 0, start 0}
//	<ns>/index/<id>/<p>/<base offset>        IndexEntry       one per committed chunk
//	<ns>/topic-stats/<id>                    CompressionStats bytes recompressed into compression.type: produced, stored
//	<ns>/cleaner/<id>/<p>                    CleanerState key compaction's checkpoint and recent passes (JSON)
//	<ns>/iceberg/<id>                        TablePointer     the topic's Iceberg table: current metadata file and version (CAS'd by the iceberg job)
//	<ns>/producer-id                         next free producer ID, decimal
//	<ns>/cluster                             ClusterInfo      the bucket URL, written once by the first agent
//	<ns>/agents/<node>                       AgentInfo        under the agent's lease
//	<ns>/jobs/<job>/<lease id>               holder (raw)     election candidate, under its lease
//	<ns>/groups/<g>/coordinator              <node> (decimal) under the coordinator's agent lease
//	<ns>/groups/<g>/empty-since              Unix ms (decimal) the group became empty; set at release (or by expiry), deleted by a claim
//	<ns>/groups/<g>/members-session          MembersRecord    a classic group had members under the coordinator that holds or held it: the largest session timeout they joined with (ms, decimal), then a line per member ID (none from older agents); rewritten (fenced) when its members change, deleted by the release, kept by claims
//	<ns>/groups/<g>/offsets/<topic>/<p>      GroupOffset      one per committed partition
//	<ns>/groups/<g>/protocol-type            raw string       protocol type: set by the JoinGroup that sets it (fenced), rewritten at release ("" for a simple group); kept by claims, deleted with the group
//	<ns>/groups/<g>/type                     raw string       the group is a KIP-848 consumer group: "consumer-active" and its member IDs a line each, rewritten (fenced) at each join and leave, "consumer" once released empty; deleted when a classic member converts it, and with the group; kept by claims
//	<ns>/share-groups/<g>/group              ShareGroupRecord the group is a KIP-932 share group (created by its first member or AlterShareGroupOffsets)
//	<ns>/share-groups/<g>/state/<id>/<p>     share.Partition  one share-partition's state (binary, package share's encoding)
//	<ns>/group-configs/<g>                   map[string]string a group's configs (GROUP config resources)
//	<ns>/broker-configs/<node>               map[string]string dynamic broker configs of one node ID (BROKER resource "<node>"), validated by the agent, written by compare-and-swap
//	<ns>/broker-configs/default              map[string]string cluster-wide dynamic broker defaults (BROKER resource "")
//	<ns>/users/<u>/<mechanism>               auth.Credential  SCRAM salt, iterations, StoredKey, ServerKey
//	<ns>/acls/<digest>                       auth.ACL         digest: sha256 of the binding, 32 hex digits
//	<ns>/client-quotas/<entity>              ClientQuota      a quota entity and its values (KIP-546); <entity>: QuotaEntityKey, e.g. "client-id=,user=alice"
//	<ns>/aborted/<id>/<p>/<last offset>      AbortedTxn       one per aborted transaction: producer, first offset; the key is its abort marker's offset
//	<ns>/txns/<t>/coordinator                <node> (decimal) under the transaction coordinator's agent lease
//	<ns>/txns/<t>/state                      TxnState         producer ID, epoch, timeout, phase, partitions (with topic IDs), groups, start time
//	<ns>/txn-offsets/<g>/<pid>/<topic>/<p>   GroupOffset      a TxnOffsetCommit offset pending its transaction's end
//	<ns>/manifest-pins/<lease hex>           RFC 3339 time    a recovery manifest being written, under a lease of its own (PinManifest)
//	<ns>/manifest-last                       ManifestRecord   the newest manifest written (key, revision, time, size), for status
//	<ns>/recovering                          manifest key     a Restore in progress; deleted when it is done
//
// <g> is the group ID path-escaped (url.PathEscape), so any group ID is one
// key component; so are <u>, a user name, and <t>, a transactional ID;
// <pid> is a producer ID in decimal. No password is ever stored: a
// credential holds only what a SCRAM server needs (see package auth). Producer idempotence state is part of the PartitionState
// value, so it commits atomically with the offsets it describes.
//
// # Invariants
//
//   - A topic exists iff both topics/<name> and topic-ids/<id> exist; they are
//     created and deleted together in one transaction. DeleteTopic removes, in
//     that same transaction, every key under partitions/<id>/ and index/<id>/,
//     and topic-stats/<id>.
//     Objects are left for garbage collection. A re-created topic gets a new
//     ID, so no old key or object is ever read as its data.
//   - Offsets are assigned by CommitChunks and by nothing else. A commit is
//     applied only if the partition state's ModRevision is still the one the
//     caller read (ExpectedRevision; 0 = absent) and the topic still exists,
//     so two writers can never both extend a partition from the same state,
//     and a commit racing a DeleteTopic cannot resurrect the topic's keys.
//   - Within a commit, entries are ordered and dense, and New.NextOffset is
//     the last entry's LastOffset+1. Together with the compare this keeps
//     each partition's index dense from its first entry to NextOffset-1, with
//     no overlap (given the caller builds the first entry at the read state's
//     NextOffset).
//   - Index entries and states are written in the same transaction, so a
//     reader seeing NextOffset = n can find every entry below n.
//   - Stored values always pass Validate; decoders re-check, so a corrupt
//     value surfaces as ErrCorruptValue naming its key, never as a panic or
//     a silently wrong offset.
//   - An index entry is a chunk entry (a byte range of a flushed object) or
//     a segment entry (a whole compacted segment; Pos/Size locate its
//     footer). Either way CRC is the CRC-32C of the entry's [Pos, Pos+Size).
//   - ReplaceEntries (compaction) swaps a run of entries for one covering
//     the same offsets, comparing that the run's first and last keys exist
//     and no key in the run changed since the caller's read revision; it
//     never touches the partition state, so it never conflicts with
//     produce commits. TruncateBefore (retention, DeleteRecords) advances
//     LogStartOffset and deletes the entries wholly below it, comparing the
//     state revision and the deleted keys. Both are constant-size
//     transactions (range deletes and range compares).
//   - Lifecycle jobs elect one leader per job (CampaignJob:
//     concurrency.Election under jobs/<job>); a leader whose process dies
//     loses it when its lease expires.
//   - Agent keys are bound to a lease; an agent that dies disappears after
//     its TTL. Node IDs are claimed with CreateRevision == 0, so two live
//     agents never share one.
//   - A group has at most one coordinator: groups/<g>/coordinator is created
//     with CreateRevision == 0 under the claiming agent's lease, so it
//     vanishes when that agent dies. Offset commits and group deletions
//     compare the key's lease with the caller's (ErrNotCoordinator when it
//     differs), so an agent that lost the claim can never write a group's
//     offsets.
//   - Committed offsets expire (ExpireGroupOffsets, the group-expiry
//     lifecycle job; Kafka's offsets.retention.minutes, default 7 days):
//     a group goes, every key at once, when it has no coordinator key and
//     both its newest commit (CommitMs) and its empty-since record are
//     older than the retention. A coordinator releases (deletes) the key of
//     a group that stayed without members for a while, writing
//     empty-since if the group has offsets (ReleaseGroupCoordinator); a
//     claim deletes empty-since (ClaimGroup), since the group may get
//     members. The release also records the group's protocol type
//     (ReleaseGroup) beside empty-since, for DescribeGroups and ListGroups
//     to answer as Kafka for a group nobody holds; the claim takes it too.
//     Expiry ignores it (it goes with the group's other keys); a release
//     without it (ReleaseGroupCoordinator, or older agents) leaves none. A group without coordinator key nor empty-since lost its
//     coordinator without a release, maybe with live members about to
//     rejoin elsewhere: expiry does not delete it but writes empty-since
//     (now), counting the retention from there. The deleting transaction
//     compares the coordinator key's CreateRevision with 0, the
//     empty-since record's ModRevision with the one read, and the
//     ModRevision of every key of the group with the read revision, so a
//     group claimed or committed to meanwhile is kept.
//   - The cluster record is created once (CreateRevision == 0) and never
//     changed: every agent compares its bucket with it at start and refuses
//     another, so one index never points into two buckets. Tools that read
//     etcd find the bucket there.
//   - Transactions (agent/txn_coord.go has the protocol). A partition's
//     open transactions live in its PartitionState (Txns: producer ID to
//     the first offset of its ongoing transaction), so they commit
//     atomically with the offsets they describe; LastStableOffset is the
//     smallest, else NextOffset. Each producer's entry there keeps the
//     last transaction (TxnState.StartRevision) whose marker reached the
//     partition (ProducerState.EndedTxn): batches of that transaction still
//     in flight are refused at commit. An abort marker's commit adds its
//     AbortedTxn (ChunkCommit.Aborted) in the same transaction; retention
//     and DeleteRecords (TruncateBefore) delete those ending below the new
//     log start in theirs, and DeleteTopic the topic's whole range. A
//     transactional ID has at most one coordinator (ClaimTxnCoordinator:
//     CreateRevision == 0, under the agent's lease); its state is written
//     only with the coordinator key's lease compared and the state's
//     ModRevision compared (PutTxnState: ErrNotCoordinator,
//     ErrConflict). Pending offsets are written only while the state is
//     at the revision the writer read Ongoing (PutTxnOffsets), and leave
//     in the same transactions that make them committed offsets, fenced
//     by the coordinator key (FinishTxnOffsets), so finishing twice
//     commits each once.
//   - A share-partition state is written only by compare-and-swap on its
//     ModRevision, and only while its group's record exists
//     (PutShareState: ErrConflict, ErrNotShareGroup), so two agents
//     acquiring from one share-partition at once never both succeed from
//     the same state, and a deleted share group is not resurrected by a
//     late write. One write carries every acknowledgement and acquisition
//     of one request for that partition.
//   - Producer IDs come from CAS increments of one counter, so they are
//     unique across agents and restarts (>= FirstProducerID, not dense).
//
// # Snapshots (recovery manifests)
//
// Snapshot reads every key of the namespace that is not bound to a lease,
// at one etcd revision (paged), except manifest-last and recovering: that
// is the state nothing else can rebuild, and what the manifest job writes
// to the bucket (package manifest). A new kind of key is covered without
// a change here, unless it is leased (then its owner must rebuild it).
// Restore writes such a snapshot back into a namespace, in transactions
// within --max-txn-ops and the request size, under the recovering marker
// (so a restore killed midway is resumed by running it again with the
// same source), and raises the producer ID counter by
// RestoreGapProducerIDs so that IDs handed out after the snapshot are not
// handed out again. Values are written as they were; revisions are new,
// which is harmless: every compare-and-swap reads its revision first.
// PinManifest/ManifestPinned let garbage collection hold off while a
// manifest is written (see package lifecycle).
//
// # Transaction size
//
// etcd caps the operations (and, separately, the compares) of one
// transaction at --max-txn-ops (DefaultMaxTxnOps = 128 on a stock server,
// and on the embedded one of `shale agent --dev`) and a request at
// --max-request-bytes (1.5 MiB). Callers splitting a
// large commit add up TxnOps per ChunkCommit; every ChunkCommit is atomic on
// its own either way.
//
// # Errors
//
// Sentinels (check with errors.Is; returned errors wrap them with the
// operation and key):
//
//   - ErrTopicExists: CreateTopic on a taken name.
//   - ErrTopicNotFound: no such topic; also wrapped (with ErrConflict) by
//     CommitChunks when a topic in the commit was deleted, so retry loops
//     can stop.
//   - ErrConflict: a compare failed (a concurrent writer won, or a CAS loop
//     gave up). Re-read, recompute, retry.
//   - ErrInvalid: the arguments break a rule (topic name, partition count,
//     non-dense entries, ...). Retrying does not help.
//   - ErrCorruptValue: a stored value or key fails to decode or validate.
//   - ErrNotCoordinator: a group or transactional ID write by an agent
//     that does not hold its coordinator key under the lease it names.
//   - ErrNodeIDInUse: RegisterAgent with an explicit node ID held by a live agent.
//   - ErrNoClusterRecord: no agent has recorded the cluster's bucket yet.
//   - ErrRestoreBusy: Restore on a namespace whose recovering marker names
//     another source.
//   - ErrPartitionMissing: for callers; metastore itself does not check a
//     partition number against the topic's count.
//
// Errors from etcd itself (unavailable, context deadline, too many
// operations) are wrapped unchanged.
//
// # Watches
//
// WatchStates and WatchIndex deliver changes in revision order on a channel
// that closes when the context ends. If etcd can no longer resume a watch
// (it compacted the revisions needed), the watch restarts from the current
// revision and sends an event with Resync set: caches must be reloaded.
package metastore
