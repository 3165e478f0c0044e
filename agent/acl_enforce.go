package agent

// Authorization of every API, when it is on (AuthConfig). What each needs,
// as in Kafka:
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
// CLUSTER_AUTHORIZATION_FAILED, the allowed items being served as usual. An
// API without a rule here closes the connection (deny by default).
//
// Denied items are removed from the request before the handler runs and
// added back to its response afterwards, mirrored field by field with
// reflection (mirror), so handlers know nothing of authorization.

import (
	"context"
	"fmt"
	"reflect"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

var (
	codeTopic   = kerr.TopicAuthorizationFailed.Code
	codeGroup   = kerr.GroupAuthorizationFailed.Code
	codeCluster = kerr.ClusterAuthorizationFailed.Code
)

// authorizedHandle runs a's handler for req if (and as far as) the
// connection's principal may.
func (s *Server) authorizedHandle(ctx context.Context, rc *reqCtx, req kmsg.Request, a api) (reply, error) {
	if !s.sec.enabled || rc.conn == nil {
		return a.handle(s, ctx, rc, req)
	}
	w := s.who(rc)
	run := func() (reply, error) { return a.handle(s, ctx, rc, req) }
	topicOp := func(op kmsg.ACLOperation) func(reflect.Value) int16 {
		return func(v reflect.Value) int16 {
			if name, ok := s.itemTopic(ctx, v); ok && !w.canTopic(op, name) {
				return codeTopic
			}
			return 0
		}
	}
	groupOp := func(op kmsg.ACLOperation) func(reflect.Value) int16 {
		return func(v reflect.Value) int16 {
			if !w.canGroup(op, v.String()) {
				return codeGroup
			}
			return 0
		}
	}
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest, *kmsg.SASLHandshakeRequest, *kmsg.SASLAuthenticateRequest,
		*kmsg.CreateACLsRequest, *kmsg.DescribeACLsRequest, *kmsg.DeleteACLsRequest,
		*kmsg.DescribeUserSCRAMCredentialsRequest, *kmsg.AlterUserSCRAMCredentialsRequest:
		return run()
	case *kmsg.ProduceRequest:
		if r.Acks == 0 {
			denied := filterItems(r, "Topics", topicOp(kmsg.ACLOperationWrite))
			if len(denied) > 0 && len(r.Topics) == 0 {
				return reply{noResponse: true}, nil
			}
			return run()
		}
		return filtered(r, "Topics", "Topics", topicOp(kmsg.ACLOperationWrite), run)
	case *kmsg.FetchRequest:
		return filtered(r, "Topics", "Topics", topicOp(kmsg.ACLOperationRead), run)
	case *kmsg.ListOffsetsRequest:
		return filtered(r, "Topics", "Topics", topicOp(kmsg.ACLOperationDescribe), run)
	case *kmsg.OffsetForLeaderEpochRequest:
		return filtered(r, "Topics", "Topics", topicOp(kmsg.ACLOperationDescribe), run)
	case *kmsg.DeleteRecordsRequest:
		return filtered(r, "Topics", "Topics", topicOp(kmsg.ACLOperationDelete), run)
	case *kmsg.CreatePartitionsRequest:
		return filtered(r, "Topics", "Topics", topicOp(kmsg.ACLOperationAlter), run)
	case *kmsg.CreateTopicsRequest:
		cluster := w.canCluster(kmsg.ACLOperationCreate)
		return filtered(r, "Topics", "Topics", func(v reflect.Value) int16 {
			if cluster {
				return 0
			}
			return topicOp(kmsg.ACLOperationCreate)(v)
		}, run)
	case *kmsg.DeleteTopicsRequest:
		if r.Version < 6 {
			return filtered(r, "TopicNames", "Topics", topicOp(kmsg.ACLOperationDelete), run)
		}
		return filtered(r, "Topics", "Topics", topicOp(kmsg.ACLOperationDelete), run)
	case *kmsg.DescribeConfigsRequest:
		return filtered(r, "Resources", "Resources", configOp(w, kmsg.ACLOperationDescribeConfigs), run)
	case *kmsg.AlterConfigsRequest:
		return filtered(r, "Resources", "Resources", configOp(w, kmsg.ACLOperationAlterConfigs), run)
	case *kmsg.IncrementalAlterConfigsRequest:
		return filtered(r, "Resources", "Resources", configOp(w, kmsg.ACLOperationAlterConfigs), run)
	case *kmsg.MetadataRequest:
		return s.authorizedMetadata(ctx, rc, w, r, run)
	case *kmsg.JoinGroupRequest:
		return groupGate(w.canGroup(kmsg.ACLOperationRead, r.Group), r, run)
	case *kmsg.SyncGroupRequest:
		return groupGate(w.canGroup(kmsg.ACLOperationRead, r.Group), r, run)
	case *kmsg.HeartbeatRequest:
		return groupGate(w.canGroup(kmsg.ACLOperationRead, r.Group), r, run)
	case *kmsg.LeaveGroupRequest:
		return groupGate(w.canGroup(kmsg.ACLOperationRead, r.Group), r, run)
	case *kmsg.OffsetCommitRequest:
		if !w.canGroup(kmsg.ACLOperationRead, r.Group) {
			resp := r.ResponseKind()
			addDenied(resp, "Topics", denyAll(r, "Topics", codeGroup))
			return now(resp)
		}
		return filtered(r, "Topics", "Topics", topicOp(kmsg.ACLOperationRead), run)
	case *kmsg.OffsetDeleteRequest:
		if !w.canGroup(kmsg.ACLOperationDelete, r.Group) {
			resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
			resp.ErrorCode = codeGroup
			return now(resp)
		}
		return filtered(r, "Topics", "Topics", topicOp(kmsg.ACLOperationRead), run)
	case *kmsg.OffsetFetchRequest:
		if r.Version >= 8 {
			rep, err := filtered(r, "Groups", "Groups", func(v reflect.Value) int16 {
				return groupOp(kmsg.ACLOperationDescribe)(v.FieldByName("Group"))
			}, run)
			if err == nil && rep.resp != nil {
				hideOffsetFetchTopics(w, rep.resp.(*kmsg.OffsetFetchResponse))
			}
			return rep, err
		}
		if !w.canGroup(kmsg.ACLOperationDescribe, r.Group) {
			resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
			resp.ErrorCode = codeGroup
			addDenied(resp, "Topics", denyAll(r, "Topics", codeGroup))
			return now(resp)
		}
		rep, err := filtered(r, "Topics", "Topics", topicOp(kmsg.ACLOperationDescribe), run)
		if err == nil && rep.resp != nil && r.Topics == nil {
			resp := rep.resp.(*kmsg.OffsetFetchResponse)
			kept := resp.Topics[:0]
			for _, t := range resp.Topics {
				if w.canTopic(kmsg.ACLOperationDescribe, t.Topic) {
					kept = append(kept, t)
				}
			}
			resp.Topics = kept
		}
		return rep, err
	case *kmsg.FindCoordinatorRequest:
		check := func(key string) int16 {
			if r.CoordinatorType == 1 {
				if !w.can(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, key) {
					return kerr.TransactionalIDAuthorizationFailed.Code
				}
				return 0
			}
			return groupOp(kmsg.ACLOperationDescribe)(reflect.ValueOf(key))
		}
		if r.Version >= 4 {
			return filtered(r, "CoordinatorKeys", "Coordinators", func(v reflect.Value) int16 { return check(v.String()) }, run)
		}
		if code := check(r.CoordinatorKey); code != 0 {
			resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
			resp.ErrorCode, resp.NodeID, resp.Port = code, -1, -1
			return now(resp)
		}
		return run()
	case *kmsg.DescribeGroupsRequest:
		return filtered(r, "Groups", "Groups", groupOp(kmsg.ACLOperationDescribe), run)
	case *kmsg.DeleteGroupsRequest:
		return filtered(r, "Groups", "Groups", groupOp(kmsg.ACLOperationDelete), run)
	case *kmsg.ListGroupsRequest:
		rep, err := run()
		if err == nil && rep.resp != nil && !w.canCluster(kmsg.ACLOperationDescribe) {
			resp := rep.resp.(*kmsg.ListGroupsResponse)
			kept := resp.Groups[:0]
			for _, g := range resp.Groups {
				if w.canGroup(kmsg.ACLOperationDescribe, g.Group) {
					kept = append(kept, g)
				}
			}
			resp.Groups = kept
		}
		return rep, err
	case *kmsg.DescribeClusterRequest:
		if !w.canCluster(kmsg.ACLOperationDescribe) {
			resp := r.ResponseKind().(*kmsg.DescribeClusterResponse)
			resp.ErrorCode = codeCluster
			return now(resp)
		}
		return run()
	case *kmsg.InitProducerIDRequest:
		ok := w.canCluster(kmsg.ACLOperationIdempotentWrite) || w.z == nil || w.z.AllowedAny(w.principal, w.host, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic)
		code := codeCluster
		if r.TransactionalID != nil {
			ok, code = w.can(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *r.TransactionalID), kerr.TransactionalIDAuthorizationFailed.Code
		}
		if !ok {
			resp := r.ResponseKind().(*kmsg.InitProducerIDResponse)
			resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch = code, -1, -1
			return now(resp)
		}
		return run()
	}
	return reply{}, fmt.Errorf("%s has no authorization rule: refused", kmsg.NameForKey(rc.key))
}

func configOp(w who, op kmsg.ACLOperation) func(reflect.Value) int16 {
	return func(v reflect.Value) int16 {
		name := v.FieldByName("ResourceName").String()
		switch kmsg.ConfigResourceType(v.FieldByName("ResourceType").Int()) {
		case kmsg.ConfigResourceTypeTopic:
			if !w.canTopic(op, name) {
				return codeTopic
			}
		default:
			if !w.canCluster(op) {
				return codeCluster
			}
		}
		return 0
	}
}

// groupGate answers a single-group request with GROUP_AUTHORIZATION_FAILED
// in its ErrorCode, or runs it.
func groupGate(ok bool, req kmsg.Request, run func() (reply, error)) (reply, error) {
	if ok {
		return run()
	}
	resp := req.ResponseKind()
	reflect.ValueOf(resp).Elem().FieldByName("ErrorCode").SetInt(int64(codeGroup))
	return now(resp)
}

// authorizedMetadata hides topics the principal may not describe and
// refuses auto-creation without CREATE.
func (s *Server) authorizedMetadata(ctx context.Context, rc *reqCtx, w who, r *kmsg.MetadataRequest, run func() (reply, error)) (reply, error) {
	denied := filterItems(r, "Topics", func(v reflect.Value) int16 {
		if name, ok := s.itemTopic(ctx, v); ok && !w.canTopic(kmsg.ACLOperationDescribe, name) {
			return codeTopic
		}
		return 0
	})
	for _, t := range r.Topics {
		if t.Topic != nil && !w.canCluster(kmsg.ACLOperationCreate) && !w.canTopic(kmsg.ACLOperationCreate, *t.Topic) {
			rc.noAutoCreate = true
		}
	}
	if len(denied) > 0 && len(r.Topics) == 0 && r.Version == 0 {
		r.Topics = nil // v0: an empty list would mean "all topics"
		rc.noAutoCreate = true
	}
	rep, err := run()
	if err != nil || rep.resp == nil {
		return rep, err
	}
	resp := rep.resp.(*kmsg.MetadataResponse)
	kept := resp.Topics[:0]
	for _, t := range resp.Topics {
		if t.ErrorCode != 0 || t.Topic == nil || w.canTopic(kmsg.ACLOperationDescribe, *t.Topic) {
			kept = append(kept, t)
		}
	}
	resp.Topics = kept
	addDenied(resp, "Topics", denied)
	return rep, nil
}

// itemTopic returns the topic an item names (its Topic field, its
// string value, or the name of its TopicID); ok is false when it names
// none that exists (the handler then answers UNKNOWN_TOPIC_*).
func (s *Server) itemTopic(ctx context.Context, v reflect.Value) (string, bool) {
	if v.Kind() == reflect.String {
		return v.String(), true
	}
	if f := v.FieldByName("Topic"); f.IsValid() {
		switch {
		case f.Kind() == reflect.String && f.String() != "":
			return f.String(), true
		case f.Kind() == reflect.Pointer && !f.IsNil():
			return f.Elem().String(), true
		}
	}
	if f := v.FieldByName("TopicID"); f.IsValid() && f.Kind() == reflect.Array {
		var id [16]byte
		reflect.Copy(reflect.ValueOf(&id).Elem(), f)
		if id == ([16]byte{}) {
			return "", false
		}
		t, err := s.topics.getByID(ctx, metastore.TopicID(id))
		if err != nil {
			return "", false
		}
		return t.Name, true
	}
	return "", false
}

// denied is one item removed from a request, with its error code.
type denied struct {
	v    reflect.Value
	code int16
}

// filterItems removes from req's slice field the items check refuses
// (non-zero code) and returns them.
func filterItems(req any, field string, check func(reflect.Value) int16) []denied {
	f := reflect.ValueOf(req).Elem().FieldByName(field)
	var out []denied
	keep := reflect.MakeSlice(f.Type(), 0, f.Len())
	for i := 0; i < f.Len(); i++ {
		v := f.Index(i)
		if code := check(v); code != 0 {
			out = append(out, denied{v: v, code: code})
			continue
		}
		keep = reflect.Append(keep, v)
	}
	if len(out) > 0 {
		f.Set(keep)
	}
	return out
}

// denyAll returns every item of req's slice field, denied with code.
func denyAll(req any, field string, code int16) []denied {
	f := reflect.ValueOf(req).Elem().FieldByName(field)
	out := make([]denied, f.Len())
	for i := range out {
		out[i] = denied{v: f.Index(i), code: code}
	}
	return out
}

// filtered runs a request with the refused items of reqField removed and
// adds them, with their codes, to respField of the response (also of a
// deferred one). When every item is refused the handler does not run.
func filtered(req kmsg.Request, reqField, respField string, check func(reflect.Value) int16, run func() (reply, error)) (reply, error) {
	d := filterItems(req, reqField, check)
	if len(d) == 0 {
		return run()
	}
	if reflect.ValueOf(req).Elem().FieldByName(reqField).Len() == 0 {
		resp := req.ResponseKind()
		addDenied(resp, respField, d)
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
				addDenied(resp, respField, d)
			}
			return resp, err
		}
	} else if rep.resp != nil {
		addDenied(rep.resp, respField, d)
	}
	return rep, nil
}

// addDenied appends mirrors of the denied items to resp's slice field.
func addDenied(resp kmsg.Response, field string, d []denied) {
	f := reflect.ValueOf(resp).Elem().FieldByName(field)
	for _, x := range d {
		f.Set(reflect.Append(f, mirror(x.v, f.Type().Elem(), x.code)))
	}
}

// mirror builds a response item of type t from a request item: fields of
// the same name and type are copied, ErrorCode set to code at every level,
// and nested slices (partitions) mirrored the same way. A string request
// item fills the response's Topic, Group or Key field; an int32 one its
// Partition field.
func mirror(src reflect.Value, t reflect.Type, code int16) reflect.Value {
	out := reflect.New(t)
	if d, ok := out.Interface().(interface{ Default() }); ok {
		d.Default()
	}
	o := out.Elem()
	setName := func(names ...string) {
		for _, n := range names {
			f := o.FieldByName(n)
			switch {
			case !f.IsValid():
			case f.Kind() == reflect.String && src.Kind() == reflect.String:
				f.SetString(src.String())
			case f.Kind() == reflect.Int32 && src.Kind() == reflect.Int32:
				f.SetInt(src.Int())
			case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.String && src.Kind() == reflect.String:
				s := src.String()
				f.Set(reflect.ValueOf(&s))
			default:
				continue
			}
			return
		}
	}
	switch src.Kind() {
	case reflect.String:
		setName("Topic", "Group", "Key")
	case reflect.Int32:
		setName("Partition")
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			tf := t.Field(i)
			sf := src.FieldByName(tf.Name)
			if !sf.IsValid() || tf.Name == "ErrorCode" || tf.Name == "UnknownTags" {
				continue
			}
			of := o.Field(i)
			switch {
			case tf.Type.Kind() == reflect.Slice && sf.Kind() == reflect.Slice && tf.Type.Elem().Kind() == reflect.Struct:
				ns := reflect.MakeSlice(tf.Type, 0, sf.Len())
				for j := 0; j < sf.Len(); j++ {
					ns = reflect.Append(ns, mirror(sf.Index(j), tf.Type.Elem(), code))
				}
				of.Set(ns)
			case sf.Type() == tf.Type && tf.Type.Kind() != reflect.Slice:
				of.Set(sf)
			}
		}
	}
	if f := o.FieldByName("ErrorCode"); f.IsValid() && f.Kind() == reflect.Int16 {
		f.SetInt(int64(code))
	}
	return o
}

// hideOffsetFetchTopics answers, in an OffsetFetch v8+ response, the
// partitions of topics the principal may not describe with
// TOPIC_AUTHORIZATION_FAILED and no offset.
func hideOffsetFetchTopics(w who, resp *kmsg.OffsetFetchResponse) {
	for gi := range resp.Groups {
		for ti := range resp.Groups[gi].Topics {
			t := &resp.Groups[gi].Topics[ti]
			if w.canTopic(kmsg.ACLOperationDescribe, t.Topic) {
				continue
			}
			for pi := range t.Partitions {
				p := &t.Partitions[pi]
				p.ErrorCode, p.Offset, p.LeaderEpoch, p.Metadata = codeTopic, -1, -1, nil
			}
		}
	}
}
