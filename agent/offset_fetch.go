package agent

// OffsetFetch (key 9): v0-v9, including several groups per request (v8+).
//
// Unlike Kafka, any agent answers, coordinator or not: committed offsets
// live in etcd and are read with a linearizable read, so every
// acknowledged commit is seen whichever agent took it. A partition without
// a committed offset (or whose topic was deleted and re-created since the
// commit) reads as offset -1 with no error, as in Kafka. No topics (v2+)
// means every committed partition. With RequireStable (v7+), a partition
// with a transactional offset still pending (TxnOffsetCommit in a
// transaction not yet ended) is UNSTABLE_OFFSET_COMMIT, which clients
// retry (KIP-447). The member fields of v9 (KIP-848) are checked when
// this agent coordinates the group and it is a consumer-protocol group: an
// unknown member is UNKNOWN_MEMBER_ID, another epoch than the member's
// STALE_MEMBER_EPOCH; a request without a member ID and a negative epoch
// is an admin's, not checked. Elsewhere (classic groups, or a group this
// agent does not coordinate) they are ignored. v10 (topic IDs) is not
// served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.OffsetFetch, 0, 9, (*Server).handleOffsetFetch, custom(authorizeOffsetFetch, need{kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup}, need{kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic}))
}

// fetchedPartition is one partition of an OffsetFetch answer.
type fetchedPartition struct {
	partition int32
	offset    int64
	epoch     int32
	metadata  string
	code      int16
}

type fetchedTopic struct {
	topic      string
	partitions []fetchedPartition
}

func (s *Server) handleOffsetFetch(ctx context.Context, _ *reqCtx, req *kmsg.OffsetFetchRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version < 8 {
		var want map[string][]int32
		if req.Topics != nil {
			want = map[string][]int32{}
			for _, t := range req.Topics {
				want[t.Topic] = append(want[t.Topic], t.Partitions...)
			}
		}
		topics, code := s.fetchOffsets(ctx, req.Group, want, topicOrder(req.Topics), req.RequireStable)
		resp.ErrorCode = code
		for _, t := range topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.topic
			for _, p := range t.partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p.partition, p.offset, p.epoch, p.code
				md := p.metadata
				rp.Metadata = &md
				if code != 0 && req.Version < 2 {
					rp.ErrorCode = code
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return now(resp)
	}
	for _, rg := range req.Groups {
		var want map[string][]int32
		var order []string
		if rg.Topics != nil {
			want = map[string][]int32{}
			for _, t := range rg.Topics {
				if _, seen := want[t.Topic]; !seen {
					order = append(order, t.Topic)
				}
				want[t.Topic] = append(want[t.Topic], t.Partitions...)
			}
		}
		var topics []fetchedTopic
		code := s.fetchMemberCheck(rg)
		if code == 0 {
			topics, code = s.fetchOffsets(ctx, rg.Group, want, order, req.RequireStable)
		}
		og := kmsg.NewOffsetFetchResponseGroup()
		og.Group, og.ErrorCode = rg.Group, code
		for _, t := range topics {
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic = t.topic
			for _, p := range t.partitions {
				rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p.partition, p.offset, p.epoch, p.code
				md := p.metadata
				rp.Metadata = &md
				rt.Partitions = append(rt.Partitions, rp)
			}
			og.Topics = append(og.Topics, rt)
		}
		resp.Groups = append(resp.Groups, og)
	}
	return now(resp)
}

func topicOrder(ts []kmsg.OffsetFetchRequestTopic) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range ts {
		if !seen[t.Topic] {
			seen[t.Topic] = true
			out = append(out, t.Topic)
		}
	}
	return out
}

// fetchOffsets reads a group's committed offsets from etcd. want nil means
// every committed partition; otherwise the named partitions, in order, -1
// where nothing is committed.
func (s *Server) fetchOffsets(ctx context.Context, group string, want map[string][]int32, order []string, stable bool) ([]fetchedTopic, int16) {
	var pending map[string]map[int32]bool
	offs, err := s.meta.FetchGroupOffsets(ctx, group)
	if err == nil && stable {
		pending, err = s.meta.PendingTxnOffsets(ctx, group)
	}
	if err != nil {
		code := errCode(s.log, "offset fetch", err)
		var out []fetchedTopic
		for _, t := range order {
			ft := fetchedTopic{topic: t}
			for _, p := range want[t] {
				ft.partitions = append(ft.partitions, fetchedPartition{partition: p, offset: -1, epoch: -1, code: code})
			}
			out = append(out, ft)
		}
		return out, code
	}
	type tp struct {
		t string
		p int32
	}
	have := map[tp]metastore.GroupOffset{}
	var allOrder []string
	for _, o := range offs {
		if t, err := s.topics.get(ctx, o.Topic); err != nil || t.ID != o.TopicID {
			continue // topic gone or re-created: the offset is not its
		}
		if len(allOrder) == 0 || allOrder[len(allOrder)-1] != o.Topic {
			allOrder = append(allOrder, o.Topic)
		}
		have[tp{o.Topic, o.Partition}] = o
	}
	if want == nil {
		want = map[string][]int32{}
		for _, o := range offs {
			if _, ok := have[tp{o.Topic, o.Partition}]; ok {
				want[o.Topic] = append(want[o.Topic], o.Partition)
			}
		}
		order = allOrder
	}
	out := make([]fetchedTopic, 0, len(order))
	for _, t := range order {
		ft := fetchedTopic{topic: t}
		for _, p := range want[t] {
			fp := fetchedPartition{partition: p, offset: -1, epoch: -1}
			if o, ok := have[tp{t, p}]; ok {
				fp.offset, fp.epoch, fp.metadata = o.Offset, o.LeaderEpoch, o.Metadata
			}
			if pending[t][p] {
				fp.offset, fp.epoch, fp.metadata, fp.code = -1, -1, "", kerr.UnstableOffsetCommit.Code
			}
			ft.partitions = append(ft.partitions, fp)
		}
		out = append(out, ft)
	}
	return out, 0
}

// fetchMemberCheck checks a v9 group's member fields against the
// consumer-protocol group this agent coordinates, if it does.
func (s *Server) fetchMemberCheck(rg kmsg.OffsetFetchRequestGroup) int16 {
	if rg.MemberID == nil && rg.MemberEpoch < 0 {
		return 0
	}
	g := s.groups().lookup(rg.Group)
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cg == nil || g.state == stateDead {
		return 0
	}
	if rg.MemberID == nil {
		return kerr.UnknownMemberID.Code
	}
	m := g.cg.members[*rg.MemberID]
	if m == nil || m.epoch == -2 {
		return kerr.UnknownMemberID.Code
	}
	if rg.MemberEpoch != m.epoch {
		if m.classic != nil {
			return kerr.IllegalGeneration.Code
		}
		return kerr.StaleMemberEpoch.Code
	}
	return 0
}
