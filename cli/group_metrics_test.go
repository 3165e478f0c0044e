package cli

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
)

// TestGroupMetricsByType proves /metrics counts the groups an agent
// coordinates, their members and their rebalances by type (a classic
// group, a KIP-848 consumer group and a share group live side by side),
// and a share group's acquired, redelivered and acknowledged records by
// acknowledgement type.
func TestGroupMetricsByType(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	dir := t.TempDir()
	st := startStack(t, StackOptions{
		DataDir: dir, AdminListen: "127.0.0.1:0", EtcdEndpoints: endpoints, Bucket: filepath.Join(dir, "bucket"), NoLifecycle: true,
		Engine: engine.Config{FlushInterval: 10 * time.Millisecond},
		Agent:  agent.Config{Listen: "127.0.0.1:0", AgentTTL: 5 * time.Second},
	})
	addr, admin := st.Agent.Addr().String(), st.Admin.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(mustClient(t, addr))
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, "work"); err != nil {
		t.Fatal(err)
	}
	prod := mustClient(t, addr, kgo.DefaultProduceTopic("work"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 20 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}, Partition: int32(i % 2)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A classic and a KIP-848 group, each with one member that has
	// read everything.
	for _, opts := range [][]kgo.Opt{
		{kgo.ConsumerGroup("classic-g")},
		{kgo.ConsumerGroup("next-g"), kgo.ServerSideBalancer(), kgo.Balancers(kgo.RangeBalancer())},
	} {
		cl := mustClient(t, addr, append(opts, kgo.ConsumeTopics("work"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
		for got := 0; got < 20; {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("group consumer read %d of 20: %v", got, fs.Errors())
			}
			got += len(fs.Records())
		}
	}
	// A share group: every record acquired; offset 0 of each partition
	// released (then acquired again and accepted), 1 rejected, the rest
	// accepted.
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: "work", Partition: 0, At: 0})
	o.Add(kadm.Offset{Topic: "work", Partition: 1, At: 0})
	if r, err := adm.AlterShareGroupOffsets(ctx, "share-g", o); err != nil || r.Error() != nil {
		t.Fatalf("alter share group offsets: %v %v", err, r.Error())
	}
	// Started after the offsets are set: a group with members refuses them.
	sc := mustClient(t, addr, kgo.ConsumeTopics("work"), kgo.ShareGroup("share-g"), kgo.FetchMaxWait(200*time.Millisecond))
	for done := 0; done < 20; {
		fs := sc.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("share consumer finished %d of 20: %v", done, fs.Errors())
		}
		for _, r := range fs.Records() {
			switch {
			case r.Offset == 0 && r.DeliveryCount() == 1:
				r.Ack(kgo.AckRelease)
			case r.Offset == 1:
				r.Ack(kgo.AckReject)
				done++
			default:
				r.Ack(kgo.AckAccept)
				done++
			}
		}
		if err := sc.FlushAcks(ctx); err != nil {
			t.Fatal(err)
		}
	}

	m := scrape(t, admin)
	for series, want := range map[string]float64{
		`shale_groups{type="classic"}`:                       1,
		`shale_groups{type="consumer"}`:                      1,
		`shale_groups{type="share"}`:                         1,
		`shale_group_members{type="classic"}`:                1,
		`shale_group_members{type="consumer"}`:               1,
		`shale_group_members{type="share"}`:                  1,
		`shale_share_records_acquired_total`:                 22, // 20, and the 2 released again
		`shale_share_records_redelivered_total`:              2,
		`shale_share_acknowledgements_total{type="accept"}`:  18,
		`shale_share_acknowledgements_total{type="release"}`: 2,
		`shale_share_acknowledgements_total{type="reject"}`:  2,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
	for _, typ := range []string{"classic", "consumer", "share"} {
		if s := `shale_group_rebalances_total{type="` + typ + `"}`; m[s] < 1 {
			t.Errorf("%s = %v, want at least 1", s, m[s])
		}
	}
}
