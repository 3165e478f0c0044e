package agent

// DescribeCluster (key 60): v0-v2.
//
// Brokers are the live agents; the controller is the one with the lowest
// node ID (any agent handles admin requests). Asking for controller
// endpoints (v1+, EndpointType 2) is UNSUPPORTED_ENDPOINT_TYPE, as a Kafka
// broker answers. There are no fenced agents: an agent whose lease expired
// is simply absent. Authorized operations on the cluster are computed from
// the ACLs when asked (authorized_ops.go).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.DescribeCluster, 0, 2, (*Server).handleDescribeCluster, onCluster(kmsg.ACLOperationDescribe, describeClusterCluster))
}

func (s *Server) handleDescribeCluster(ctx context.Context, rc *reqCtx, req *kmsg.DescribeClusterRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = 1
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.EndpointType = req.EndpointType
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		resp.ErrorMessage = kmsg.StringPtr("shale agents serve broker endpoints only")
		return now(resp)
	}
	agents := s.liveAgents(ctx)
	resp.ClusterID = s.cfg.ClusterID
	resp.ClusterAuthorizedOperations = s.who(rc).authorizedOpsIf(req.IncludeClusterAuthorizedOperations, kmsg.ACLResourceTypeCluster, "")
	resp.ControllerID = controllerID(agents)
	for _, a := range agents {
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID = a.NodeID
		b.Host, b.Port = endpointFor(rc, a)
		if a.Rack != "" {
			b.Rack = kmsg.StringPtr(a.Rack)
		}
		resp.Brokers = append(resp.Brokers, b)
	}
	return now(resp)
}
