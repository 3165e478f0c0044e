package agent

// OffsetCommit (key 8): v0-v9.
//
// A commit is answered only after etcd has it (metastore.CommitGroupOffsets,
// fenced by this agent's coordinator lease). Fencing follows Kafka's classic
// groups: a commit with generation -1 and no member ID ("simple" commit, as
// kadm or kcat send; every v0 commit) is accepted only while the group has
// no members; otherwise the member must be known (UNKNOWN_MEMBER_ID), not
// fenced by a newer static incarnation (FENCED_INSTANCE_ID), of the current
// generation (ILLEGAL_GENERATION), and the group must not be waiting for
// the leader's assignment (REBALANCE_IN_PROGRESS); members may commit while
// the group prepares a rebalance, as they revoke partitions. Per partition:
// an unknown topic or partition is UNKNOWN_TOPIC_OR_PARTITION, metadata
// over 4096 bytes OFFSET_METADATA_TOO_LARGE. The retention time (v2-v4) is
// ignored: offsets expire per the agents' --group-offsets-retention
// (groups.go). v10 (topic IDs) is not served.
//
// A consumer-protocol (KIP-848) group with active members takes commits
// of v9+ only (UNSUPPORTED_VERSION below), from a known member
// (UNKNOWN_MEMBER_ID) whose epoch in the request is not ahead of its
// current one; per partition, the member must own the partition (or be
// revoking it) and the request's epoch must not be older than the one at
// which the member got it (KIP-1251), STALE_MEMBER_EPOCH otherwise. A
// commit with generation -1 and no member ID is taken while the group has
// no active member.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.OffsetCommit, 0, 9, (*Server).handleOffsetCommit, custom(authorizeOffsetCommit, need{kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup}, need{kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic}))
}

func (s *Server) handleOffsetCommit(ctx context.Context, _ *reqCtx, req *kmsg.OffsetCommitRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	codes := make([][]int16, len(req.Topics))
	for i, t := range req.Topics {
		codes[i] = make([]int16, len(t.Partitions))
	}
	all := func(code int16) {
		for i := range codes {
			for j := range codes[i] {
				if codes[i][j] == 0 {
					codes[i][j] = code
				}
			}
		}
	}
	if code := s.commitOffsets(ctx, req, codes); code != 0 {
		all(code)
	}
	for i, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for j, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, codes[i][j]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return now(resp)
}

// commitOffsets validates and writes; per-partition problems go in codes,
// a problem with the whole request is returned.
func (s *Server) commitOffsets(ctx context.Context, req *kmsg.OffsetCommitRequest, codes [][]int16) int16 {
	g, code := s.groups().lock(ctx, req.Group)
	if code != 0 {
		return code
	}
	defer g.mu.Unlock()
	simple := req.Version == 0 || (req.Generation < 0 && req.MemberID == "")
	var cm *cmember
	switch {
	case g.cg != nil && simple && g.cg.active() == 0:
	case g.cg != nil:
		m, code := g.cg.commitCheck(req.MemberID, req.Generation)
		if code != 0 {
			return code
		}
		if req.Version < 9 && m.classic == nil {
			return kerr.UnsupportedVersion.Code
		}
		g.touchConsumer(m)
		cm = m
	case simple:
		if len(g.members) > 0 {
			return kerr.UnknownMemberID.Code
		}
	default:
		m, code := g.fenced(req.MemberID, req.InstanceID)
		if code != 0 {
			return code
		}
		if req.Generation != g.generation {
			return kerr.IllegalGeneration.Code
		}
		if g.state == stateCompleting {
			return kerr.RebalanceInProgress.Code
		}
		g.touch(m)
	}
	now := time.Now().UnixMilli()
	var offs []metastore.GroupOffset
	for i, t := range req.Topics {
		tp, terr := s.topics.get(ctx, t.Topic)
		for j, p := range t.Partitions {
			switch {
			case terr != nil:
				codes[i][j] = kerr.UnknownTopicOrPartition.Code
				if !errors.Is(terr, metastore.ErrTopicNotFound) && !errors.Is(terr, metastore.ErrInvalid) {
					codes[i][j] = errCode(s.log, "offset commit: get topic", terr)
				}
			case p.Partition < 0 || p.Partition >= tp.Partitions:
				if !s.refreshPartitions(ctx, &tp, p.Partition) {
					codes[i][j] = kerr.UnknownTopicOrPartition.Code
				}
			}
			if codes[i][j] == 0 && cm != nil {
				codes[i][j] = cm.partitionCommitCode(tid(tp.ID), p.Partition, req.Generation)
			}
			if codes[i][j] != 0 {
				continue
			}
			md := ""
			if p.Metadata != nil {
				md = *p.Metadata
			}
			if len(md) > maxOffsetMetadata {
				codes[i][j] = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			offs = append(offs, metastore.GroupOffset{Topic: t.Topic, Partition: p.Partition, TopicID: tp.ID,
				Offset: p.Offset, LeaderEpoch: p.LeaderEpoch, Metadata: md, CommitMs: now})
		}
	}
	if len(offs) == 0 {
		return 0
	}
	if err := s.meta.CommitGroupOffsets(ctx, g.name, g.lease, offs); err != nil {
		code := groupErr(s, "offset commit", err)
		if code == kerr.NotCoordinator.Code {
			g.mu.Unlock()
			s.groups().drop(g, code)
			g.mu.Lock()
		}
		return code
	}
	return 0
}
