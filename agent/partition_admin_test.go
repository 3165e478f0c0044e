package agent_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
)

// TestPartitionAdminAnswers proves the answers of partition_admin.go on
// two agents: ElectLeaders is ELECTION_NOT_NEEDED for every existing
// partition (preferred and unclean) and UNKNOWN_TOPIC_OR_PARTITION for a
// missing one; all partitions gives an empty list; a reassignment to the
// replica Metadata reports succeeds, to another agent is
// INVALID_REPLICA_ASSIGNMENT, a cancellation NO_REASSIGNMENT_IN_PROGRESS;
// and no reassignment is ever listed.
func TestPartitionAdminAnswers(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	const topic = "placed"
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	leader := func(p int32) int32 { return md.Topics[topic].Partitions[p].Leader }
	other := func(p int32) int32 {
		for _, b := range md.Brokers {
			if b.NodeID != leader(p) {
				return b.NodeID
			}
		}
		t.Fatalf("no agent other than %d in %+v", leader(p), md.Brokers)
		return -1
	}

	set := kadm.TopicsSet{}
	set.Add(topic, 0, 1)
	set.Add("missing", 0)
	for _, typ := range []kadm.ElectLeadersHow{kadm.ElectPreferredReplica, kadm.ElectLiveReplica} {
		res, err := adm.ElectLeaders(ctx, typ, set)
		if err != nil {
			t.Fatalf("elect leaders (%v): %v", typ, err)
		}
		for p := range int32(2) {
			if r := res[topic][p]; !errors.Is(r.Err, kerr.ElectionNotNeeded) {
				t.Errorf("elect %s/%d (%v): %v, want ELECTION_NOT_NEEDED", topic, p, typ, r.Err)
			}
		}
		if r := res["missing"][0]; !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			t.Errorf("elect missing/0: %v, want UNKNOWN_TOPIC_OR_PARTITION", r.Err)
		}
	}
	all, err := kmsg.NewPtrElectLeadersRequest().RequestWith(ctx, c.Client(t))
	if err != nil || all.ErrorCode != 0 || len(all.Topics) != 0 {
		t.Fatalf("elect all partitions: %+v %v, want no error and no partitions", all, err)
	}

	// A raw request: kadm's keeps one entry per partition, and this one
	// asks partition 1 twice (a move, then a cancellation).
	raw := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = topic
	for _, a := range []struct {
		p        int32
		replicas []int32
	}{{0, []int32{leader(0)}}, {1, []int32{other(1)}}, {1, nil}, {9, []int32{leader(0)}}} {
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = a.p, a.replicas
		rt.Partitions = append(rt.Partitions, rp)
	}
	raw.Topics = append(raw.Topics, rt)
	ar, err := raw.RequestWith(ctx, c.Client(t))
	if err != nil || ar.ErrorCode != 0 || len(ar.Topics) != 1 || len(ar.Topics[0].Partitions) != 4 {
		t.Fatalf("alter partition assignments: %+v %v", ar, err)
	}
	want := []int16{0, kerr.InvalidReplicaAssignment.Code, kerr.NoReassignmentInProgress.Code, kerr.UnknownTopicOrPartition.Code}
	for i, p := range ar.Topics[0].Partitions {
		if p.ErrorCode != want[i] {
			t.Errorf("reassignment %d (partition %d): code %d, want %d", i, p.Partition, p.ErrorCode, want[i])
		}
	}

	listed, err := adm.ListPartitionReassignments(ctx, set)
	if err != nil || len(listed) != 0 {
		t.Fatalf("list partition reassignments: %+v %v, want none", listed, err)
	}
}
