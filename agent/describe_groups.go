package agent

// DescribeGroups (key 15): v0-v6.
//
// The coordinator describes a group from memory: state, protocol type,
// protocol, and each member with its metadata and assignment. A group
// another agent coordinates is NOT_COORDINATOR. States and protocol types
// are Kafka's:
//   - a group with no member and no committed offset is Dead with no
//     protocol type, as Kafka describes an unknown group, even when an
//     agent holds it (FindCoordinator claims groups);
//   - a group whose members all left is Empty and keeps its protocol type
//     ("consumer");
//   - a group made only by committing offsets (a "simple" group of tools)
//     is Empty with no protocol type, as long as no member joined it.
// A coordinator that releases an idle group (after 5 minutes without
// members) records its protocol type in etcd beside its empty-since record
// (metastore.ReleaseGroup), as Kafka keeps it in its log; the next claim
// takes it back into the group. A group nobody coordinates is described
// without claiming it: Empty with the recorded protocol type if it has
// committed offsets ("" for a simple group), else Dead. Only a group whose
// coordinator died without a release has no record: it is shown as
// "consumer", the likelier guess (a group claimed with no record and no
// member since is shown with none, as a simple group).
// A KIP-848 consumer group is described as Kafka 4 does for old admin
// clients: protocol type "consumer", protocol the server assignor, its
// consumer-group state, and each member's subscription and current
// assignment encoded as the classic consumer protocol's metadata and
// assignment.
// Authorized operations (v3+, when asked) are computed from the ACLs
// (authorized_ops.go).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.DescribeGroups, 0, 6, (*Server).handleDescribeGroups, onGroups(kmsg.ACLOperationDescribe, describeGroupsGroups))
}

func (s *Server) handleDescribeGroups(ctx context.Context, rc *reqCtx, req *kmsg.DescribeGroupsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	w := s.who(rc)
	for _, name := range req.Groups {
		d := s.describeGroup(ctx, name)
		if d.ErrorCode == 0 {
			d.AuthorizedOperations = w.authorizedOpsIf(req.IncludeAuthorizedOperations, kmsg.ACLResourceTypeGroup, name)
		}
		resp.Groups = append(resp.Groups, d)
	}
	return now(resp)
}

func (s *Server) describeGroup(ctx context.Context, name string) kmsg.DescribeGroupsResponseGroup {
	d := kmsg.NewDescribeGroupsResponseGroup()
	d.Group, d.AuthorizedOperations = name, -2147483648
	if name == "" {
		d.ErrorCode = kerr.InvalidGroupID.Code
		return d
	}
	g := s.groups().lookup(name)
	if g != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.cg != nil && g.state != stateDead {
			return g.describeConsumer(d)
		}
		// Empty with no member since the claim: described by its offsets.
		if g.state != stateDead && (g.state != stateEmpty || g.generation > 0) {
			d.State, d.ProtocolType = g.state.String(), g.protocolType
			if g.state == stateStable || g.state == stateCompleting {
				d.Protocol = g.protocol
			}
			for _, m := range g.sortedMembers() {
				dm := kmsg.NewDescribeGroupsResponseGroupMember()
				dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
				if g.state == stateStable {
					dm.ProtocolMetadata, dm.MemberAssignment = m.metadata(g.protocol), m.assignment
				}
				d.Members = append(d.Members, dm)
			}
			return d
		}
	}
	held := g != nil && g.state != stateDead
	if !held {
		holder, err := s.meta.GroupCoordinator(ctx, name)
		if err != nil {
			d.ErrorCode = errCode(s.log, "describe group", err)
			return d
		}
		if holder >= 0 {
			d.ErrorCode = kerr.NotCoordinator.Code
			return d
		}
	}
	offs, err := s.meta.FetchGroupOffsets(ctx, name)
	if err != nil {
		d.ErrorCode = errCode(s.log, "describe group", err)
		return d
	}
	d.State = "Dead"
	switch {
	case len(offs) > 0 && held:
		d.State, d.ProtocolType = "Empty", g.protocolType // as the claim took it: "" if none
	case len(offs) > 0:
		// As its last JoinGroup or release recorded it; none (""): no
		// member ever joined, a simple group whose coordinator died.
		pt, _, err := s.meta.GroupProtocolType(ctx, name)
		if err != nil {
			d.State, d.ErrorCode = "", errCode(s.log, "describe group", err)
			return d
		}
		d.State, d.ProtocolType = "Empty", pt
	}
	return d
}
