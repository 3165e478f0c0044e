package agent

// ListGroups (key 16): v0-v5.
//
// Each agent lists the groups it coordinates, with their state and
// protocol type as DescribeGroups gives them (a group held with no member
// and no offset does not exist for Kafka and is not listed); a group known
// to etcd (it has committed offsets) that no agent coordinates is listed,
// as Empty, by the agent FindCoordinator would name for it, so a client
// asking every agent (as kadm does) sees each group once. States
// (v4+) and types (v5+: "classic", or "share" for share groups, listed
// with protocol type "share", Stable with members, else Empty) filter as
// in Kafka, case-insensitively. A KIP-848 group this agent coordinates is
// "consumer", in Kafka's states (Empty, Assigning, Reconciling, Stable);
// it stays "consumer" once its members left, released or not, until it is
// deleted or a classic member converts it (its type is recorded in etcd,
// metastore.RecordGroupType).

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.ListGroups, 0, 5, (*Server).handleListGroups, custom(authorizeListGroups, need{kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup}))
}

func (s *Server) handleListGroups(ctx context.Context, _ *reqCtx, req *kmsg.ListGroupsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	match := func(filter []string, v string) bool {
		if len(filter) == 0 {
			return true
		}
		for _, f := range filter {
			if strings.EqualFold(f, v) {
				return true
			}
		}
		return false
	}
	addType := func(name, protocolType, state, typ string) {
		if !match(req.StatesFilter, state) || !match(req.TypesFilter, typ) {
			return
		}
		g := kmsg.NewListGroupsResponseGroup()
		g.Group, g.ProtocolType, g.GroupState, g.GroupType = name, protocolType, state, typ
		resp.Groups = append(resp.Groups, g)
	}
	add := func(name, protocolType, state string) { addType(name, protocolType, state, "classic") }
	listed, err := s.meta.ListGroups(ctx)
	if err != nil {
		resp.ErrorCode = errCode(s.log, "list groups", err)
		return now(resp)
	}
	withOffsets := map[string]bool{}
	for _, l := range listed {
		withOffsets[l.Name] = l.HasOffsets
	}
	shares, err := s.meta.ShareGroups(ctx)
	if err != nil {
		resp.ErrorCode = errCode(s.log, "list share groups", err)
		return now(resp)
	}
	isShare := map[string]bool{}
	for _, name := range shares {
		isShare[name] = true
	}
	mine := map[string]bool{}
	for _, g := range s.groups().owned() {
		g.mu.Lock()
		if isShare[g.name] || g.share != nil {
			state := "Empty"
			if g.share.active() {
				state = "Stable"
			}
			if g.state != stateDead {
				addType(g.name, "share", state, "share")
			}
			mine[g.name] = g.state != stateDead
			g.mu.Unlock()
			continue
		}
		// A group held with no member since its claim exists for Kafka
		// only if it has offsets (describe_groups.go).
		switch {
		case g.cg != nil && g.state != stateDead:
			addType(g.name, "consumer", g.cg.state(), "consumer")
		case g.state != stateDead && (g.state != stateEmpty || g.generation > 0 || withOffsets[g.name]):
			add(g.name, g.protocolType, g.state.String())
		}
		mine[g.name] = g.state != stateDead
		g.mu.Unlock()
	}
	agents := s.liveAgents(ctx)
	self := s.NodeID()
	coordinated := map[string]bool{}
	for _, l := range listed {
		coordinated[l.Name] = l.Coordinator >= 0
		if mine[l.Name] || l.Coordinator >= 0 || !l.HasOffsets || isShare[l.Name] {
			continue
		}
		if win, ok := rendezvous(agents, l.Name); ok && win.NodeID == self {
			if metastore.IsConsumerType(l.Type) {
				addType(l.Name, "consumer", "Empty", "consumer")
				continue
			}
			add(l.Name, l.ProtocolType, "Empty") // as recorded: "" if none (describe_groups.go)
		}
	}
	for _, name := range shares {
		if mine[name] || coordinated[name] {
			continue
		}
		if win, ok := rendezvous(agents, name); ok && win.NodeID == self {
			addType(name, "share", "Empty", "share")
		}
	}
	return now(resp)
}
