package agent

// Authorization of every API, when it is on (AuthConfig). Each API declares
// the permission it needs where it is registered (register's last
// argument), as in Kafka:
//
//	Produce                 WRITE topic
//	Fetch                   READ topic
//	ListOffsets, OffsetForLeaderEpoch  DESCRIBE topic
//	Metadata                DESCRIBE topic (others are hidden from lists and
//	                        answered TOPIC_AUTHORIZATION_FAILED when named);
//	                        auto-creation needs CREATE on cluster or topic
//	CreateTopics            CREATE cluster or CREATE topic
//	DeleteTopics, DeleteRecords  DELETE topic
//	CreatePartitions        ALTER topic
//	DescribeConfigs         DESCRIBE_CONFIGS topic / cluster (broker)
//	AlterConfigs, IncrementalAlterConfigs  ALTER_CONFIGS topic / cluster
//	JoinGroup, SyncGroup, Heartbeat, LeaveGroup  READ group
//	OffsetCommit            READ group, READ topic
//	OffsetFetch             DESCRIBE group, DESCRIBE topic
//	FindCoordinator         DESCRIBE group (transactional ID for txn keys)
//	DescribeGroups          DESCRIBE group;  ListGroups lists those only
//	DeleteGroups            DELETE group
//	OffsetDelete            DELETE group, READ topic
//	DescribeCluster         DESCRIBE cluster
//	InitProducerID          IDEMPOTENT_WRITE cluster or WRITE on any topic
//	                        (WRITE transactional ID when one is named)
//	ACL and SCRAM APIs      ALTER / DESCRIBE cluster (in their handlers)
//
// Denials are per item (topic, group, config resource) with
// TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED or
// CLUSTER_AUTHORIZATION_FAILED, the allowed items being served as usual.
// register refuses (panics at start-up) an API without a permission, so no
// API can be served unchecked by omission.
//
// Denied items are removed from the request before the handler runs and
// added back to its response afterwards through typed accessors
// (acl_items.go: the request's item list, and the response item answering a
// refused one), so handlers know nothing of authorization.

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

var (
	codeTopic   = kerr.TopicAuthorizationFailed.Code
	codeGroup   = kerr.GroupAuthorizationFailed.Code
	codeCluster = kerr.ClusterAuthorizationFailed.Code
	codeTxnID   = kerr.TransactionalIDAuthorizationFailed.Code
)

// need is one ACL an API requires: an operation on a resource type.
type need struct {
	op kmsg.ACLOperation
	rt kmsg.ACLResourceType
}

// code is the error answering a principal that lacks n.
func (n need) code() int16 {
	switch n.rt {
	case kmsg.ACLResourceTypeTopic:
		return codeTopic
	case kmsg.ACLResourceTypeGroup:
		return codeGroup
	case kmsg.ACLResourceTypeTransactionalId:
		return codeTxnID
	}
	return codeCluster
}

// permission is what an API requires of the principal (needs: the first is
// the one whose absence answers the API's authorization error) and how it is
// enforced on the typed request. Built only by the constructors below; the
// zero value is refused by register.
type permission[R kmsg.Request] struct {
	needs   []need
	public  bool // needs nothing: ApiVersions and the SASL exchange
	enforce func(g *gate, req R, run func() (reply, error)) (reply, error)
}

// gate is what an enforcement sees: the server, the request and its
// principal.
type gate struct {
	s   *Server
	ctx context.Context
	rc  *reqCtx
	w   who
}

// public: the API needs no permission (ApiVersions, SaslHandshake,
// SaslAuthenticate: they come before a principal is known).
func public[R kmsg.Request]() permission[R] {
	return permission[R]{public: true, enforce: func(_ *gate, _ R, run func() (reply, error)) (reply, error) { return run() }}
}

// inHandler: the handler checks op on rt itself, per item (the ACL and SCRAM
// APIs, which answer CLUSTER_AUTHORIZATION_FAILED in their own fields).
func inHandler[R kmsg.Request](op kmsg.ACLOperation, rt kmsg.ACLResourceType) permission[R] {
	return permission[R]{needs: []need{{op, rt}}, enforce: func(_ *gate, _ R, run func() (reply, error)) (reply, error) { return run() }}
}

// custom: the API's rule is its own function (several resources, or an
// answer shaped unlike a list of items); needs says what it checks.
func custom[R kmsg.Request](enforce func(g *gate, req R, run func() (reply, error)) (reply, error), needs ...need) permission[R] {
	return permission[R]{needs: needs, enforce: enforce}
}

// alsoInHandler declares what the handler checks beyond the gate (topics a
// described group uses, topics of a group's offsets), so the permission
// walk grants them too.
func (p permission[R]) alsoInHandler(ns ...need) permission[R] {
	p.needs = append(slices.Clone(p.needs), ns...)
	return p
}

// onTopics: every topic item of the request needs op on the topic.
func onTopics[R kmsg.Request, P kmsg.Response, T any](op kmsg.ACLOperation, it items[R, P, T]) permission[R] {
	return custom(func(g *gate, req R, run func() (reply, error)) (reply, error) {
		return filtered(req, it, topicCheck(g, op, it.name), run)
	}, need{op, kmsg.ACLResourceTypeTopic})
}

// onGroups: every group item of the request needs op on the group.
func onGroups[R kmsg.Request, P kmsg.Response](op kmsg.ACLOperation, it items[R, P, string]) permission[R] {
	return custom(func(g *gate, req R, run func() (reply, error)) (reply, error) {
		return filtered(req, it, g.groupCheck(op), run)
	}, need{op, kmsg.ACLResourceTypeGroup})
}

// single is a typed view of a request naming one resource (name: nil for
// the cluster) and of its response's top-level error code.
type single[R kmsg.Request, P kmsg.Response] struct {
	name    func(R) string
	errCode func(P) *int16
}

// onGroup: the request names one group and needs op on it; refused, the
// response carries GROUP_AUTHORIZATION_FAILED.
func onGroup[R kmsg.Request, P kmsg.Response](op kmsg.ACLOperation, it single[R, P]) permission[R] {
	return custom(func(g *gate, req R, run func() (reply, error)) (reply, error) {
		if g.w.canGroup(op, it.name(req)) {
			return run()
		}
		resp := req.ResponseKind().(P)
		*it.errCode(resp) = codeGroup
		return now(resp)
	}, need{op, kmsg.ACLResourceTypeGroup})
}

// onCluster: the request needs op on the cluster; refused, the response
// carries CLUSTER_AUTHORIZATION_FAILED.
func onCluster[R kmsg.Request, P kmsg.Response](op kmsg.ACLOperation, it single[R, P]) permission[R] {
	return custom(func(g *gate, req R, run func() (reply, error)) (reply, error) {
		if g.w.canCluster(op) {
			return run()
		}
		resp := req.ResponseKind().(P)
		*it.errCode(resp) = codeCluster
		return now(resp)
	}, need{op, kmsg.ACLResourceTypeCluster})
}

// onConfigs: every config resource item needs op on its topic, or on the
// cluster for a broker resource.
func onConfigs[R kmsg.Request, P kmsg.Response, T any](op kmsg.ACLOperation, it items[R, P, T], res func(T) (kmsg.ConfigResourceType, string)) permission[R] {
	return custom(func(g *gate, req R, run func() (reply, error)) (reply, error) {
		return filtered(req, it, func(x T) int16 {
			rt, name := res(x)
			switch rt {
			case kmsg.ConfigResourceTypeTopic:
				if !g.w.canTopic(op, name) {
					return codeTopic
				}
			default:
				if !g.w.canCluster(op) {
					return codeCluster
				}
			}
			return 0
		}, run)
	}, need{op, kmsg.ACLResourceTypeTopic})
}

// authorizedHandle runs a's handler for req if (and as far as) the
// connection's principal may.
func (s *Server) authorizedHandle(ctx context.Context, rc *reqCtx, req kmsg.Request, a api) (reply, error) {
	run := func() (reply, error) { return a.handle(s, ctx, rc, req) }
	if !s.sec.enabled || rc.conn == nil {
		return run()
	}
	return a.perm.authorize(&gate{s: s, ctx: ctx, rc: rc, w: s.who(rc)}, req, run)
}

// topicCheck returns the check of a topic item: op on the topic it names
// (by name, or by ID when the name is empty). An item naming no topic that
// exists passes; the handler answers it UNKNOWN_TOPIC_*.
func topicCheck[T any](g *gate, op kmsg.ACLOperation, name func(T) topicRef) func(T) int16 {
	return func(x T) int16 {
		if t, ok := g.topic(name(x)); ok && !g.w.canTopic(op, t) {
			return codeTopic
		}
		return 0
	}
}

// groupCheck returns the check of a group item: op on the group.
func (g *gate) groupCheck(op kmsg.ACLOperation) func(string) int16 {
	return func(name string) int16 {
		if !g.w.canGroup(op, name) {
			return codeGroup
		}
		return 0
	}
}

// topic returns the topic ref names; ok is false when it names none that
// exists.
func (g *gate) topic(ref topicRef) (string, bool) {
	if ref.name != nil {
		return *ref.name, true
	}
	id := ref.id
	if id == ([16]byte{}) {
		return "", false
	}
	t, err := g.s.topics.getByID(g.ctx, metastore.TopicID(id))
	if err != nil {
		return "", false
	}
	return t.Name, true
}

// items is a typed view of a request's list of items (topics, groups,
// config resources): list returns the request's slice, deny appends to the
// response the answer to a refused item, with code at every level, and name
// (topic items) returns the topic an item names, by name or by ID.
type items[R kmsg.Request, P kmsg.Response, T any] struct {
	list func(R) *[]T
	deny func(resp P, item T, code int16)
	name func(T) topicRef
}

// filterItems removes from the request's list the items check refuses
// (non-zero code) and returns them with their codes. The list left is never
// nil (an empty Metadata list means no topic, a nil one all).
func filterItems[T any](list *[]T, check func(T) int16) ([]T, []int16) {
	var out []T
	var codes []int16
	keep := make([]T, 0, len(*list))
	for _, x := range *list {
		if code := check(x); code != 0 {
			out, codes = append(out, x), append(codes, code)
			continue
		}
		keep = append(keep, x)
	}
	if len(out) > 0 {
		*list = keep
	}
	return out, codes
}

// filtered runs a request with the refused items removed and adds them,
// with their codes, to the response (also to a deferred one). When every
// item is refused the handler does not run.
func filtered[R kmsg.Request, P kmsg.Response, T any](req R, it items[R, P, T], check func(T) int16, run func() (reply, error)) (reply, error) {
	list := it.list(req)
	d, codes := filterItems(list, check)
	if len(d) == 0 {
		return run()
	}
	add := func(resp kmsg.Response) {
		for i := range d {
			it.deny(resp.(P), d[i], codes[i])
		}
	}
	if len(*list) == 0 {
		resp := req.ResponseKind()
		add(resp)
		return now(resp)
	}
	rep, err := run()
	if err != nil {
		return rep, err
	}
	if rep.wait != nil {
		wait := rep.wait
		rep.wait = func(ctx context.Context) (kmsg.Response, error) {
			resp, err := wait(ctx)
			if err == nil && resp != nil {
				add(resp)
			}
			return resp, err
		}
	} else if rep.resp != nil {
		add(rep.resp)
	}
	return rep, nil
}
