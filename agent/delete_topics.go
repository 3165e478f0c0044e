package agent

// DeleteTopics (key 20): v0-v6.
//
// Deletes the topic from etcd (its configs, partition states and index in
// one transaction); the objects in the bucket are left to garbage
// collection, and a topic re-created under the same name gets a new ID, so
// it never sees old data. From v6 topics may be named by ID
// (UNKNOWN_TOPIC_ID when none has it). Other agents stop serving the topic
// within their topic cache TTL (1 s).

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.DeleteTopics, 0, 6, (*Server).handleDeleteTopics, custom(authorizeDeleteTopics, need{kmsg.ACLOperationDelete, kmsg.ACLResourceTypeTopic}))
}

func (s *Server) handleDeleteTopics(ctx context.Context, _ *reqCtx, req *kmsg.DeleteTopicsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	targets := req.Topics
	if req.Version < 6 {
		targets = make([]kmsg.DeleteTopicsRequestTopic, len(req.TopicNames))
		for i, n := range req.TopicNames {
			targets[i] = kmsg.NewDeleteTopicsRequestTopic()
			targets[i].Topic = kmsg.StringPtr(n)
		}
	}
	for _, rt := range targets {
		ot := kmsg.NewDeleteTopicsResponseTopic()
		ot.Topic, ot.TopicID = rt.Topic, rt.TopicID
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
		} else {
			t, err := s.meta.GetTopicByID(ctx, metastore.TopicID(rt.TopicID))
			if err != nil {
				ot.ErrorCode = errCode(s.log, "delete topics: get topic by id", err)
				if errors.Is(err, metastore.ErrTopicNotFound) {
					ot.ErrorCode = kerr.UnknownTopicID.Code
				}
				ot.ErrorMessage = errMessage(err)
				resp.Topics = append(resp.Topics, ot)
				continue
			}
			name = t.Name
			ot.Topic = kmsg.StringPtr(name)
		}
		if _, ok := lookupInternal(name); ok {
			ot.ErrorCode = kerr.InvalidTopicException.Code
			ot.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("%s is an internal topic: it cannot be deleted", name))
			resp.Topics = append(resp.Topics, ot)
			continue
		}
		t, err := s.meta.DeleteTopic(ctx, name)
		s.topics.forget(name)
		if err != nil {
			ot.ErrorCode = errCode(s.log, "delete topic", err)
			if errors.Is(err, metastore.ErrInvalid) {
				ot.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			ot.ErrorMessage = errMessage(err)
		} else {
			ot.TopicID = t.ID
			s.log.Info("topic deleted", "topic", name, "id", t.ID.String())
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return now(resp)
}
