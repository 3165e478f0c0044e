package agent_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
)

// shareEnv is a topic of one partition holding n records, and a raw
// client per agent.
type shareEnv struct {
	c       *agenttest.Cluster
	topic   string
	topicID [16]byte
	raw     []*kgo.Client
}

func newShareEnv(t *testing.T, agents, n int) *shareEnv {
	t.Helper()
	c := agenttest.Start(t, agenttest.Options{Agents: agents})
	e := &shareEnv{c: c, topic: "share-q"}
	ctx := testCtx(t, 30*time.Second)
	adm := c.Admin(t)
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, e.topic); err != nil {
		t.Fatal(err)
	}
	prod := c.Client(t, kgo.DefaultProduceTopic(e.topic))
	for i := range n {
		if err := prod.ProduceSync(ctx, kgo.StringRecord(strconv.Itoa(i))).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	md, err := adm.Metadata(ctx, e.topic)
	if err != nil {
		t.Fatal(err)
	}
	e.topicID = md.Topics[e.topic].ID
	for _, a := range c.Agents {
		cl, err := kgo.NewClient(kgo.SeedBrokers(a.Addr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		e.raw = append(e.raw, cl)
	}
	return e
}

// req sends req to agent i.
func (e *shareEnv) req(t *testing.T, i int, req kmsg.Request) kmsg.Response {
	t.Helper()
	resp, err := e.raw[i].SeedBrokers()[0].Request(testCtx(t, 30*time.Second), req)
	if err != nil {
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

func (e *shareEnv) heartbeat(t *testing.T, group, member string, epoch int32) *kmsg.ShareGroupHeartbeatResponse {
	r := kmsg.NewPtrShareGroupHeartbeatRequest()
	r.GroupID, r.MemberID, r.MemberEpoch = group, member, epoch
	if epoch == 0 {
		r.SubscribedTopicNames = []string{e.topic}
	}
	return e.req(t, 0, r).(*kmsg.ShareGroupHeartbeatResponse)
}

type shareAck struct {
	first, last int64
	types       []int8
}

func (e *shareEnv) fetch(t *testing.T, agent int, group, member string, epoch, max int32, acks ...shareAck) *kmsg.ShareFetchResponse {
	r := kmsg.NewPtrShareFetchRequest()
	r.GroupID, r.MemberID, r.ShareSessionEpoch = kmsg.StringPtr(group), kmsg.StringPtr(member), epoch
	r.MaxRecords, r.BatchSize, r.MaxBytes, r.MaxWaitMillis = max, max, 1<<20, 10
	tp := kmsg.NewShareFetchRequestTopic()
	tp.TopicID = e.topicID
	p := kmsg.NewShareFetchRequestTopicPartition()
	p.PartitionMaxBytes = 1 << 20
	for _, a := range acks {
		b := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
		b.FirstOffset, b.LastOffset, b.AcknowledgeTypes = a.first, a.last, a.types
		p.AcknowledgementBatches = append(p.AcknowledgementBatches, b)
	}
	tp.Partitions = append(tp.Partitions, p)
	r.Topics = append(r.Topics, tp)
	return e.req(t, agent, r).(*kmsg.ShareFetchResponse)
}

func (e *shareEnv) ack(t *testing.T, group, member string, epoch int32, acks ...shareAck) *kmsg.ShareAcknowledgeResponse {
	r := kmsg.NewPtrShareAcknowledgeRequest()
	r.GroupID, r.MemberID, r.ShareSessionEpoch = kmsg.StringPtr(group), kmsg.StringPtr(member), epoch
	tp := kmsg.NewShareAcknowledgeRequestTopic()
	tp.TopicID = e.topicID
	p := kmsg.NewShareAcknowledgeRequestTopicPartition()
	for _, a := range acks {
		b := kmsg.NewShareAcknowledgeRequestTopicPartitionAcknowledgementBatch()
		b.FirstOffset, b.LastOffset, b.AcknowledgeTypes = a.first, a.last, a.types
		p.AcknowledgementBatches = append(p.AcknowledgementBatches, b)
	}
	tp.Partitions = append(tp.Partitions, p)
	r.Topics = append(r.Topics, tp)
	return e.req(t, 0, r).(*kmsg.ShareAcknowledgeResponse)
}

// acquired lists a ShareFetch answer's acquired ranges as [first, last,
// delivery count].
func acquired(resp *kmsg.ShareFetchResponse) [][3]int64 {
	var out [][3]int64
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			for _, a := range p.AcquiredRecords {
				out = append(out, [3]int64{a.FirstOffset, a.LastOffset, int64(a.DeliveryCount)})
			}
		}
	}
	return out
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	var w int16
	if want != nil {
		w = want.Code
	}
	if got != w {
		t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), want)
	}
}

func (e *shareEnv) setEarliest(t *testing.T, group string) {
	e.setConfigs(t, group, "share.auto.offset.reset", "earliest")
}

// setConfigs sets group configs, given as name, value pairs.
func (e *shareEnv) setConfigs(t *testing.T, group string, kv ...string) {
	t.Helper()
	r := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	for i := 0; i+1 < len(kv); i += 2 {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = kv[i], kmsg.StringPtr(kv[i+1])
		res.Configs = append(res.Configs, c)
	}
	r.Resources = append(r.Resources, res)
	resp := e.req(t, 0, r).(*kmsg.IncrementalAlterConfigsResponse)
	wantCode(t, "set group configs", resp.Resources[0].ErrorCode, nil)
}

// TestShareGroupProtocol proves the share group APIs answer Kafka's error
// codes for bad input (unknown group, wrong member and session epochs,
// acknowledging records another member holds, a session used after it
// closed, a classic join of a share group, offsets altered under members),
// and that accepted records are never delivered again, released ones come
// back with a higher delivery count, and rejected ones never do.
func TestShareGroupProtocol(t *testing.T) {
	e := newShareEnv(t, 1, 10)
	const g = "sg"
	e.setEarliest(t, g)

	wantCode(t, "ShareFetch, no such share group", e.fetch(t, 0, "nobody", "a", 0, 5).ErrorCode, kerr.GroupIDNotFound)
	hb := e.heartbeat(t, g, "a", 0)
	wantCode(t, "join", hb.ErrorCode, nil)
	if hb.MemberEpoch < 1 || hb.Assignment == nil || len(hb.Assignment.TopicPartitions) != 1 {
		t.Fatalf("join: epoch %d, assignment %+v", hb.MemberEpoch, hb.Assignment)
	}
	wantCode(t, "heartbeat, wrong epoch", e.heartbeat(t, g, "a", hb.MemberEpoch+5).ErrorCode, kerr.FencedMemberEpoch)
	wantCode(t, "heartbeat, unknown member", e.heartbeat(t, g, "zz", 3).ErrorCode, kerr.UnknownMemberID)
	wantCode(t, "heartbeat, no member ID", e.heartbeat(t, g, "", 0).ErrorCode, kerr.InvalidRequest)

	jg := kmsg.NewPtrJoinGroupRequest()
	jg.Group, jg.ProtocolType, jg.SessionTimeoutMillis, jg.RebalanceTimeoutMillis = g, "consumer", 10000, 10000
	jg.Protocols = append(jg.Protocols, kmsg.JoinGroupRequestProtocol{Name: "range"})
	wantCode(t, "JoinGroup of a share group", e.req(t, 0, jg).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InconsistentGroupProtocol)

	wantCode(t, "ShareFetch, no session", e.fetch(t, 0, g, "a", 3, 4).ErrorCode, kerr.ShareSessionNotFound)
	wantCode(t, "ShareFetch, acks opening a session", e.fetch(t, 0, g, "a", 0, 4, shareAck{0, 0, []int8{1}}).ErrorCode, kerr.InvalidRequest)
	fa := e.fetch(t, 0, g, "a", 0, 4)
	if got := acquired(fa); len(got) != 1 || got[0] != [3]int64{0, 3, 1} {
		t.Fatalf("a acquired %v, want [0 3 1]", got)
	}
	wantCode(t, "ShareFetch, wrong session epoch", e.fetch(t, 0, g, "a", 7, 4).ErrorCode, kerr.InvalidShareSessionEpoch)
	fb := e.fetch(t, 0, g, "b", 0, 4)
	if got := acquired(fb); len(got) != 1 || got[0] != [3]int64{4, 7, 1} {
		t.Fatalf("b acquired %v, want [4 7 1]", got)
	}
	bad := e.ack(t, g, "b", 1, shareAck{0, 3, []int8{1}})
	wantCode(t, "b acknowledges a's records", bad.Topics[0].Partitions[0].ErrorCode, kerr.InvalidRecordState)
	wantCode(t, "ShareAcknowledge at epoch 0", e.ack(t, g, "b", 0).ErrorCode, kerr.InvalidShareSessionEpoch)
	ok := e.ack(t, g, "a", 1, shareAck{0, 3, []int8{1, 1, 2, 3}})
	wantCode(t, "a accepts, releases, rejects", ok.Topics[0].Partitions[0].ErrorCode, nil)
	wantCode(t, "a closes its session", e.fetch(t, 0, g, "a", -1, 0).ErrorCode, nil)
	wantCode(t, "ShareFetch after the session closed", e.fetch(t, 0, g, "a", 2, 4).ErrorCode, kerr.ShareSessionNotFound)

	got := acquired(e.fetch(t, 0, g, "b", 2, 10))
	want := [][3]int64{{2, 2, 2}, {8, 9, 1}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("b's second fetch acquired %v, want %v (2 released, 3 rejected, 0-1 accepted)", got, want)
	}

	d := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	d.Groups = append(d.Groups, kmsg.DescribeShareGroupOffsetsRequestGroup{GroupID: g})
	dr := e.req(t, 0, d).(*kmsg.DescribeShareGroupOffsetsResponse)
	if so := dr.Groups[0].Topics[0].Partitions[0].StartOffset; so != 2 {
		t.Fatalf("start offset %d, want 2", so)
	}
	alt := kmsg.NewPtrAlterShareGroupOffsetsRequest()
	alt.GroupID = g
	wantCode(t, "alter offsets with a member", e.req(t, 0, alt).(*kmsg.AlterShareGroupOffsetsResponse).ErrorCode, kerr.NonEmptyGroup)
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{g}
	wantCode(t, "delete a share group with a member", e.req(t, 0, del).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, kerr.NonEmptyGroup)
	wantCode(t, "leave", e.heartbeat(t, g, "a", -1).ErrorCode, nil)
	wantCode(t, "delete the share group", e.req(t, 0, del).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, nil)
	wantCode(t, "ShareFetch of a deleted share group", e.fetch(t, 0, g, "b", 3, 4).ErrorCode, kerr.GroupIDNotFound)
}

// TestShareTwoAgentsAcquireOnce proves that two agents serving one
// share-partition at the same time never hand out a record twice: two
// members fetch concurrently, one through each agent, accepting what they
// get, and every record is acquired exactly once.
func TestShareTwoAgentsAcquireOnce(t *testing.T) {
	const n = 600
	e := newShareEnv(t, 2, n)
	const g = "sg2"
	alt := kmsg.NewPtrAlterShareGroupOffsetsRequest()
	alt.GroupID = g
	at := kmsg.NewAlterShareGroupOffsetsRequestTopic()
	at.Topic = e.topic
	at.Partitions = append(at.Partitions, kmsg.AlterShareGroupOffsetsRequestTopicPartition{Partition: 0, StartOffset: 0})
	alt.Topics = append(alt.Topics, at)
	var ar *kmsg.AlterShareGroupOffsetsResponse
	for i := range 2 { // the agent that claims the group answers
		ar = e.req(t, i, alt).(*kmsg.AlterShareGroupOffsetsResponse)
		if ar.ErrorCode != kerr.NotCoordinator.Code {
			break
		}
	}
	wantCode(t, "alter offsets", ar.ErrorCode, nil)

	var mu sync.Mutex
	seen := map[int64]int{}
	total := 0
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			member := "m" + strconv.Itoa(i)
			var epoch int32
			var acks []shareAck
			for ctx.Err() == nil {
				mu.Lock()
				done := total >= n
				mu.Unlock()
				if done {
					return
				}
				resp := e.fetch(t, i, g, member, epoch, 7, acks...)
				if resp.ErrorCode != 0 {
					t.Errorf("%s: %v", member, kerr.ErrorForCode(resp.ErrorCode))
					return
				}
				epoch++
				acks = nil
				mu.Lock()
				for _, r := range acquired(resp) {
					for o := r[0]; o <= r[1]; o++ {
						seen[o]++
						total++
					}
					acks = append(acks, shareAck{r[0], r[1], []int8{1}})
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if total != n || len(seen) != n {
		t.Fatalf("acquired %d records, %d distinct, want %d once each", total, len(seen), n)
	}
	for o, c := range seen {
		if c != 1 {
			t.Fatalf("offset %d acquired %d times", o, c)
		}
	}
}

// TestShareResetByDuration proves share.auto.offset.reset=by_duration:<ISO
// duration> starts a share group at the first record at most that old, at
// the log end when there is none, and that a malformed value is
// INVALID_CONFIG.
func TestShareResetByDuration(t *testing.T) {
	e := newShareEnv(t, 1, 0)
	ctx := testCtx(t, 30*time.Second)
	prod := e.c.Client(t, kgo.DefaultProduceTopic(e.topic))
	old := time.Now().Add(-2 * time.Hour)
	for i := range 10 {
		ts := old.Add(time.Duration(i) * time.Second)
		if i >= 6 {
			ts = time.Now().Add(-time.Minute)
		}
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i)), Timestamp: ts}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	set := func(group, v string) int16 {
		r := kmsg.NewPtrIncrementalAlterConfigsRequest()
		res := kmsg.NewIncrementalAlterConfigsRequestResource()
		res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = "share.auto.offset.reset", kmsg.StringPtr(v)
		res.Configs = append(res.Configs, c)
		r.Resources = append(r.Resources, res)
		return e.req(t, 0, r).(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode
	}
	wantCode(t, "by_duration without a duration", set("g1", "by_duration:1h"), kerr.InvalidConfig)
	for _, c := range []struct {
		group, reset string
		first        int64 // -1: nothing acquired (started at the end)
	}{
		{"g1", "by_duration:PT1H", 6},
		{"g2", "by_duration:P1D", 0},
		{"g3", "by_duration:PT10S", -1},
	} {
		wantCode(t, "set "+c.reset, set(c.group, c.reset), nil)
		wantCode(t, "join "+c.group, e.heartbeat(t, c.group, "m", 0).ErrorCode, nil)
		got := acquired(e.fetch(t, 0, c.group, "m", 0, 100))
		switch {
		case c.first < 0 && len(got) != 0:
			t.Errorf("%s acquired %v, want nothing (no record that recent)", c.reset, got)
		case c.first >= 0 && (len(got) == 0 || got[0][0] != c.first || got[len(got)-1][1] != 9):
			t.Errorf("%s acquired %v, want %d to 9", c.reset, got, c.first)
		}
	}
}

// TestShareReadCommitted proves share.isolation.level=read_committed: a
// franz-go share consumer (through the other agent than the transactional
// producer's) receives the committed transactions' records only, none of
// an aborted one's and none of an open one's until it commits, while a
// read_uncommitted group of the same topic receives the aborted records
// too; both groups end with no lag (control records and aborted records
// are done, never in flight).
func TestShareReadCommitted(t *testing.T) {
	e := newShareEnv(t, 2, 0)
	ctx := testCtx(t, 60*time.Second)
	e.setConfigs(t, "rc", "share.auto.offset.reset", "earliest", "share.isolation.level", "read_committed")
	e.setConfigs(t, "ru", "share.auto.offset.reset", "earliest")
	txp := e.c.Client(t, kgo.SeedBrokers(e.c.Agents[0].Addr), kgo.DefaultProduceTopic(e.topic), kgo.TransactionalID("share-txn"))
	txn := func(commit bool, values ...string) {
		t.Helper()
		if err := txp.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if err := txp.ProduceSync(ctx, kgo.StringRecord(v)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			return
		}
		if err := txp.EndTransaction(ctx, kgo.TryAbort); err != nil {
			t.Fatal(err)
		}
	}
	end := func() {
		t.Helper()
		if err := txp.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	txn(true, "c1", "c2")
	end()
	txn(false, "a1", "a2", "a3")
	txn(true, "c3")
	end()
	txn(true, "open1") // left open for now

	consumer := func(group string) *kgo.Client {
		return e.c.Client(t, kgo.SeedBrokers(e.c.Agents[1].Addr), kgo.ConsumeTopics(e.topic), kgo.ShareGroup(group),
			kgo.FetchMaxWait(200*time.Millisecond))
	}
	// poll accepts what it receives until want values arrived (or, with
	// want 0, for about a second) and returns them in order.
	poll := func(cl *kgo.Client, want int) []string {
		t.Helper()
		var got []string
		deadline := time.Now().Add(time.Second)
		if want > 0 {
			deadline = time.Now().Add(30 * time.Second)
		}
		for time.Now().Before(deadline) && (want == 0 || len(got) < want) {
			pctx, cancel := context.WithDeadline(ctx, deadline)
			fs := cl.PollFetches(pctx)
			cancel()
			for _, r := range fs.Records() {
				got = append(got, string(r.Value))
				r.Ack(kgo.AckAccept)
			}
			if err := cl.FlushAcks(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return got
	}
	rc := consumer("rc")
	if got := poll(rc, 3); !slices.Equal(got, []string{"c1", "c2", "c3"}) {
		t.Fatalf("read_committed received %v, want [c1 c2 c3]", got)
	}
	if got := poll(rc, 0); len(got) != 0 {
		t.Fatalf("read_committed received %v from an open transaction and after", got)
	}
	ru := consumer("ru")
	if got := poll(ru, 7); !slices.Equal(got, []string{"c1", "c2", "a1", "a2", "a3", "c3", "open1"}) {
		t.Fatalf("read_uncommitted received %v, want every data record", got)
	}
	end()
	if got := poll(rc, 1); !slices.Equal(got, []string{"open1"}) {
		t.Fatalf("read_committed received %v after the commit, want [open1]", got)
	}
	if got := poll(rc, 0); len(got) != 0 {
		t.Fatalf("read_committed received %v more", got)
	}
	adm := e.c.Admin(t)
	for _, g := range []string{"rc", "ru"} {
		var lag int64 = -1
		for range 50 { // the last acknowledgements and the commit marker settle
			offs, err := adm.DescribeShareGroupOffsets(ctx, g)
			if err != nil || offs.Error() != nil {
				t.Fatalf("describe %s offsets: %v %v", g, err, offs.Error())
			}
			o, _ := offs[g].Offsets.Lookup(e.topic, 0)
			if lag = o.Lag; lag == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if lag != 0 {
			t.Fatalf("group %s lag %d, want 0", g, lag)
		}
	}
}

// TestShareConnCloseReleases proves that the records a share consumer
// acquired come back as soon as its connection closes without a word (no
// acknowledgement, no session close, no leave), not when their lock (60 s
// here) expires: another member, through the other agent, acquires them
// again within 10 s, with delivery count 2. A session closed this way is
// gone (SHARE_SESSION_NOT_FOUND on a new connection).
func TestShareConnCloseReleases(t *testing.T) {
	e := newShareEnv(t, 2, 20)
	const g = "sg-close"
	e.setConfigs(t, g, "share.auto.offset.reset", "earliest", "share.record.lock.duration.ms", "60000")
	wantCode(t, "join a", e.heartbeat(t, g, "a", 0).ErrorCode, nil)
	wantCode(t, "join b", e.heartbeat(t, g, "b", 0).ErrorCode, nil)

	ghost, err := kgo.NewClient(kgo.SeedBrokers(e.c.Agents[0].Addr))
	if err != nil {
		t.Fatal(err)
	}
	r := kmsg.NewPtrShareFetchRequest()
	r.GroupID, r.MemberID = kmsg.StringPtr(g), kmsg.StringPtr("a")
	r.MaxRecords, r.BatchSize, r.MaxBytes, r.MaxWaitMillis = 10, 10, 1<<20, 10
	tp := kmsg.NewShareFetchRequestTopic()
	tp.TopicID = e.topicID
	p := kmsg.NewShareFetchRequestTopicPartition()
	p.PartitionMaxBytes = 1 << 20
	tp.Partitions = append(tp.Partitions, p)
	r.Topics = append(r.Topics, tp)
	resp, err := r.RequestWith(testCtx(t, 30*time.Second), ghost.SeedBrokers()[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := acquired(resp); len(got) != 1 || got[0] != [3]int64{0, 9, 1} {
		t.Fatalf("a acquired %v, want [0 9 1]", got)
	}
	if got := acquired(e.fetch(t, 1, g, "b", 0, 100)); len(got) != 1 || got[0] != [3]int64{10, 19, 1} {
		t.Fatalf("b acquired %v, want [10 19 1] (a holds 0-9)", got)
	}
	ghost.Close()

	var got [][3]int64
	epoch := int32(1)
	for deadline := time.Now().Add(10 * time.Second); len(got) == 0 && time.Now().Before(deadline); epoch++ {
		resp := e.fetch(t, 1, g, "b", epoch, 100)
		wantCode(t, "b fetch", resp.ErrorCode, nil)
		got = acquired(resp)
		if len(got) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(got) != 1 || got[0] != [3]int64{0, 9, 2} {
		t.Fatalf("after a's connection closed b acquired %v, want [0 9 2] within 10 s", got)
	}
	wantCode(t, "a's session after its connection closed", e.fetch(t, 0, g, "a", 1, 10).ErrorCode, kerr.ShareSessionNotFound)
}
