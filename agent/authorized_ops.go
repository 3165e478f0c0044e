package agent

// Authorized operations (KIP-430), as Kafka computes them for
// DescribeCluster, Metadata (v8+) and DescribeGroups (v3+) when asked: the
// operations of the resource type that the principal may perform on the
// resource, as a bit field (bit n for operation code n), every operation
// of the type when authorization is off. Not asked for, the field is
// -2147483648, Kafka's "omitted".

import (
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// authorizedOpsOmitted is the value of an authorized-operations field that
// was not asked for.
const authorizedOpsOmitted = math.MinInt32

// supportedOps are Kafka's operations per resource type
// (AclEntry.supportedOperations).
var supportedOps = map[kmsg.ACLResourceType][]kmsg.ACLOperation{
	kmsg.ACLResourceTypeCluster: {kmsg.ACLOperationCreate, kmsg.ACLOperationClusterAction, kmsg.ACLOperationDescribeConfigs,
		kmsg.ACLOperationAlterConfigs, kmsg.ACLOperationIdempotentWrite, kmsg.ACLOperationAlter, kmsg.ACLOperationDescribe},
	kmsg.ACLResourceTypeTopic: {kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationCreate, kmsg.ACLOperationDescribe,
		kmsg.ACLOperationDelete, kmsg.ACLOperationAlter, kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs},
	kmsg.ACLResourceTypeGroup: {kmsg.ACLOperationRead, kmsg.ACLOperationDescribe, kmsg.ACLOperationDelete},
}

// authorizedOps returns the bit field of the operations w may perform on
// the resource (name is ignored for the cluster).
func (w who) authorizedOps(rt kmsg.ACLResourceType, name string) int32 {
	var bits int32
	for _, op := range supportedOps[rt] {
		if rt == kmsg.ACLResourceTypeCluster && w.canCluster(op) || rt != kmsg.ACLResourceTypeCluster && w.can(op, rt, name) {
			bits |= 1 << uint(op)
		}
	}
	return bits
}

// authorizedOpsIf is authorizedOps when asked, else authorizedOpsOmitted.
func (w who) authorizedOpsIf(asked bool, rt kmsg.ACLResourceType, name string) int32 {
	if !asked {
		return authorizedOpsOmitted
	}
	return w.authorizedOps(rt, name)
}

// metadataAuthorizedOps fills a Metadata answer's authorized operations
// (v8+): the cluster's (v8-v10) and each topic's, when asked.
func (s *Server) metadataAuthorizedOps(rc *reqCtx, req *kmsg.MetadataRequest, resp *kmsg.MetadataResponse) {
	w := s.who(rc)
	resp.AuthorizedOperations = w.authorizedOpsIf(req.IncludeClusterAuthorizedOperations, kmsg.ACLResourceTypeCluster, "")
	for i := range resp.Topics {
		mt := &resp.Topics[i]
		mt.AuthorizedOperations = authorizedOpsOmitted
		if req.IncludeTopicAuthorizedOperations && mt.Topic != nil {
			mt.AuthorizedOperations = w.authorizedOps(kmsg.ACLResourceTypeTopic, *mt.Topic)
		}
	}
}
