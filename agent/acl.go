package agent

// CreateAcls (key 30), DescribeAcls (key 29), DeleteAcls (key 31): v0-v3.
//
// ACLs are stored in etcd (metastore/auth.go), one key per binding, and
// every agent keeps them in memory, reloaded through an etcd watch, so a
// change made through one agent applies on all within a moment; the agent
// that made it reloads before answering, so it applies there at once. Creating
// and deleting needs ALTER on the cluster, describing DESCRIBE on the
// cluster (when authorization is on; when it is off anyone may manage
// ACLs, which then apply once it is turned on). Resource types topic,
// group, cluster, transactional ID, delegation token and user are stored;
// shale enforces topic, group and cluster ones (acl_enforce.go).
// Patterns: literal (name "*" = all) and prefixed, as in Kafka; v0
// requests are literal.

import (
	"context"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/auth"
)

func init() {
	register(kmsg.CreateACLs, 0, 3, (*Server).handleCreateACLs, inHandler[*kmsg.CreateACLsRequest](kmsg.ACLOperationAlter, kmsg.ACLResourceTypeCluster))
	register(kmsg.DescribeACLs, 0, 3, (*Server).handleDescribeACLs, inHandler[*kmsg.DescribeACLsRequest](kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeCluster))
	register(kmsg.DeleteACLs, 0, 3, (*Server).handleDeleteACLs, inHandler[*kmsg.DeleteACLsRequest](kmsg.ACLOperationAlter, kmsg.ACLResourceTypeCluster))
}

// who is the principal and host of a request, with the ACLs to check.
type who struct {
	z         *auth.Authorizer // nil: authorization off, everything allowed
	principal string
	host      string
}

func (s *Server) who(rc *reqCtx) who {
	if !s.sec.enabled || rc == nil || rc.conn == nil {
		return who{}
	}
	w := who{z: s.sec.authz.Load(), principal: rc.conn.auth.principal}
	if w.principal == "" {
		w.principal = auth.Anonymous
	}
	if h, _, err := net.SplitHostPort(rc.conn.nc.RemoteAddr().String()); err == nil {
		w.host = h
	}
	if w.z == nil {
		w.z = auth.NewAuthorizer(nil, s.sec.cfg.SuperUsers)
	}
	return w
}

func (w who) can(op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	return w.z == nil || w.z.Allowed(w.principal, w.host, op, rt, name)
}
func (w who) canCluster(op kmsg.ACLOperation) bool {
	return w.can(op, kmsg.ACLResourceTypeCluster, auth.ClusterName)
}
func (w who) canTopic(op kmsg.ACLOperation, t string) bool {
	return w.can(op, kmsg.ACLResourceTypeTopic, t)
}
func (w who) canGroup(op kmsg.ACLOperation, g string) bool {
	return w.can(op, kmsg.ACLResourceTypeGroup, g)
}

// describedTopicsDenied is Kafka's message for a described group that
// uses topics the caller may not DESCRIBE.
const describedTopicsDenied = "The group has described topic(s) that the client is not authorized to describe."

// describedGroup authorizes a described KIP-848 or share group as Kafka
// does: TOPIC_AUTHORIZATION_FAILED (code) when its members use a topic w
// may not DESCRIBE ("" names, unresolved, are skipped), else the group's
// authorized operations (when asked).
func (w who) describedGroup(name string, asked bool, topics []string) (ops int32, code int16) {
	for _, t := range topics {
		if t != "" && !w.canTopic(kmsg.ACLOperationDescribe, t) {
			return -2147483648, kerr.TopicAuthorizationFailed.Code
		}
	}
	return w.authorizedOpsIf(asked, kmsg.ACLResourceTypeGroup, name), 0
}

func (s *Server) handleCreateACLs(ctx context.Context, rc *reqCtx, req *kmsg.CreateACLsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	allowed := s.who(rc).canCluster(kmsg.ACLOperationAlter)
	changed := false
	for _, c := range req.Creations {
		r := kmsg.NewCreateACLsResponseResult()
		a := auth.ACL{ResourceType: c.ResourceType, ResourceName: c.ResourceName, PatternType: c.ResourcePatternType,
			Principal: c.Principal, Host: c.Host, Operation: c.Operation, Permission: c.PermissionType}
		if req.Version == 0 {
			a.PatternType = kmsg.ACLResourcePatternTypeLiteral
		}
		switch err := a.Validate(); {
		case !allowed:
			r.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		case err != nil:
			r.ErrorCode, r.ErrorMessage = kerr.InvalidRequest.Code, errMessage(err)
		default:
			if err := s.meta.CreateACL(ctx, a); err != nil {
				r.ErrorCode, r.ErrorMessage = errCode(s.log, "create acl", err), errMessage(err)
			} else {
				changed = true
			}
		}
		resp.Results = append(resp.Results, r)
	}
	if changed {
		s.sec.applyLocalChange(ctx)
		s.log.Info("ACLs created", "by", s.who(rc).principal, "count", len(req.Creations))
	}
	return now(resp)
}

func (s *Server) handleDescribeACLs(ctx context.Context, rc *reqCtx, req *kmsg.DescribeACLsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if !s.who(rc).canCluster(kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return now(resp)
	}
	f := auth.Filter{ResourceType: req.ResourceType, ResourceName: req.ResourceName, PatternType: req.ResourcePatternType,
		Principal: req.Principal, Host: req.Host, Operation: req.Operation, Permission: req.PermissionType}
	if req.Version == 0 {
		f.PatternType = kmsg.ACLResourcePatternTypeLiteral
	}
	if err := f.Validate(); err != nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, errMessage(err)
		return now(resp)
	}
	acls, _, err := s.meta.ListACLs(ctx)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(s.log, "describe acls", err), errMessage(err)
		return now(resp)
	}
	type resKey struct {
		rt   kmsg.ACLResourceType
		name string
		pt   kmsg.ACLResourcePatternType
	}
	idx := map[resKey]int{}
	for _, a := range acls {
		if !f.Matches(a) {
			continue
		}
		k := resKey{a.ResourceType, a.ResourceName, a.PatternType}
		i, ok := idx[k]
		if !ok {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName, r.ResourcePatternType = k.rt, k.name, k.pt
			resp.Resources = append(resp.Resources, r)
			i = len(resp.Resources) - 1
			idx[k] = i
		}
		e := kmsg.NewDescribeACLsResponseResourceACL()
		e.Principal, e.Host, e.Operation, e.PermissionType = a.Principal, a.Host, a.Operation, a.Permission
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, e)
	}
	return now(resp)
}

func (s *Server) handleDeleteACLs(ctx context.Context, rc *reqCtx, req *kmsg.DeleteACLsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	allowed := s.who(rc).canCluster(kmsg.ACLOperationAlter)
	changed := false
	for _, rf := range req.Filters {
		r := kmsg.NewDeleteACLsResponseResult()
		f := auth.Filter{ResourceType: rf.ResourceType, ResourceName: rf.ResourceName, PatternType: rf.ResourcePatternType,
			Principal: rf.Principal, Host: rf.Host, Operation: rf.Operation, Permission: rf.PermissionType}
		if req.Version == 0 {
			f.PatternType = kmsg.ACLResourcePatternTypeLiteral
		}
		if !allowed {
			r.ErrorCode = kerr.ClusterAuthorizationFailed.Code
			resp.Results = append(resp.Results, r)
			continue
		}
		if err := f.Validate(); err != nil {
			r.ErrorCode, r.ErrorMessage = kerr.InvalidRequest.Code, errMessage(err)
			resp.Results = append(resp.Results, r)
			continue
		}
		deleted, err := s.meta.DeleteACLs(ctx, f)
		if err != nil {
			r.ErrorCode, r.ErrorMessage = errCode(s.log, "delete acls", err), errMessage(err)
		}
		for _, a := range deleted {
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName, m.ResourcePatternType = a.ResourceType, a.ResourceName, a.PatternType
			m.Principal, m.Host, m.Operation, m.PermissionType = a.Principal, a.Host, a.Operation, a.Permission
			r.MatchingACLs = append(r.MatchingACLs, m)
			changed = true
		}
		resp.Results = append(resp.Results, r)
	}
	if changed {
		s.sec.applyLocalChange(ctx)
	}
	return now(resp)
}
