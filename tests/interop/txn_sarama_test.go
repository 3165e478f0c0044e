package interop

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestSaramaTransactions proves transactions with a second client family,
// sarama (protocol 2.8, so InitProducerId v4, AddPartitionsToTxn v2,
// EndTxn v2, TxnOffsetCommit v3): a transactional producer commits,
// aborts and commits again, the last with a group offset
// (AddOffsetsToTxn, TxnOffsetCommit) that the group then shows, while the
// offset sent in the aborted transaction never shows; a read_committed
// consumer reads exactly the committed records, a read_uncommitted one
// every record and no marker; and a second producer with the same
// transactional ID fences the first, whose next transaction fails with a
// fatal PRODUCER_FENCED.
func TestSaramaTransactions(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic, group, txnID, partitions, count = "sarama-txn", "sarama-txn-group", "sarama-txn-1", 3, 30
	c.CreateTopic(t, 0, topic, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	newProducer := func() sarama.SyncProducer {
		cfg := sarama.NewConfig()
		cfg.Version = sarama.V2_8_0_0
		cfg.ClientID = "shale-interop-sarama-txn"
		cfg.Producer.Idempotent = true
		cfg.Producer.Transaction.ID = txnID
		cfg.Producer.Transaction.Timeout = time.Minute
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Return.Successes = true
		cfg.Producer.Retry.Max = 10
		cfg.Net.MaxOpenRequests = 1
		p, err := sarama.NewSyncProducer(c.Addrs(), cfg)
		if err != nil {
			t.Fatalf("sarama transactional producer: %v", err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	msgs := func(prefix string) []*sarama.ProducerMessage {
		var ms []*sarama.ProducerMessage
		for i := range count {
			ms = append(ms, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)),
				Value: sarama.StringEncoder(fmt.Sprintf("%s-%d", prefix, i))})
		}
		return ms
	}
	offsets := func(off int64) map[string][]*sarama.PartitionOffsetMetadata {
		return map[string][]*sarama.PartitionOffsetMetadata{topic: {{Partition: 1, Offset: off}}}
	}
	// run writes prefix's records in one transaction, with a group offset
	// when off >= 0, and commits or aborts it.
	run := func(p sarama.SyncProducer, prefix string, off int64, commit bool) error {
		if err := p.BeginTxn(); err != nil {
			return fmt.Errorf("begin %s: %w", prefix, err)
		}
		if err := p.SendMessages(msgs(prefix)); err != nil {
			return fmt.Errorf("send %s: %w", prefix, err)
		}
		if off >= 0 {
			if err := p.AddOffsetsToTxn(offsets(off), group); err != nil {
				return fmt.Errorf("offsets of %s: %w", prefix, err)
			}
		}
		if commit {
			return p.CommitTxn()
		}
		return p.AbortTxn()
	}
	t0 := time.Now()
	p1 := newProducer()
	for _, step := range []struct {
		prefix string
		off    int64
		commit bool
	}{{"c1", -1, true}, {"a", 99, false}, {"c2", 42, true}} {
		if err := run(p1, step.prefix, step.off, step.commit); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("three transactions in %v", time.Since(t0).Round(time.Millisecond))
	adm := kadm.NewClient(c.Client(t))
	groupOffset := func() int64 {
		t.Helper()
		os, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatalf("fetch offsets of %s: %v", group, err)
		}
		o, ok := os.Lookup(topic, 1)
		if !ok {
			return -1
		}
		return o.At
	}
	// The commit's offsets are moved to the group once its markers are
	// written, which EndTxn waits for.
	if got := groupOffset(); got != 42 {
		t.Errorf("group offset of %s/1 after the commit: %d, want 42 (99 was sent in the aborted transaction)", topic, got)
	}

	// A second producer of the same ID fences the first.
	p2 := newProducer()
	if err := run(p1, "fenced", -1, true); err == nil {
		t.Errorf("the first producer committed after the second initialized; want PRODUCER_FENCED")
	} else if !fencedErr(err) || p1.TxnStatus()&sarama.ProducerTxnFlagFatalError == 0 {
		t.Errorf("the fenced producer's transaction: %v (status %v), want a fatal PRODUCER_FENCED", err, p1.TxnStatus())
	}
	if err := run(p2, "c3", -1, true); err != nil {
		t.Fatal(err)
	}
	t.Logf("fenced and c3 at %v", time.Since(t0).Round(time.Millisecond))

	read := func(isolation sarama.IsolationLevel, want int) []string {
		t.Helper()
		cfg := sarama.NewConfig()
		cfg.Version = sarama.V2_8_0_0
		cfg.Consumer.IsolationLevel = isolation
		cfg.Consumer.MaxWaitTime = 200 * time.Millisecond
		cons, err := sarama.NewConsumer([]string{c.Addr(1)}, cfg)
		if err != nil {
			t.Fatalf("sarama consumer: %v", err)
		}
		defer cons.Close()
		got := make(chan string, 1000)
		for p := range int32(partitions) {
			pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
			if err != nil {
				t.Fatalf("consume %s/%d: %v", topic, p, err)
			}
			defer pc.AsyncClose()
			go func() {
				for m := range pc.Messages() {
					got <- string(m.Value)
				}
			}()
		}
		var vs []string
		// Past want, wait a moment for anything that should not be there.
		for timeout := readTimeout; ; {
			select {
			case v := <-got:
				vs = append(vs, v)
				if len(vs) == want {
					timeout = time.Second
				}
				continue
			case <-time.After(timeout):
			}
			break
		}
		slices.Sort(vs)
		t.Logf("isolation %d: %d records at %v", isolation, len(vs), time.Since(t0).Round(time.Millisecond))
		return vs
	}
	want := func(prefixes ...string) []string { return txnValues(count, prefixes...) }
	if got, w := read(sarama.ReadCommitted, 3*count), want("c1", "c2", "c3"); !slices.Equal(got, w) {
		t.Errorf("read_committed read %d records, want the %d committed (c1, c2, c3): %.300q", len(got), len(w), got)
	}
	// The fenced producer's records never reached the log (refused), so
	// read_uncommitted reads the aborted ones and the committed ones.
	if got, w := read(sarama.ReadUncommitted, 4*count), want("c1", "a", "c2", "c3"); !slices.Equal(got, w) {
		t.Errorf("read_uncommitted read %d records, want %d (c1, a, c2, c3): %.300q", len(got), len(w), got)
	}
}

// fencedErr reports whether err, as sarama returns it (a SendMessages
// error is ProducerErrors), is PRODUCER_FENCED.
func fencedErr(err error) bool {
	var pes sarama.ProducerErrors
	if errors.As(err, &pes) {
		for _, pe := range pes {
			if !errors.Is(pe.Err, sarama.ErrProducerFenced) {
				return false
			}
		}
		return len(pes) > 0
	}
	return errors.Is(err, sarama.ErrProducerFenced)
}
