package agent

// The permission rules of the transactional APIs, as in Kafka:
//
//	Produce with a transactional ID  WRITE transactional ID, WRITE topic
//	AddPartitionsToTxn v0-v3        WRITE transactional ID, WRITE topic
//	AddPartitionsToTxn v4+          CLUSTER_ACTION cluster (brokers only)
//	AddOffsetsToTxn                 WRITE transactional ID, READ group
//	EndTxn                          WRITE transactional ID
//	TxnOffsetCommit                 WRITE transactional ID, READ group, READ topic
//
// A denied transactional ID is TRANSACTIONAL_ID_AUTHORIZATION_FAILED for
// the whole request; a denied topic TOPIC_AUTHORIZATION_FAILED and, in
// AddPartitionsToTxn, where nothing is added unless everything can be,
// the other partitions OPERATION_NOT_ATTEMPTED.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	needTxnWrite  = need{kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId}
	needClusterAc = need{kmsg.ACLOperationClusterAction, kmsg.ACLResourceTypeCluster}
)

func canTxnWrite(g *gate, t string) bool {
	return g.w.can(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, t)
}

// authorizeTxnProduce: WRITE on the transactional ID a produce names, then
// the rules of any produce.
func authorizeTxnProduce(g *gate, r *kmsg.ProduceRequest, run func() (reply, error)) (reply, error) {
	if r.TransactionID != nil && !canTxnWrite(g, *r.TransactionID) {
		if r.Acks == 0 {
			return reply{noResponse: true}, nil
		}
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, t := range r.Topics {
			produceTopics.deny(resp, t, codeTxnID)
		}
		return now(resp)
	}
	return authorizeProduce(g, r, run)
}

func denyAddPartitions(resp *kmsg.AddPartitionsToTxnResponse, t kmsg.AddPartitionsToTxnRequestTopic, code int16) {
	rt := kmsg.NewAddPartitionsToTxnResponseTopic()
	rt.Topic = t.Topic
	for _, p := range t.Partitions {
		rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
		rp.Partition, rp.ErrorCode = p, code
		rt.Partitions = append(rt.Partitions, rp)
	}
	resp.Topics = append(resp.Topics, rt)
}

// authorizeAddPartitionsToTxn: see the file comment.
func authorizeAddPartitionsToTxn(g *gate, r *kmsg.AddPartitionsToTxnRequest, run func() (reply, error)) (reply, error) {
	resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if r.Version >= 4 {
		if !g.w.canCluster(kmsg.ACLOperationClusterAction) {
			resp.ErrorCode = codeCluster
			return now(resp)
		}
		return run()
	}
	if !canTxnWrite(g, r.TransactionalID) {
		for _, t := range r.Topics {
			denyAddPartitions(resp, t, codeTxnID)
		}
		return now(resp)
	}
	check := topicCheck(g, kmsg.ACLOperationWrite, func(t kmsg.AddPartitionsToTxnRequestTopic) topicRef { return byName(t.Topic) })
	codes := make([]int16, len(r.Topics))
	refused := false
	for i, t := range r.Topics {
		codes[i] = check(t)
		refused = refused || codes[i] != 0
	}
	if !refused {
		return run()
	}
	for i, t := range r.Topics {
		code := codes[i]
		if code == 0 {
			code = kerr.OperationNotAttempted.Code
		}
		denyAddPartitions(resp, t, code)
	}
	return now(resp)
}

// authorizeAddOffsetsToTxn: WRITE on the transactional ID, READ on the group.
func authorizeAddOffsetsToTxn(g *gate, r *kmsg.AddOffsetsToTxnRequest, run func() (reply, error)) (reply, error) {
	resp := r.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	switch {
	case !canTxnWrite(g, r.TransactionalID):
		resp.ErrorCode = codeTxnID
	case !g.w.canGroup(kmsg.ACLOperationRead, r.Group):
		resp.ErrorCode = codeGroup
	default:
		return run()
	}
	return now(resp)
}

// authorizeEndTxn: WRITE on the transactional ID.
func authorizeEndTxn(g *gate, r *kmsg.EndTxnRequest, run func() (reply, error)) (reply, error) {
	if !canTxnWrite(g, r.TransactionalID) {
		resp := r.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = codeTxnID
		return now(resp)
	}
	return run()
}

var txnOffsetCommitTopics = items[*kmsg.TxnOffsetCommitRequest, *kmsg.TxnOffsetCommitResponse, kmsg.TxnOffsetCommitRequestTopic]{
	list: func(r *kmsg.TxnOffsetCommitRequest) *[]kmsg.TxnOffsetCommitRequestTopic { return &r.Topics },
	name: func(t kmsg.TxnOffsetCommitRequestTopic) topicRef { return byNameOrID(t.Topic, t.TopicID) }, // v6+: by ID
	deny: func(resp *kmsg.TxnOffsetCommitResponse, t kmsg.TxnOffsetCommitRequestTopic, code int16) {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	},
}

// authorizeTxnOffsetCommit: WRITE on the transactional ID and READ on the
// group (else every partition carries the refusal), then READ on each topic.
func authorizeTxnOffsetCommit(g *gate, r *kmsg.TxnOffsetCommitRequest, run func() (reply, error)) (reply, error) {
	code := int16(0)
	switch {
	case !canTxnWrite(g, r.TransactionalID):
		code = codeTxnID
	case !g.w.canGroup(kmsg.ACLOperationRead, r.Group):
		code = codeGroup
	}
	if code != 0 {
		resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		for _, t := range r.Topics {
			txnOffsetCommitTopics.deny(resp, t, code)
		}
		return now(resp)
	}
	return filtered(r, txnOffsetCommitTopics, topicCheck(g, kmsg.ACLOperationRead, txnOffsetCommitTopics.name), run)
}

// authorizeDescribeTransactions: DESCRIBE on each transactional ID; the
// partitions of topics the principal may not describe are left out.
func authorizeDescribeTransactions(g *gate, r *kmsg.DescribeTransactionsRequest, run func() (reply, error)) (reply, error) {
	canDescribe := func(t string) bool {
		return g.w.can(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, t)
	}
	var denied []string
	kept := r.TransactionalIDs[:0:0]
	for _, t := range r.TransactionalIDs {
		if canDescribe(t) {
			kept = append(kept, t)
		} else {
			denied = append(denied, t)
		}
	}
	r.TransactionalIDs = kept
	rep, err := run()
	if err != nil || rep.resp == nil {
		return rep, err
	}
	resp := rep.resp.(*kmsg.DescribeTransactionsResponse)
	for i := range resp.TransactionStates {
		st := &resp.TransactionStates[i]
		topics := st.Topics[:0]
		for _, t := range st.Topics {
			if g.w.canTopic(kmsg.ACLOperationDescribe, t.Topic) {
				topics = append(topics, t)
			}
		}
		st.Topics = topics
	}
	for _, t := range denied {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID, st.ErrorCode, st.ProducerID, st.ProducerEpoch, st.StartTimestamp = t, codeTxnID, -1, -1, -1
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return rep, nil
}

// authorizeListTransactions lists only the transactional IDs the
// principal may DESCRIBE.
func authorizeListTransactions(g *gate, _ *kmsg.ListTransactionsRequest, run func() (reply, error)) (reply, error) {
	rep, err := run()
	if err != nil || rep.resp == nil {
		return rep, err
	}
	resp := rep.resp.(*kmsg.ListTransactionsResponse)
	kept := resp.TransactionStates[:0]
	for _, ts := range resp.TransactionStates {
		if g.w.can(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, ts.TransactionalID) {
			kept = append(kept, ts)
		}
	}
	resp.TransactionStates = kept
	return rep, nil
}
