package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupProtocolTypeAfterCoordinatorKill proves that a group's protocol
// type survives a coordinator SIGKILLed before it ever released the group,
// as Kafka keeps it in its log: a consumer group whose member left is
// described and listed by the surviving agent as Empty "consumer", and a
// simple group (offsets committed by an admin client, no member ever) on
// the same coordinator as Empty "".
func TestGroupProtocolTypeAfterCoordinatorKill(t *testing.T) {
	c := Start(t, Options{Agents: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const topic, consumerGroup = "types-after-kill", "killed-consumer-g"
	c.CreateTopic(t, 0, topic, 1)
	adm := kadm.NewClient(c.Client(t))

	cons := c.Client(t, kgo.ConsumerGroup(consumerGroup), kgo.ConsumeTopics(topic), kgo.FetchMaxWait(100*time.Millisecond))
	for {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		cons.PollFetches(pctx)
		pcancel()
		if dg, err := adm.DescribeGroups(ctx, consumerGroup); err == nil && dg[consumerGroup].State == "Stable" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the consumer group never became Stable")
		}
	}
	cons.Close() // leaves: Empty, still held (released only after minutes idle)

	coord := coordinatorOf(ctx, t, adm, consumerGroup)
	// A simple group with the same coordinator: the first candidate name
	// that hashes to it.
	simpleGroup := ""
	for i := 0; simpleGroup == "" && i < 64; i++ {
		if g := fmt.Sprintf("killed-simple-g-%d", i); coordinatorOf(ctx, t, adm, g) == coord {
			simpleGroup = g
		}
	}
	if simpleGroup == "" {
		t.Fatalf("no candidate group name hashes to agent %d", coord)
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 0})
	for _, g := range []string{consumerGroup, simpleGroup} {
		if r, err := adm.CommitOffsets(ctx, g, offs); err != nil || r.Error() != nil {
			t.Fatalf("commit %s: %v %v", g, err, r.Error())
		}
	}

	var dead, alive int
	for i, addr := range c.Addrs() {
		if agentNodeID(ctx, t, addr) == coord {
			dead = i
		} else {
			alive = i
		}
	}
	c.Kill(dead)

	// Asked through the survivor only, by a fresh client each time (one
	// that never knew the dead agent): until the dead agent's lease (3 s)
	// expires, the survivor names it as the coordinator.
	want := map[string]string{consumerGroup: "consumer", simpleGroup: ""}
	var survivor *kadm.Client
	var last kadm.DescribedGroups // the last answer, for the failure message
	for {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr(alive)))
		if err != nil {
			t.Fatal(err)
		}
		survivor = kadm.NewClient(cl)
		actx, acancel := context.WithTimeout(ctx, 3*time.Second)
		dg, err := survivor.DescribeGroups(actx, consumerGroup, simpleGroup)
		acancel()
		if err == nil {
			last = dg
		}
		ok := err == nil
		for g, pt := range want {
			d := dg[g]
			ok = ok && d.Err == nil && d.State == "Empty" && d.ProtocolType == pt
		}
		if ok {
			defer cl.Close()
			break
		}
		cl.Close()
		if ctx.Err() != nil {
			t.Fatalf("after the coordinator's kill: last described %+v (%v), want Empty with protocol types %q", last, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	listed, err := survivor.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for g, pt := range want {
		if l, ok := listed[g]; !ok || l.State != "Empty" || l.ProtocolType != pt {
			t.Errorf("list after the kill: %s listed %v as %+v, want Empty %q", g, ok, l, pt)
		}
	}
}

// coordinatorOf returns the node ID of group's coordinator (FindCoordinator
// claims it).
func coordinatorOf(ctx context.Context, t *testing.T, adm *kadm.Client, group string) int32 {
	t.Helper()
	rs := adm.FindGroupCoordinators(ctx, group)
	r, ok := rs[group]
	if !ok || r.Err != nil {
		t.Fatalf("find coordinator of %s: %v", group, r.Err)
	}
	return r.NodeID
}

// agentNodeID returns the node ID of the agent listening at addr.
func agentNodeID(ctx context.Context, t *testing.T, addr string) int32 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	m, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range m.Brokers {
		if fmt.Sprintf("%s:%d", b.Host, b.Port) == addr {
			return b.NodeID
		}
	}
	t.Fatalf("no broker at %s in %v", addr, m.Brokers)
	return -1
}
