package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/engine/enginetest"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// newTestServer builds a server over a real engine, etcd and directory
// bucket without listening: tests call decode and dispatch directly.
func newTestServer(t testing.TB) *Server {
	t.Helper()
	cli, _ := testenv.Etcd(t)
	meta := metastore.New(cli, "/shale-fuzz")
	eng, err := engine.New(engine.Config{DataDir: t.TempDir(), FlushInterval: 5 * time.Millisecond}, enginetest.DirStore(t), meta, nil)
	eng = enginetest.Started(t, eng, err)
	s, err := New(Config{AutoCreateTopics: true, NodeID: 1}, eng, meta, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.nodeID, s.host, s.port = 1, "127.0.0.1", 9092
	t.Cleanup(func() { s.cancel() })
	return s
}

// frameBody encodes req with a request header, without the size prefix.
func frameBody(req kmsg.Request, version int16) []byte {
	req.SetVersion(version)
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz")).AppendRequest(nil, req, 7)[4:]
}

// fuzzSeeds are valid requests of every served API at several versions.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	add := func(req kmsg.Request, versions ...int16) {
		for _, v := range versions {
			seeds = append(seeds, frameBody(req, v))
		}
	}
	add(kmsg.NewPtrApiVersionsRequest(), 0, 3, 5)

	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("fz")
	md.Topics = append(md.Topics, mt)
	md.AllowAutoTopicCreation = true
	add(md, 0, 4, 9, 12, 13)
	add(kmsg.NewPtrMetadataRequest(), 1, 13) // all topics

	ct := kmsg.NewPtrCreateTopicsRequest()
	ctt := kmsg.NewCreateTopicsRequestTopic()
	ctt.Topic, ctt.NumPartitions, ctt.ReplicationFactor = "fz2", 2, -1
	cfg := kmsg.NewCreateTopicsRequestTopicConfig()
	cfg.Name, cfg.Value = "retention.ms", kmsg.StringPtr("1000")
	ctt.Configs = append(ctt.Configs, cfg)
	ct.Topics = append(ct.Topics, ctt)
	add(ct, 0, 5, 7)

	batch := segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Value: []byte("v")})
	pr := kmsg.NewPtrProduceRequest()
	pr.Acks, pr.TimeoutMillis = -1, 500
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "fz"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = batch
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	add(pr, 3, 9, 13)
	pr0 := *pr
	pr0.Acks = 0
	add(&pr0, 9)

	fr := kmsg.NewPtrFetchRequest()
	fr.MaxWaitMillis, fr.MinBytes, fr.MaxBytes = 10, 1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "fz"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fr.Topics = append(fr.Topics, ft)
	add(fr, 4, 11, 12, 13, 18)
	fs := *fr // a new session, then an incremental fetch forgetting a partition
	fs.SessionEpoch = 0
	add(&fs, 7, 18)
	fi := *fr
	fi.SessionID, fi.SessionEpoch = 1, 1
	fg := kmsg.NewFetchRequestForgottenTopic()
	fg.Topic, fg.Partitions = "fz", []int32{0, 3}
	fi.ForgottenTopics = append(fi.ForgottenTopics, fg)
	add(&fi, 7, 18)

	lo := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "fz"
	for _, ts := range []int64{-1, -2, -3, -4, -5, -6, 0} {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Timestamp = ts
		lt.Partitions = append(lt.Partitions, lp)
	}
	lo.Topics = append(lo.Topics, lt)
	add(lo, 1, 6, 11)

	add(kmsg.NewPtrInitProducerIDRequest(), 0, 4, 5)

	dc := kmsg.NewPtrDescribeConfigsRequest()
	dr := kmsg.NewDescribeConfigsRequestResource()
	dr.ResourceType, dr.ResourceName = kmsg.ConfigResourceTypeTopic, "fz"
	dc.Resources = append(dc.Resources, dr)
	add(dc, 0, 4)

	ac := kmsg.NewPtrAlterConfigsRequest()
	ar := kmsg.NewAlterConfigsRequestResource()
	ar.ResourceType, ar.ResourceName = kmsg.ConfigResourceTypeTopic, "fz"
	arc := kmsg.NewAlterConfigsRequestResourceConfig()
	arc.Name, arc.Value = "retention.bytes", kmsg.StringPtr("100")
	ar.Configs = append(ar.Configs, arc)
	ac.Resources = append(ac.Resources, ar)
	add(ac, 0, 2)

	ia := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ir := kmsg.NewIncrementalAlterConfigsRequestResource()
	ir.ResourceType, ir.ResourceName = kmsg.ConfigResourceTypeTopic, "fz"
	irc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	irc.Name, irc.Op, irc.Value = "cleanup.policy", kmsg.IncrementalAlterConfigOpAppend, kmsg.StringPtr("delete")
	ir.Configs = append(ir.Configs, irc)
	ia.Resources = append(ia.Resources, ir)
	add(ia, 0, 1)

	cp := kmsg.NewPtrCreatePartitionsRequest()
	cpt := kmsg.NewCreatePartitionsRequestTopic()
	cpt.Topic, cpt.Count = "fz", 3
	cp.Topics = append(cp.Topics, cpt)
	add(cp, 0, 3)

	add(kmsg.NewPtrDescribeClusterRequest(), 0, 2)

	el := kmsg.NewPtrElectLeadersRequest()
	elt := kmsg.NewElectLeadersRequestTopic()
	elt.Topic, elt.Partitions = "fz", []int32{0, 7}
	el.Topics = append(el.Topics, elt)
	add(el, 0, 2)
	pa := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	pat := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	pat.Topic = "fz"
	pap := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	pap.Replicas = []int32{1}
	pat.Partitions = append(pat.Partitions, pap)
	pa.Topics = append(pa.Topics, pat)
	add(pa, 0, 1)

	oe := kmsg.NewPtrOffsetForLeaderEpochRequest()
	ot := kmsg.NewOffsetForLeaderEpochRequestTopic()
	ot.Topic = "fz"
	op := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	ot.Partitions = append(ot.Partitions, op)
	oe.Topics = append(oe.Topics, ot)
	add(oe, 2, 4)

	dt := kmsg.NewPtrDeleteTopicsRequest()
	dt.TopicNames = []string{"fz2"}
	add(dt, 0, 5)

	dq := kmsg.NewPtrDescribeClientQuotasRequest()
	dq.Components = []kmsg.DescribeClientQuotasRequestComponent{{EntityType: "client-id", MatchType: 0, Match: kmsg.StringPtr("fz")}, {EntityType: "user", MatchType: 2}}
	add(dq, 0, 1)
	aq := kmsg.NewPtrAlterClientQuotasRequest()
	aqe := kmsg.NewAlterClientQuotasRequestEntry()
	aqe.Entity = []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "user", Name: kmsg.StringPtr("fz")}, {Type: "client-id"}}
	aqe.Ops = []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1 << 20}, {Key: "request_percentage", Remove: true}}
	aq.Entries = append(aq.Entries, aqe)
	aq.ValidateOnly = true
	add(aq, 0, 1)

	add(kmsg.NewPtrFindCoordinatorRequest(), 0, 4) // not served
	seeds = append(seeds, nil, make([]byte, 10), []byte{0x7f, 0xff, 0, 0, 0, 0, 0, 1, 0xff, 0xff})
	return seeds
}

// FuzzRequest proves that no frame body, however malformed, makes the decode
// and dispatch path panic, and that every answer it produces encodes.
func FuzzRequest(f *testing.F) {
	s := newTestServer(f)
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, rc, early, err := s.decode(body)
		if err != nil {
			return
		}
		if early != nil {
			appendResponse(nil, rc.corr, early)
			return
		}
		rep, err := s.dispatch(ctx, rc, req)
		if err != nil {
			return
		}
		resp := rep.resp
		if rep.wait != nil {
			if resp, err = rep.wait(ctx); err != nil {
				return
			}
		}
		if resp != nil {
			appendResponse(nil, rc.corr, resp)
		} else if !rep.noResponse {
			t.Fatalf("%s v%d: no response and not marked as having none", kmsg.NameForKey(rc.key), rc.version)
		}
	})
}

// TestFuzzSeedsAreServed proves the fuzz seeds reach the handlers (decode
// and dispatch succeed), so fuzzing starts from the real paths.
func TestFuzzSeedsAreServed(t *testing.T) {
	s := newTestServer(t)
	seeds := fuzzSeeds()
	for i, seed := range seeds[:len(seeds)-3] { // the last three are garbage
		req, rc, early, err := s.decode(seed)
		if err != nil || early != nil {
			t.Fatalf("seed %d: decode: %v (early answer %v)", i, err, early != nil)
		}
		if _, served := apis[rc.key]; !served {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rep, err := s.dispatch(ctx, rc, req)
		if err == nil && rep.wait != nil {
			_, err = rep.wait(ctx)
		}
		cancel()
		if err != nil {
			t.Fatalf("seed %d (%s v%d): %v", i, kmsg.NameForKey(rc.key), rc.version, err)
		}
	}
}
