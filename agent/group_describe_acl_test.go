package agent_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupDescribeTopicACLs proves the topic checks Kafka makes when
// describing KIP-848 and share groups and their share offsets: a caller
// with DESCRIBE on the groups but not on a topic their members use gets
// TOPIC_AUTHORIZATION_FAILED for the whole group; share offsets of that
// topic are refused when named and left out when listing all; altering
// them needs READ on the topic.
func TestGroupDescribeTopicACLs(t *testing.T) {
	e := startSecure(t, 1)
	e.putUser(t, "alice", "pw")
	adm := e.admin(t, 0)
	mustCreateTopic(t, adm, "seen")
	mustCreateTopic(t, adm, "hidden")
	ctx := testCtx(t, time.Minute)
	root := e.client(t, 0, scram256("admin", "admin-secret"))
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: "seen", Partition: 0, At: 0})
	o.Add(kadm.Offset{Topic: "hidden", Partition: 0, At: 0})
	if r, err := adm.AlterShareGroupOffsets(ctx, "sq", o); err != nil || r.Error() != nil {
		t.Fatalf("alter share group offsets: %v %v", err, r.Error())
	}
	sh := kmsg.NewPtrShareGroupHeartbeatRequest()
	sh.GroupID, sh.MemberID, sh.SubscribedTopicNames = "sq", "m1", []string{"seen", "hidden"}
	if r, err := sh.RequestWith(ctx, root); err != nil || r.ErrorCode != 0 {
		t.Fatalf("share join: %v %v", err, r)
	}
	ch := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	ch.Group, ch.MemberID, ch.SubscribedTopicNames, ch.RebalanceTimeoutMillis = "cg", "m1", []string{"seen", "hidden"}, 10000
	ch.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	if r, err := ch.RequestWith(ctx, root); err != nil || r.ErrorCode != 0 {
		t.Fatalf("consumer group join: %v %v", err, r)
	}

	mustACL(t, adm, kadm.NewACLs().Allow("User:alice").Groups("sq", "cg").Operations(kadm.OpDescribe, kadm.OpRead))
	mustACL(t, adm, kadm.NewACLs().Allow("User:alice").Topics("seen").Operations(kadm.OpDescribe, kadm.OpRead))
	alice := e.client(t, 0, plainM("alice", "pw"))
	describe := func() (share, consumer int16) {
		t.Helper()
		sd := kmsg.NewPtrShareGroupDescribeRequest()
		sd.GroupIDs = []string{"sq"}
		sr, err := sd.RequestWith(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		cd := kmsg.NewPtrConsumerGroupDescribeRequest()
		cd.Groups = []string{"cg"}
		cr, err := cd.RequestWith(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if sr.Groups[0].ErrorCode != 0 && len(sr.Groups[0].Members) != 0 || cr.Groups[0].ErrorCode != 0 && len(cr.Groups[0].Members) != 0 {
			t.Fatal("a refused group still lists its members")
		}
		return sr.Groups[0].ErrorCode, cr.Groups[0].ErrorCode
	}
	if s, c := describe(); s != kerr.TopicAuthorizationFailed.Code || c != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("describe with a hidden topic: share %v, consumer %v; want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(s), kerr.ErrorForCode(c))
	}

	offsets := func(topics ...string) *kmsg.DescribeShareGroupOffsetsResponseGroup {
		t.Helper()
		d := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
		g := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
		g.GroupID = "sq"
		for _, tp := range topics {
			g.Topics = append(g.Topics, kmsg.DescribeShareGroupOffsetsRequestGroupTopic{Topic: tp, Partitions: []int32{0}})
		}
		d.Groups = append(d.Groups, g)
		r, err := d.RequestWith(ctx, alice)
		if err != nil || len(r.Groups) != 1 {
			t.Fatalf("describe share group offsets: %v %+v", err, r)
		}
		return &r.Groups[0]
	}
	if g := offsets("seen", "hidden"); g.ErrorCode != 0 || g.Topics[0].Partitions[0].ErrorCode != 0 ||
		g.Topics[1].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("share offsets of seen and hidden: %+v", g)
	}
	if g := offsets(); g.ErrorCode != 0 || len(g.Topics) != 1 || g.Topics[0].Topic != "seen" {
		t.Fatalf("all share offsets: %+v, want seen only", g)
	}

	leave := kmsg.NewPtrShareGroupHeartbeatRequest()
	leave.GroupID, leave.MemberID, leave.MemberEpoch = "sq", "m1", -1
	if r, err := leave.RequestWith(ctx, root); err != nil || r.ErrorCode != 0 {
		t.Fatalf("share leave: %v %v", err, r)
	}
	alt := kmsg.NewPtrAlterShareGroupOffsetsRequest()
	alt.GroupID = "sq"
	for _, tp := range []string{"seen", "hidden"} {
		rt := kmsg.NewAlterShareGroupOffsetsRequestTopic()
		rt.Topic = tp
		rt.Partitions = []kmsg.AlterShareGroupOffsetsRequestTopicPartition{{Partition: 0, StartOffset: 0}}
		alt.Topics = append(alt.Topics, rt)
	}
	ar, err := alt.RequestWith(ctx, alice)
	if err != nil || ar.ErrorCode != 0 || ar.Topics[0].Partitions[0].ErrorCode != 0 || ar.Topics[1].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("alter share offsets of seen and hidden: %v %+v", err, ar)
	}

	mustACL(t, adm, kadm.NewACLs().Allow("User:alice").Topics("hidden").Operations(kadm.OpDescribe))
	if s, c := describe(); s != 0 && s != kerr.GroupIDNotFound.Code || c != 0 {
		t.Fatalf("describe with every topic allowed: share %v, consumer %v", kerr.ErrorForCode(s), kerr.ErrorForCode(c))
	}
}
