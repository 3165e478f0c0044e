package agent_test

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/segment/segmenttest"
)

func quotaEntity(kv ...string) kadm.ClientQuotaEntity {
	var e kadm.ClientQuotaEntity
	for i := 0; i < len(kv); i += 2 {
		c := kadm.ClientQuotaEntityComponent{Type: kv[i]}
		if kv[i+1] != "<default>" {
			c.Name = &kv[i+1]
		}
		e = append(e, c)
	}
	return e
}

// described renders Describe's answer as sorted "entity: values" lines.
func described(qs kadm.DescribedClientQuotas) string {
	var out []string
	for _, q := range qs {
		ents := make([]string, 0, len(q.Entity))
		for _, c := range q.Entity {
			ents = append(ents, c.String())
		}
		sort.Strings(ents)
		vals := make([]string, 0, len(q.Values))
		for _, v := range q.Values {
			vals = append(vals, fmt.Sprintf("%s=%g", v.Key, v.Value))
		}
		sort.Strings(vals)
		out = append(out, strings.Join(ents, ",")+": "+strings.Join(vals, ","))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// TestClientQuotasAlterDescribe proves AlterClientQuotas stores quotas in
// etcd, so DescribeClientQuotas through the other agent answers them
// (kadm), with Kafka's matching (exact, default, any; strict), its
// removals, validate-only, and Kafka's refusals of bad entities, keys and
// values and bad filters.
func TestClientQuotasAlterDescribe(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	a := kadm.NewClient(c.Client(t, pinnedDialer(c.Agents[0].Addr)))
	b := kadm.NewClient(c.Client(t, pinnedDialer(c.Agents[1].Addr)))
	set := func(k string, v float64) kadm.AlterClientQuotaOp { return kadm.AlterClientQuotaOp{Key: k, Value: v} }
	alter := func(entries ...kadm.AlterClientQuotaEntry) kadm.AlteredClientQuotas {
		t.Helper()
		res, err := a.AlterClientQuotas(ctx, entries)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, r := range alter(
		kadm.AlterClientQuotaEntry{Entity: quotaEntity("client-id", "app"), Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 500000), set("consumer_byte_rate", 1e6)}},
		kadm.AlterClientQuotaEntry{Entity: quotaEntity("client-id", "<default>"), Ops: []kadm.AlterClientQuotaOp{set("request_percentage", 12.5)}},
		kadm.AlterClientQuotaEntry{Entity: quotaEntity("user", "alice", "client-id", "app"), Ops: []kadm.AlterClientQuotaOp{set("controller_mutation_rate", 2.5)}},
		kadm.AlterClientQuotaEntry{Entity: quotaEntity("user", "<default>"), Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1024)}},
		kadm.AlterClientQuotaEntry{Entity: quotaEntity("ip", "10.0.0.1"), Ops: []kadm.AlterClientQuotaOp{set("connection_creation_rate", 5)}},
	) {
		if r.Err != nil {
			t.Fatalf("alter %s: %v %s", r.Entity, r.Err, r.ErrMessage)
		}
	}
	describe := func(strict bool, cs ...kadm.DescribeClientQuotaComponent) string {
		t.Helper()
		qs, err := b.DescribeClientQuotas(ctx, strict, cs)
		if err != nil {
			t.Fatal(err)
		}
		return described(qs)
	}
	name := func(s string) *string { return &s }
	for _, tc := range []struct {
		name   string
		strict bool
		cs     []kadm.DescribeClientQuotaComponent
		want   string
	}{
		{"all", false, nil, "client-id=<default>: request_percentage=12.5; client-id=app,user=alice: controller_mutation_rate=2.5; client-id=app: consumer_byte_rate=1e+06,producer_byte_rate=500000; ip=10.0.0.1: connection_creation_rate=5; user=<default>: producer_byte_rate=1024"},
		{"exact", false, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchName: name("app"), MatchType: 0}},
			"client-id=app,user=alice: controller_mutation_rate=2.5; client-id=app: consumer_byte_rate=1e+06,producer_byte_rate=500000"},
		{"exact strict", true, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchName: name("app"), MatchType: 0}},
			"client-id=app: consumer_byte_rate=1e+06,producer_byte_rate=500000"},
		{"default", false, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchType: 1}}, "client-id=<default>: request_percentage=12.5"},
		{"any client-id, strict", true, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchType: 2}},
			"client-id=<default>: request_percentage=12.5; client-id=app: consumer_byte_rate=1e+06,producer_byte_rate=500000"},
		{"any user", false, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 2}},
			"client-id=app,user=alice: controller_mutation_rate=2.5; user=<default>: producer_byte_rate=1024"},
		{"user and client-id", false, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: name("alice")}, {Type: "client-id", MatchType: 2}},
			"client-id=app,user=alice: controller_mutation_rate=2.5"},
		{"no match", false, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: name("bob")}}, ""},
	} {
		if got := describe(tc.strict, tc.cs...); got != tc.want {
			t.Errorf("describe %s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}

	// Removing the last value deletes the entity; validate-only changes nothing.
	alter(kadm.AlterClientQuotaEntry{Entity: quotaEntity("user", "<default>"), Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Remove: true}}})
	if res, err := a.ValidateAlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: quotaEntity("user", "carol"), Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1)}}}); err != nil || res[0].Err != nil {
		t.Fatalf("validate-only: %v %+v", err, res)
	}
	if got, want := describe(false, kadm.DescribeClientQuotaComponent{Type: "user", MatchType: 2}), "client-id=app,user=alice: controller_mutation_rate=2.5"; got != want {
		t.Fatalf("after removal and validate-only: %s, want %s", got, want)
	}

	// Kafka's refusals: INVALID_REQUEST with its message, nothing stored.
	for _, tc := range []struct {
		entity kadm.ClientQuotaEntity
		op     kadm.AlterClientQuotaOp
		msg    string
	}{
		{nil, set("producer_byte_rate", 1), "Invalid empty client quota entity"},
		{quotaEntity("group", "g"), set("producer_byte_rate", 1), "Unhandled client quota entity type: group"},
		{quotaEntity("user", ""), set("producer_byte_rate", 1), "Empty user not supported"},
		{quotaEntity("ip", "1.2.3.4", "user", "u"), set("producer_byte_rate", 1), "IP entity should"},
		{quotaEntity("ip", "not an ip!"), set("connection_creation_rate", 1), "is not a valid IP"},
		{quotaEntity("user", "u"), set("connection_creation_rate", 1), "Invalid configuration key connection_creation_rate"},
		{quotaEntity("ip", "1.2.3.4"), set("producer_byte_rate", 1), "Invalid configuration key producer_byte_rate"},
		{quotaEntity("user", "u"), set("producer_byte_rate", 0), "Quota producer_byte_rate must be greater than 0"},
		{quotaEntity("user", "u"), set("consumer_byte_rate", 1.5), "consumer_byte_rate cannot be a fractional value."},
		{quotaEntity("user", "u"), set("producer_byte_rate", 1e30), "is too large for a LONG."},
		{quotaEntity("user", "u"), set("bogus", 1), "Invalid configuration key bogus"},
	} {
		res := alter(kadm.AlterClientQuotaEntry{Entity: tc.entity, Ops: []kadm.AlterClientQuotaOp{tc.op}})
		if len(res) != 1 || !errors.Is(res[0].Err, kerr.InvalidRequest) || !strings.Contains(res[0].ErrMessage, tc.msg) {
			t.Errorf("alter %s %s=%g: %+v, want INVALID_REQUEST %q", tc.entity, tc.op.Key, tc.op.Value, res, tc.msg)
		}
	}
	if got := describe(false, kadm.DescribeClientQuotaComponent{Type: "user", MatchName: name("u")}); got != "" {
		t.Fatalf("refused alterations stored: %s", got)
	}
	for _, tc := range []struct {
		cs   []kadm.DescribeClientQuotaComponent
		want error
	}{
		{[]kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 0}}, kerr.InvalidRequest},
		{[]kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 1, MatchName: name("x")}}, kerr.InvalidRequest},
		{[]kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 2}, {Type: "user", MatchType: 1}}, kerr.InvalidRequest},
		{[]kadm.DescribeClientQuotaComponent{{Type: "ip", MatchType: 2}, {Type: "user", MatchType: 1}}, kerr.InvalidRequest},
		{[]kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 7}}, kerr.InvalidRequest},
		{[]kadm.DescribeClientQuotaComponent{{Type: "group", MatchType: 2}}, kerr.UnsupportedVersion},
	} {
		if _, err := b.DescribeClientQuotas(ctx, false, tc.cs); !errors.Is(err, tc.want) {
			t.Errorf("describe %+v: %v, want %v", tc.cs, err, tc.want)
		}
	}
}

// TestClientQuotaThrottles proves producer_byte_rate and consumer_byte_rate
// are enforced per agent as Kafka does (KIP-219): a produce past the rate
// is appended and answered at once with a throttle time, then the
// connection reads nothing for that long (a raw connection: a client
// library would wait on its own); a fetch past the rate answers no
// records and a throttle time; a client without a quota is not throttled.
func TestClientQuotaThrottles(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 1})
	ctx := testCtx(t, time.Minute)
	adm := kadm.NewClient(c.Client(t))
	const topic = "quota"
	maxMsg := "8388608"
	if _, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"max.message.bytes": &maxMsg}, topic); err != nil {
		t.Fatal(err)
	}
	const rate = 100 << 10 // bytes/s
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: quotaEntity("client-id", "raw-test"), // rawConn's client ID
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: rate}, {Key: "consumer_byte_rate", Value: rate}},
	}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("alter: %v %+v", err, res)
	}
	// 1.2x what the quota allows over its 10 s window.
	batch := segmenttest.Batch(segmenttest.BatchOptions{Value: make([]byte, 12*rate), Timestamp: time.Now().UnixMilli()})
	produce := kmsg.NewPtrProduceRequest()
	produce.Version = 9
	produce.Acks = -1
	produce.TimeoutMillis = 30000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = topic
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = batch
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)

	fast := dialRaw(t, c.Agents[0].Addr)
	fast.clientID = "fast"
	if resp := fast.roundTrip(produce).(*kmsg.ProduceResponse); resp.Topics[0].Partitions[0].ErrorCode != 0 || resp.ThrottleMillis != 0 {
		t.Fatalf("produce without a quota: %+v", resp)
	}
	raw := dialRaw(t, c.Agents[0].Addr)
	start := time.Now()
	resp := raw.roundTrip(produce).(*kmsg.ProduceResponse)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("throttled produce: %v, want appended", kerr.ErrorForCode(code))
	}
	// (120 KiB/s - 100) / 100 x 10 s = 2 s.
	if resp.ThrottleMillis < 1500 || resp.ThrottleMillis > 2500 {
		t.Fatalf("produce of %d bytes at a %d B/s quota: throttle %d ms, want about 2 s", len(batch), rate, resp.ThrottleMillis)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("throttled produce answered after %v, want at once (KIP-219)", took)
	}
	// Muted: the connection's next request is read once the throttle ends.
	start = time.Now()
	raw.roundTrip(kmsg.NewPtrMetadataRequest())
	waited := time.Since(start)
	t.Logf("throttle %d ms; the next request answered after %v", resp.ThrottleMillis, waited)
	if waited < time.Duration(resp.ThrottleMillis)*time.Millisecond*8/10 {
		t.Fatalf("the next request was answered after %v, want the %d ms throttle first (muted connection)", waited, resp.ThrottleMillis)
	}

	// Fetch: the records are past the consumer rate: none in the answer.
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 12
	fetch.MaxBytes = 64 << 20
	fetch.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 64 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	fr := dialRaw(t, c.Agents[0].Addr).roundTrip(fetch).(*kmsg.FetchResponse)
	if fr.ThrottleMillis < 1500 || len(fr.Topics) != 0 {
		t.Fatalf("throttled fetch: throttle %d ms, %d topics; want about 2 s and no records", fr.ThrottleMillis, len(fr.Topics))
	}
	ok := fast.roundTrip(fetch).(*kmsg.FetchResponse)
	if ok.ThrottleMillis != 0 || len(ok.Topics) != 1 || len(ok.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("fetch without a quota: throttle %d ms, %d topics", ok.ThrottleMillis, len(ok.Topics))
	}
}
