package agent_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/shale-dev/shale/agent/agenttest"
)

// sessionFetcher sends raw Fetch requests of one version for one topic
// with explicit session IDs and epochs.
type sessionFetcher struct {
	t       *testing.T
	rc      *rawConn
	version int16
	topic   string
	id      [16]byte
}

// fetch sends a fetch for parts (partition -> offset) and forgets forget.
func (f *sessionFetcher) fetch(sessionID, epoch int32, parts map[int32]int64, forget ...int32) *kmsg.FetchResponse {
	f.t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version = f.version
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 50, 1, 1<<20
	req.SessionID, req.SessionEpoch = sessionID, epoch
	if len(parts) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = f.topic, f.id
		for _, p := range sortedKeys(parts) {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, parts[p], 1<<20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(forget) > 0 {
		ft := kmsg.NewFetchRequestForgottenTopic()
		ft.Topic, ft.TopicID, ft.Partitions = f.topic, f.id, forget
		req.ForgottenTopics = append(req.ForgottenTopics, ft)
	}
	return f.rc.roundTrip(req).(*kmsg.FetchResponse)
}

func sortedKeys(m map[int32]int64) []int32 {
	out := make([]int32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// answered returns partition -> high watermark of what resp answers for the
// topic, failing on a top-level error, a partition error or another topic.
func (f *sessionFetcher) answered(what string, resp *kmsg.FetchResponse) map[int32]int64 {
	f.t.Helper()
	if resp.ErrorCode != 0 {
		f.t.Fatalf("%s: top-level %v", what, kerr.ErrorForCode(resp.ErrorCode))
	}
	out := map[int32]int64{}
	for _, rt := range resp.Topics {
		if f.version >= 13 && rt.TopicID != f.id || f.version < 13 && rt.Topic != f.topic {
			f.t.Fatalf("%s: answer names topic %q %x", what, rt.Topic, rt.TopicID)
		}
		for _, p := range rt.Partitions {
			if p.ErrorCode != 0 {
				f.t.Fatalf("%s: partition %d: %v", what, p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
			out[p.Partition] = p.HighWatermark
		}
	}
	return out
}

func sameAnswer(got, want map[int32]int64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

// TestFetchSessionsKIP227 proves each KIP-227 case on Fetch v7 (the first
// with sessions) and v18 (topic IDs): epoch -1 is answered sessionless
// with every partition whatever the ID and closes the session it names;
// epoch 0 opens a session (closing the one named); incremental fetches
// answer only changed partitions, honour forgotten topics and close a
// session left empty; an unknown ID, a wrong epoch or a session used with
// and without topic IDs get the top-level error Kafka gives, with no topic.
// Records are written through one agent and fetched through another.
func TestFetchSessionsKIP227(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, 2*time.Minute)
	prod := c.Client(t, pinnedDialer(c.Agents[0].Addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, version := range []int16{7, 18} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			topic := fmt.Sprintf("sessions-v%d", version)
			ct, err := c.Admin(t).CreateTopic(ctx, 2, -1, nil, topic)
			if err != nil || ct.Err != nil {
				t.Fatalf("create: %v %v", err, ct.Err)
			}
			hw := map[int32]int64{0: 0, 1: 0}
			produce := func(p int32) {
				t.Helper()
				r := &kgo.Record{Topic: topic, Partition: p, Value: []byte("v")}
				if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
					t.Fatalf("produce: %v", err)
				}
				hw[p]++
			}
			produce(0)
			produce(1)
			f := &sessionFetcher{t: t, rc: dialRaw(t, c.Agents[1].Addr), version: version, topic: topic, id: ct.ID}
			atEnd := func() map[int32]int64 { return map[int32]int64{0: hw[0], 1: hw[1]} }

			// Sessionless, with kafka-go's ID -1 and with an ID nobody has.
			for _, id := range []int32{-1, 0, 987654} {
				resp := f.fetch(id, -1, map[int32]int64{0: 0, 1: 0})
				if got := f.answered("sessionless", resp); resp.SessionID != 0 || !sameAnswer(got, hw) {
					t.Fatalf("sessionless with id %d: session %d, answered %v, want %v", id, resp.SessionID, got, hw)
				}
			}

			// A new session answers everything.
			resp := f.fetch(0, 0, atEnd())
			sid := resp.SessionID
			if got := f.answered("new session", resp); sid == 0 || !sameAnswer(got, hw) {
				t.Fatalf("new session: id %d, answered %v, want %v", sid, got, hw)
			}
			// Nothing changed: an incremental fetch answers nothing.
			if got := f.answered("incremental 1", f.fetch(sid, 1, nil)); len(got) != 0 {
				t.Fatalf("incremental with nothing new answered %v", got)
			}
			// Partition 1 grew: only it is answered, with its records.
			produce(1)
			resp = f.fetch(sid, 2, nil)
			if got := f.answered("incremental 2", resp); !sameAnswer(got, map[int32]int64{1: hw[1]}) {
				t.Fatalf("incremental after a produce to 1 answered %v, want only 1 at %d", got, hw[1])
			} else if resp.SessionID != sid || len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
				t.Fatalf("incremental 2: session %d, want %d; records %d bytes", resp.SessionID, sid, len(resp.Topics[0].Partitions[0].RecordBatches))
			}
			// The client moves partition 1 to its end: unchanged, not answered.
			if got := f.answered("incremental 3", f.fetch(sid, 3, map[int32]int64{1: hw[1]})); len(got) != 0 {
				t.Fatalf("incremental moving 1 to its end answered %v", got)
			}
			// Forget partition 0, write to both: only 1 is answered.
			produce(0)
			produce(1)
			if got := f.answered("incremental 4", f.fetch(sid, 4, nil, 0)); !sameAnswer(got, map[int32]int64{1: hw[1]}) {
				t.Fatalf("after forgetting 0 answered %v, want only 1 at %d", got, hw[1])
			}
			// A wrong epoch, an unknown ID: top-level errors, no topics.
			for _, bad := range []struct {
				id, epoch int32
				want      *kerr.Error
			}{{sid, 4, kerr.InvalidFetchSessionEpoch}, {sid, 99, kerr.InvalidFetchSessionEpoch}, {sid + 1, 1, kerr.FetchSessionIDNotFound}, {0, 1, kerr.FetchSessionIDNotFound}} {
				resp := f.fetch(bad.id, bad.epoch, atEnd())
				if resp.ErrorCode != bad.want.Code || len(resp.Topics) != 0 || resp.SessionID != 0 {
					t.Fatalf("id %d epoch %d: %v, %d topics, session %d; want %v alone", bad.id, bad.epoch, kerr.ErrorForCode(resp.ErrorCode), len(resp.Topics), resp.SessionID, bad.want)
				}
			}
			// The session survived the refused requests: epoch 5 works.
			if got := f.answered("incremental 5", f.fetch(sid, 5, map[int32]int64{1: hw[1]})); len(got) != 0 {
				t.Fatalf("incremental 5 answered %v", got)
			}
			// The other form of topic naming cannot use this session.
			other := *f
			other.version = 12
			if version == 7 {
				other.version = 13
			}
			if resp := other.fetch(sid, 6, nil); resp.ErrorCode != kerr.FetchSessionTopicIDError.Code || len(resp.Topics) != 0 {
				t.Fatalf("session used across topic-ID versions: %v, %d topics", kerr.ErrorForCode(resp.ErrorCode), len(resp.Topics))
			}
			// Epoch 0 naming the session replaces it by a new one.
			resp = f.fetch(sid, 0, atEnd())
			sid2 := resp.SessionID
			if got := f.answered("replacing session", resp); sid2 == 0 || sid2 == sid || !sameAnswer(got, hw) {
				t.Fatalf("replacing session %d: new id %d, answered %v", sid, sid2, got)
			}
			if resp := f.fetch(sid, 6, nil); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
				t.Fatalf("replaced session still answers: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
			// Epoch -1 naming the session: answered sessionless, session closed.
			resp = f.fetch(sid2, -1, map[int32]int64{0: 0})
			if got := f.answered("closing", resp); resp.SessionID != 0 || !sameAnswer(got, map[int32]int64{0: hw[0]}) {
				t.Fatalf("closing fetch: session %d, answered %v", resp.SessionID, got)
			}
			if resp := f.fetch(sid2, 1, nil); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
				t.Fatalf("closed session still answers: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
			// Forgetting every partition closes the session.
			sid3 := f.fetch(0, 0, map[int32]int64{0: hw[0]}).SessionID
			if resp := f.fetch(sid3, 1, nil, 0); resp.ErrorCode != 0 || resp.SessionID != 0 {
				t.Fatalf("emptied session: %v, session %d; want answered sessionless", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID)
			}
			if resp := f.fetch(sid3, 2, nil); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
				t.Fatalf("emptied session still answers: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
		})
	}
}

// TestFetchSessionErrorsRepeat proves a session partition with an error
// (a partition the topic lacks) is named with its error in every
// incremental answer, as Kafka does, so a client never mistakes it for
// data that did not change.
func TestFetchSessionErrorsRepeat(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	if _, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, "errs"); err != nil {
		t.Fatal(err)
	}
	f := &sessionFetcher{t: t, rc: dialRaw(t, c.Agents[0].Addr), version: 12, topic: "errs"}
	resp := f.fetch(0, 0, map[int32]int64{0: 0, 5: 0})
	sid := resp.SessionID
	for epoch := int32(1); epoch <= 3; epoch++ {
		codes := map[int32]int16{}
		for _, rt := range resp.Topics {
			for _, p := range rt.Partitions {
				codes[p.Partition] = p.ErrorCode
			}
		}
		if codes[5] != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("epoch %d: partition 5 answered %v (%v), want UNKNOWN_TOPIC_OR_PARTITION", epoch-1, codes, resp.Topics)
		}
		if epoch > 1 {
			if _, ok := codes[0]; ok {
				t.Fatalf("epoch %d: unchanged partition 0 answered", epoch-1)
			}
		}
		resp = f.fetch(sid, epoch, nil)
	}
}

// TestFetchSessionACLApplies proves a session cannot outlive an ACL: once
// READ on the topic is denied, an incremental fetch that does not name the
// partition answers it with TOPIC_AUTHORIZATION_FAILED.
func TestFetchSessionACLApplies(t *testing.T) {
	e := startSecure(t, 1)
	e.putUser(t, "alice", "pw")
	adm := e.admin(t, 0)
	mustCreateTopic(t, adm, "locked")
	ctx := testCtx(t, time.Minute)
	mustACL(t, adm, kadm.NewACLs().Allow("User:alice").Topics("locked").Operations(kadm.OpRead))
	// Fetch v12 at most: the raw requests below name the topic.
	cl := e.client(t, 0, plainM("alice", "pw"), kgo.MaxVersions(kversion.V2_8_0()))
	f := &sessionFetcher{t: t, version: 12, topic: "locked"}
	fetch := func(id, epoch int32) *kmsg.FetchResponse {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.MaxWaitMillis, req.MaxBytes, req.SessionID, req.SessionEpoch = 12, 10, 1<<20, id, epoch
		if epoch == 0 {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = "locked"
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes = 1 << 20
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		return resp
	}
	resp := fetch(0, 0)
	f.answered("allowed", resp)
	if resp.SessionID == 0 {
		t.Fatal("no session opened")
	}
	if _, err := adm.DeleteACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts("*").Topics("locked").Operations(kadm.OpRead)); err != nil {
		t.Fatal(err)
	}
	resp = fetch(resp.SessionID, 1)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("after the ACL was removed the session answered %+v, want TOPIC_AUTHORIZATION_FAILED", resp.Topics)
	}
}

// TestFetchNeverNullRecords proves no Fetch answer carries a null record
// set, an error answer's neither (a partition the topic lacks, an unknown
// topic, an offset out of range): Kafka always sends an empty one, and
// librdkafka fails to parse the whole response on a null one (its
// 0107_topic_recreate saw "Protocol parse failure for Fetch v11" after a
// topic was deleted). Versions 4, 11 (what librdkafka 2.0 sends) and 12
// (the first flexible one, the newest naming topics by name).
func TestFetchNeverNullRecords(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	if _, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, "nn"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []int16{4, 11, 12} {
		for _, topic := range []string{"nn", "nn-unknown"} {
			f := &sessionFetcher{t: t, rc: dialRaw(t, c.Agents[0].Addr), version: v, topic: topic}
			resp := f.fetch(0, -1, map[int32]int64{0: 99, 5: 0})
			n := 0
			for _, rt := range resp.Topics {
				for _, p := range rt.Partitions {
					n++
					if p.ErrorCode == 0 {
						t.Errorf("v%d %s/%d: no error, want one", v, topic, p.Partition)
					}
					if p.RecordBatches == nil {
						t.Errorf("v%d %s/%d (%v): null record set, want an empty one", v, topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
					}
				}
			}
			if n != 2 {
				t.Errorf("v%d %s: %d partitions answered, want 2", v, topic, n)
			}
		}
	}
}
