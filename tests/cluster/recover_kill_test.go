package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/internal/testenv"
)

// TestRecoverAfterKillUnderLoad proves the recovery point under load:
// producers write through both agents (manifest every second) when both
// are SIGKILLed; etcd is then lost and recovered from the bucket. Every
// acknowledged record at an offset below the recovered end of its
// partition reads back with its value at that offset, the offsets below
// the end are dense (every one read), and what was lost is only the tail
// acknowledged after the last manifest (logged: the measured recovery
// point).
func TestRecoverAfterKillUnderLoad(t *testing.T) {
	etcd := testenv.StartEtcdProcess(t)
	c := Start(t, Options{Agents: 2, EtcdEndpoints: etcd.Endpoints(), Args: []string{"--manifest-interval", "1s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const topic = "loaded"
	c.CreateTopic(t, 0, topic, 4)

	var mu sync.Mutex
	acked := map[string]string{} // "partition/offset" -> value
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c.Client(t, kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(DialTo(c.Addr(i))), kgo.DefaultProduceTopic(topic),
				kgo.RecordRetries(0), kgo.ProduceRequestTimeout(5*time.Second), kgo.RecordDeliveryTimeout(5*time.Second))
			for k := 0; loadCtx.Err() == nil && k < 100000; k++ {
				v := fmt.Sprintf("a%d-%06d", i, k)
				cl.Produce(loadCtx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
					if err == nil {
						mu.Lock()
						acked[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = string(r.Value)
						mu.Unlock()
					}
				})
				time.Sleep(2 * time.Millisecond)
			}
			fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = cl.Flush(fctx) // records not answered by now were never acknowledged
			fcancel()
		}()
	}
	time.Sleep(4 * time.Second)
	c.Kill(0)
	c.Kill(1)
	stopLoad()
	wg.Wait()

	etcd.Wipe()
	s3 := c.S3()
	runShale(t, "", "recover", "--etcd-endpoints", strings.Join(etcd.Endpoints(), ","),
		"--bucket", "s3://"+s3.Bucket+"/test", "--s3-endpoint", s3.Endpoint, "--s3-region", s3.Region,
		"--s3-access-key", s3.AccessKey, "--s3-secret-key", s3.SecretKey)
	c.Restart(0)
	c.Restart(1)

	adm := kadm.NewClient(c.Client(t, kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(DialTo(c.Addr(1)))))
	ends := endOffsets(ctx, t, adm, topic)
	var total int64
	for _, e := range ends {
		total += e
	}
	got := map[string]string{}
	if total > 0 {
		got = readAll(ctx, t, c, 1, topic)
	}
	for p, end := range ends {
		for o := range end {
			if _, ok := got[fmt.Sprintf("%d/%d", p, o)]; !ok {
				t.Errorf("offset %d/%d below the recovered end %d not read", p, o, end)
			}
		}
	}
	kept, lost := 0, 0
	for pos, v := range acked {
		var p int32
		var o int64
		fmt.Sscanf(pos, "%d/%d", &p, &o)
		if o >= ends[p] {
			lost++
			continue
		}
		kept++
		if got[pos] != "="+v {
			t.Errorf("record %s acknowledged at %s, read %q there after recover", v, pos, got[pos])
		}
	}
	t.Logf("%d records acknowledged: %d recovered at their offsets, %d acknowledged after the last manifest lost", len(acked), kept, lost)
	if kept == 0 {
		t.Fatal("no acknowledged record recovered: no manifest covered the load")
	}
}
