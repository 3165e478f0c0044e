package agent

// ElectLeaders (key 43): v0-v2. AlterPartitionReassignments (key 45): v0-v1.
// ListPartitionReassignments (key 46): v0.
//
// A partition has no replicas to move or elect among: its leader is the
// agent Metadata names (a hash of topic and partition over the live
// agents, topics.go's leaderFor), and that agent is also its one replica
// and ISR. So these answer as a Kafka cluster answers when there is
// nothing to do, never pretending work was done:
//
//   - ElectLeaders: every named partition is ELECTION_NOT_NEEDED (Kafka's
//     code when the preferred leader already leads, and for an unclean
//     election while the leader is live); all partitions (null topics)
//     gives an empty list, as Kafka leaves out partitions needing none.
//   - AlterPartitionReassignments: a replica set equal to the one
//     Metadata reports is done at once (Kafka completes a no-op
//     reassignment the same way); any other is INVALID_REPLICA_ASSIGNMENT,
//     since placement follows the live agents, not an assignment; a
//     cancellation (null replicas) is NO_REASSIGNMENT_IN_PROGRESS.
//   - ListPartitionReassignments: no reassignment is ever in progress.
//
// Unknown topics or partitions are UNKNOWN_TOPIC_OR_PARTITION. Like
// Kafka: ALTER on the cluster for the first two, DESCRIBE for the last.

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.ElectLeaders, 0, 2, (*Server).handleElectLeaders, custom(electLeadersCluster, need{kmsg.ACLOperationAlter, kmsg.ACLResourceTypeCluster}))
	register(kmsg.AlterPartitionAssignments, 0, 1, (*Server).handleAlterPartitionAssignments, onCluster(kmsg.ACLOperationAlter, alterReassignmentsCluster))
	register(kmsg.ListPartitionReassignments, 0, 0, (*Server).handleListPartitionReassignments, onCluster(kmsg.ACLOperationDescribe, listReassignmentsCluster))
}

// electLeadersCluster refuses every named partition as well as the whole
// request (v0 has no top-level error code), as Kafka does.
func electLeadersCluster(g *gate, req *kmsg.ElectLeadersRequest, run func() (reply, error)) (reply, error) {
	if g.w.canCluster(kmsg.ACLOperationAlter) {
		return run()
	}
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	resp.ErrorCode = codeCluster
	for _, rt := range req.Topics {
		ot := kmsg.NewElectLeadersResponseTopic()
		ot.Topic = rt.Topic
		for _, p := range rt.Partitions {
			op := kmsg.NewElectLeadersResponseTopicPartition()
			op.Partition, op.ErrorCode = p, codeCluster
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return now(resp)
}

var (
	alterReassignmentsCluster = single[*kmsg.AlterPartitionAssignmentsRequest, *kmsg.AlterPartitionAssignmentsResponse]{
		errCode: func(r *kmsg.AlterPartitionAssignmentsResponse) *int16 { return &r.ErrorCode },
	}
	listReassignmentsCluster = single[*kmsg.ListPartitionReassignmentsRequest, *kmsg.ListPartitionReassignmentsResponse]{
		errCode: func(r *kmsg.ListPartitionReassignmentsResponse) *int16 { return &r.ErrorCode },
	}
)

// partitionLeader is the leader Metadata reports for topic's partition,
// or the error code of a topic or partition that does not exist.
func (s *Server) partitionLeader(ctx context.Context, topic string, partition int32) (int32, int16) {
	if t, ok := lookupInternal(topic); ok {
		if partition < 0 || partition >= t.Partitions {
			return -1, kerr.UnknownTopicOrPartition.Code
		}
	} else if _, ok, err := s.topics.getPartition(ctx, topic, partition); err != nil || !ok {
		return -1, kerr.UnknownTopicOrPartition.Code
	}
	return leaderFor(s.liveAgents(ctx), topic, partition), 0
}

const noElectionMessage = "the partition's leader is the agent Metadata names (placed by hash over the live agents); there is no other replica to elect"

func (s *Server) handleElectLeaders(ctx context.Context, _ *reqCtx, req *kmsg.ElectLeadersRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	for _, rt := range req.Topics {
		ot := kmsg.NewElectLeadersResponseTopic()
		ot.Topic = rt.Topic
		for _, p := range rt.Partitions {
			op := kmsg.NewElectLeadersResponseTopicPartition()
			op.Partition = p
			if _, code := s.partitionLeader(ctx, rt.Topic, p); code != 0 {
				op.ErrorCode = code
			} else {
				op.ErrorCode, op.ErrorMessage = kerr.ElectionNotNeeded.Code, kmsg.StringPtr(noElectionMessage)
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return now(resp)
}

func (s *Server) handleAlterPartitionAssignments(ctx context.Context, _ *reqCtx, req *kmsg.AlterPartitionAssignmentsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	resp.AllowReplicationFactorChange = req.AllowReplicationFactorChange
	for _, rt := range req.Topics {
		ot := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		ot.Topic = rt.Topic
		for _, p := range rt.Partitions {
			op := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			op.Partition = p.Partition
			leader, code := s.partitionLeader(ctx, rt.Topic, p.Partition)
			switch {
			case code != 0:
				op.ErrorCode = code
			case p.Replicas == nil:
				op.ErrorCode = kerr.NoReassignmentInProgress.Code
				op.ErrorMessage = kmsg.StringPtr("no reassignment is in progress: shale never moves replicas")
			case !slices.Equal(p.Replicas, []int32{leader}):
				op.ErrorCode = kerr.InvalidReplicaAssignment.Code
				op.ErrorMessage = kmsg.StringPtr("a partition's one replica is the agent its topic and number hash to over the live agents; it cannot be assigned")
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return now(resp)
}

func (s *Server) handleListPartitionReassignments(_ context.Context, _ *reqCtx, req *kmsg.ListPartitionReassignmentsRequest) (reply, error) {
	return now(req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse))
}
