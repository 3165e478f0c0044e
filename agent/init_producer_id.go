package agent

// InitProducerID (key 22): v0-v5.
//
// Idempotent producers only: each request gets a fresh producer ID from
// etcd (unique across agents) and epoch 0; a producer ID and epoch sent to
// be bumped (v3+) are ignored and a fresh ID is returned, as Kafka does for
// a non-transactional producer. De-duplication happens in the engine at
// commit time against state kept in etcd, so a retry through any agent is
// caught.
//
// Transactions are not supported. A request with a transactional ID gets
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED: among Kafka's codes it is the one
// every client treats as fatal for that transactional ID (no retry loop)
// while leaving idempotent production usable; UNSUPPORTED_VERSION would
// suggest a version problem and COORDINATOR_NOT_AVAILABLE would make clients
// retry forever.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.InitProducerID, 0, 5, (*Server).handleInitProducerID, custom(authorizeInitProducerID, need{kmsg.ACLOperationIdempotentWrite, kmsg.ACLResourceTypeCluster}))
}

func (s *Server) handleInitProducerID(ctx context.Context, _ *reqCtx, req *kmsg.InitProducerIDRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return now(resp)
	}
	id, err := s.meta.AllocateProducerID(ctx)
	if err != nil {
		resp.ErrorCode = errCode(s.log, "allocate producer id", err)
		if resp.ErrorCode == kerr.UnknownServerError.Code {
			// etcd trouble is transient: let the client retry.
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		}
		return now(resp)
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return now(resp)
}
