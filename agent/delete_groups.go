package agent

// DeleteGroups (key 42): v0-v3.
//
// As in Kafka: only a group without members can be deleted
// (NON_EMPTY_GROUP); a group with no members and no committed offsets is
// GROUP_ID_NOT_FOUND. Deleting removes the group's offsets and its
// coordinator claim from etcd in one fenced transaction, then forgets the
// group here (also after an error, unless reading the coordinator key back
// shows it still held: etcd may have applied the delete). A share group
// (share_groups.go) must have no member either; its record and
// share-partition states are deleted first.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.DeleteGroups, 0, 3, (*Server).handleDeleteGroups, onGroups(kmsg.ACLOperationDelete, deleteGroupsGroups))
}

func (s *Server) handleDeleteGroups(ctx context.Context, _ *reqCtx, req *kmsg.DeleteGroupsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		r := kmsg.NewDeleteGroupsResponseGroup()
		r.Group = name
		r.ErrorCode = s.deleteGroup(ctx, name)
		resp.Groups = append(resp.Groups, r)
	}
	return now(resp)
}

func (s *Server) deleteGroup(ctx context.Context, name string) int16 {
	co := s.groups()
	g, code := co.lock(ctx, name)
	if code != 0 {
		return code
	}
	if len(g.members) > 0 || g.consumerMembersLeft() {
		g.mu.Unlock()
		return kerr.NonEmptyGroup.Code
	}
	wasShare, code := s.deleteShareGroup(ctx, g)
	if code != 0 {
		g.mu.Unlock()
		return code
	}
	offs, err := s.meta.FetchGroupOffsets(ctx, name)
	if err != nil {
		g.mu.Unlock()
		return errCode(s.log, "delete group", err)
	}
	// The group leaves the registry with g.mu held, as in an idle release
	// (maybeRelease): a request that found it waits, sees it Dead and
	// claims afresh, and a claim that overlapped the delete is repeated.
	err = s.groupMeta(groupOpDelete, name, func() error { return s.meta.DeleteGroup(ctx, name, g.lease) })
	if err != nil {
		code := groupErr(s, "delete group", err)
		// etcd may have applied the delete all the same (a timeout
		// after the commit): keep the group only if its key is still
		// ours.
		if code == kerr.NotCoordinator.Code || !co.stillHeld(g) {
			co.forgetLocked(g, kerr.NotCoordinator.Code)
		}
		g.mu.Unlock()
		return code
	}
	co.forgetLocked(g, kerr.NotCoordinator.Code)
	gen := g.generation
	g.mu.Unlock()
	if len(offs) == 0 && gen == 0 && !wasShare {
		return kerr.GroupIDNotFound.Code
	}
	return 0
}
