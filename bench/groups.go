package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The groups scenario (-scenarios groups): work shared by a KIP-932 share
// group against the same work read by a classic consumer group, and the
// time a KIP-848 consumer group takes to rebalance against a classic
// group's, on one agent.

// GroupResult is one group run's figures. Figures that do not apply are -1.
type GroupResult struct {
	Target    string `json:"target"`
	Kind      string `json:"kind"` // share, classic, classic-rebalance, consumer-rebalance
	Members   int    `json:"members"`
	Partition int    `json:"partitions"`
	Records   int64  `json:"records"`
	// RecPerS is records acknowledged (share) or committed (classic) per
	// second, from the first poll to no lag.
	RecPerS float64 `json:"records_per_s"`
	// EtcdTxnsPerRecord is etcd transactions per record in that window.
	EtcdTxnsPerRecord float64 `json:"etcd_txns_per_record"`
	// JoinS is the time from members starting to every partition owned
	// with every member holding one; LeaveS from half of them leaving to
	// the rest owning every partition.
	JoinS  float64 `json:"join_s"`
	LeaveS float64 `json:"leave_s"`
}

const groupTopic = "queue"

// measureGroups runs the groups scenario on one target: records records of
// 100 bytes in 3 partitions, consumed by a share group of 12 and by a
// classic group of 3; then 10 members join a 30-partition topic's classic
// group and KIP-848 group and half of them leave.
func measureGroups(ctx context.Context, t target, records int, dir string) ([]GroupResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	inst, err := t.start(ctx, dir, 3)
	if err != nil {
		return nil, err
	}
	defer inst.stop()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(inst.addr))
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, groupTopic); err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(inst.addr), kgo.DefaultProduceTopic(groupTopic), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return nil, err
	}
	val := make([]byte, 100)
	for i := range records {
		prod.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: val}, nil)
	}
	err = prod.Flush(ctx)
	prod.Close()
	if err != nil {
		return nil, fmt.Errorf("produce: %w", err)
	}
	var out []GroupResult
	for _, kind := range []string{"share", "classic"} {
		r, err := groupThroughput(ctx, inst, adm, t.name, kind, int64(records))
		if err != nil {
			return out, fmt.Errorf("%s group: %w", kind, err)
		}
		out = append(out, r)
	}
	if _, err := adm.CreateTopic(ctx, 30, -1, nil, "rebalance"); err != nil {
		return out, fmt.Errorf("create topic: %w", err)
	}
	for _, kind := range []string{"classic", "consumer"} {
		r, err := groupRebalance(ctx, inst, t.name, kind)
		if err != nil {
			return out, fmt.Errorf("%s rebalance: %w", kind, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// groupThroughput consumes the topic whole with a share group of 12 (each
// record accepted) or a classic group of 3 (offsets committed after each
// poll), and times it from the first poll to a lag of 0.
func groupThroughput(ctx context.Context, inst *instance, adm *kadm.Client, target, kind string, records int64) (GroupResult, error) {
	res := GroupResult{Target: target, Kind: kind, Partition: 3, Records: records, EtcdTxnsPerRecord: -1, JoinS: -1, LeaveS: -1}
	group := "bench-" + kind
	members := 3
	opts := []kgo.Opt{kgo.SeedBrokers(inst.addr), kgo.ConsumeTopics(groupTopic), kgo.FetchMaxWait(200 * time.Millisecond)}
	if kind == "share" {
		members = 12
		var o kadm.Offsets
		for p := range int32(3) {
			o.Add(kadm.Offset{Topic: groupTopic, Partition: p, At: 0})
		}
		if r, err := adm.AlterShareGroupOffsets(ctx, group, o); err != nil || r.Error() != nil {
			return res, fmt.Errorf("share group start offsets: %v %v", err, r.Error())
		}
		opts = append(opts, kgo.ShareGroup(group))
	} else {
		opts = append(opts, kgo.ConsumerGroup(group), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	}
	res.Members = members
	txns0 := etcdTxns(inst)
	start := time.Now()
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range members {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			cancel()
			wg.Wait()
			return res, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.Close()
			for cctx.Err() == nil {
				fs := cl.PollFetches(cctx)
				if kind == "share" {
					for _, r := range fs.Records() {
						r.Ack(kgo.AckAccept)
					}
					_ = cl.FlushAcks(cctx)
				} else {
					_ = cl.CommitUncommittedOffsets(cctx)
				}
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		lag, err := groupLag(ctx, adm, group, kind)
		if err == nil && lag == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			cancel()
			wg.Wait()
			return res, fmt.Errorf("lag %d after 5 minutes (%v)", lag, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	el := time.Since(start)
	txns1 := etcdTxns(inst)
	cancel()
	wg.Wait()
	res.RecPerS = float64(records) / el.Seconds()
	if txns0 >= 0 && txns1 >= txns0 {
		res.EtcdTxnsPerRecord = float64(txns1-txns0) / float64(records)
	}
	return res, nil
}

// groupLag is the group's lag over the topic's partitions (-1 before every
// partition has an offset).
func groupLag(ctx context.Context, adm *kadm.Client, group, kind string) (int64, error) {
	var lag int64
	if kind == "share" {
		offs, err := adm.DescribeShareGroupOffsets(ctx, group)
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			return -1, err
		}
		for p := range int32(3) {
			o, ok := offs[group].Offsets.Lookup(groupTopic, p)
			if !ok || o.Lag < 0 {
				return -1, nil
			}
			lag += o.Lag
		}
		return lag, nil
	}
	l, err := adm.Lag(ctx, group)
	if err != nil {
		return -1, err
	}
	dl, ok := l[group]
	if !ok || dl.Error() != nil {
		return -1, dl.Error()
	}
	for p := range int32(3) {
		ml, ok := dl.Lag.Lookup(groupTopic, p)
		if !ok || ml.Commit.At < 0 {
			return -1, nil
		}
		lag += ml.Lag
	}
	return lag, nil
}

// groupRebalance starts 10 members of a classic group (cooperative-sticky)
// or a KIP-848 consumer group on the 30-partition topic, times until they
// own every partition with each holding one, then closes 5 and times until
// the other 5 own every partition.
func groupRebalance(ctx context.Context, inst *instance, target, kind string) (GroupResult, error) {
	const members, partitions = 10, 30
	res := GroupResult{Target: target, Kind: kind + "-rebalance", Members: members, Partition: partitions, RecPerS: -1, EtcdTxnsPerRecord: -1}
	var mu sync.Mutex
	owned := map[int]map[int32]bool{}
	settled := func(alive int) bool {
		mu.Lock()
		defer mu.Unlock()
		all := map[int32]bool{}
		for i := range alive {
			if len(owned[i]) == 0 {
				return false
			}
			for p := range owned[i] {
				if all[p] {
					return false // two owners: the move is not finished
				}
				all[p] = true
			}
		}
		return len(all) == partitions
	}
	group := "bench-rebalance-" + kind
	var cls []*kgo.Client
	defer func() {
		for _, cl := range cls {
			cl.Close()
		}
	}()
	start := time.Now()
	var polled atomic.Int64
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := range members {
		owned[i] = map[int32]bool{}
		opts := []kgo.Opt{kgo.SeedBrokers(inst.addr), kgo.ConsumeTopics("rebalance"), kgo.ConsumerGroup(group),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				mu.Lock()
				for _, p := range a["rebalance"] {
					owned[i][p] = true
				}
				mu.Unlock()
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
				mu.Lock()
				for _, p := range r["rebalance"] {
					delete(owned[i], p)
				}
				mu.Unlock()
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
				mu.Lock()
				for _, p := range r["rebalance"] {
					delete(owned[i], p)
				}
				mu.Unlock()
			}),
		}
		if kind == "consumer" {
			opts = append(opts, kgo.ServerSideBalancer(), kgo.Balancers(kgo.CooperativeStickyBalancer()))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return res, err
		}
		cls = append(cls, cl)
		go func() {
			for cctx.Err() == nil {
				cl.PollFetches(cctx)
				polled.Add(1)
			}
		}()
	}
	wait := func(alive int) (time.Duration, error) {
		from := time.Now()
		for !settled(alive) {
			if time.Since(from) > 2*time.Minute || ctx.Err() != nil {
				return 0, fmt.Errorf("%d members never settled on %d partitions", alive, partitions)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(from), nil
	}
	if _, err := wait(members); err != nil {
		return res, err
	}
	res.JoinS = time.Since(start).Seconds()
	left := time.Now()
	for i := members / 2; i < members; i++ {
		cls[i].Close() // leaves the group
		mu.Lock()
		owned[i] = map[int32]bool{}
		mu.Unlock()
	}
	cls = cls[:members/2]
	if _, err := wait(members / 2); err != nil {
		return res, err
	}
	res.LeaveS = time.Since(left).Seconds()
	return res, nil
}

// etcdTxns is the instance's etcd transaction count, -1 when unknown.
func etcdTxns(inst *instance) int64 {
	if inst.etcdTxns == nil {
		return -1
	}
	n, err := inst.etcdTxns()
	if err != nil {
		return -1
	}
	return n
}

// runGroups runs the groups scenario on shale-dev and shale-s3.
func runGroups(ctx context.Context, shale, tmp string, records int) ([]GroupResult, error) {
	var out []GroupResult
	for _, t := range []target{shaleDevTarget(shale, 0), shaleS3Target(shale, 0)} {
		log.Printf("bench: %s, groups: share vs classic throughput, KIP-848 vs classic rebalance", t.name)
		rs, err := measureGroups(ctx, t, records, filepath.Join(tmp, t.name+"-groups"))
		out = append(out, rs...)
		if err != nil {
			return out, fmt.Errorf("%s: %w", t.name, err)
		}
	}
	return out, nil
}

// groupsTable prints the groups scenario.
func groupsTable(w io.Writer, rs []GroupResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "groups: %d records of 100 B on 3 partitions, consumed by a share group of 12 (each record accepted) and a classic group of 3 (offsets committed each poll); then 10 members join a 30-partition group and 5 leave\n", rs[0].Records)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tgroup\tmembers\trecords/s\tetcd txns/record\tjoin s\tleave s\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n", r.Target, r.Kind, r.Members, cell(r.RecPerS, "%.0f"), cell(r.EtcdTxnsPerRecord, "%.4f"), cell(r.JoinS, "%.2f"), cell(r.LeaveS, "%.2f"))
	}
	tw.Flush()
	fmt.Fprintln(w)
}
