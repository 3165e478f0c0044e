package agent

// DescribeGroups (key 15): v0-v6.
//
// The coordinator describes a group from memory: state, protocol, and each
// member with its metadata and assignment. A group another agent
// coordinates is NOT_COORDINATOR. A group nobody coordinates is described
// without claiming it: Empty if it has committed offsets, otherwise Dead
// (as Kafka describes an unknown group). Authorized operations are not
// computed (shale has no ACLs): -2147483648, "not requested".

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.DescribeGroups, 0, 6, (*Server).handleDescribeGroups, onGroups(kmsg.ACLOperationDescribe, describeGroupsGroups))
}

func (s *Server) handleDescribeGroups(ctx context.Context, _ *reqCtx, req *kmsg.DescribeGroupsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		resp.Groups = append(resp.Groups, s.describeGroup(ctx, name))
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
	if g := s.groups().lookup(name); g != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.state != stateDead {
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
	holder, err := s.meta.GroupCoordinator(ctx, name)
	if err != nil {
		d.ErrorCode = errCode(s.log, "describe group", err)
		return d
	}
	if holder >= 0 {
		d.ErrorCode = kerr.NotCoordinator.Code
		return d
	}
	offs, err := s.meta.FetchGroupOffsets(ctx, name)
	if err != nil {
		d.ErrorCode = errCode(s.log, "describe group", err)
		return d
	}
	d.State = "Dead"
	if len(offs) > 0 {
		d.State, d.ProtocolType = "Empty", "consumer"
	}
	return d
}
