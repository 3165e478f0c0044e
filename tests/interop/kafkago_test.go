package interop

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestKafkaGoRoundTrip proves that segmentio/kafka-go's Writer (Hash
// balancer, acks=all) and per-partition Readers (no group) round-trip
// 10,000 keyed records with headers and explicit timestamps, writing
// through agent A and reading through agent B.
func TestKafkaGoRoundTrip(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic = "kafka-go"
	c.CreateTopic(t, 0, topic, numPartitions)
	want := func(i int) Record { return recordFor("kafka-go", i) }
	acks := produceKafkaGo(t, c.Addr(0), topic, numRecords, want)
	got := consumeKafkaGo(t, c.Addr(1), topic, acks)
	verify(t, expectation{n: numRecords, want: want, acks: acks, partitions: numPartitions}, got)
	checkEndOffsets(t, c.Addr(1), topic, numRecords, acks)
}

func produceKafkaGo(t *testing.T, addr, topic string, n int, rec func(int) Record) map[int]Pos {
	t.Helper()
	var (
		mu    sync.Mutex
		acks  = make(map[int]Pos, n)
		fails int
	)
	w := &kafka.Writer{
		Addr:         kafka.TCP(addr),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    500,
		BatchTimeout: 5 * time.Millisecond,
		WriteTimeout: 30 * time.Second,
		ReadTimeout:  30 * time.Second,
		Transport:    &kafka.Transport{Dial: cluster.DialTo(addr), ClientID: "shale-interop"},
		// Completion sees each batch with partitions and offsets set.
		Completion: func(msgs []kafka.Message, err error) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				i, perr := indexOf(string(m.Value))
				if perr != nil {
					t.Errorf("completion for a record not ours: %v", perr)
					continue
				}
				if err != nil {
					fails++
					continue
				}
				acks[i] = Pos{int32(m.Partition), m.Offset}
			}
		},
	}
	msgs := make([]kafka.Message, n)
	for i := range n {
		r := rec(i)
		m := kafka.Message{Key: []byte(r.Key), Value: []byte(r.Value), Time: time.UnixMilli(r.Timestamp)}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: []byte(h.Value)})
		}
		msgs[i] = m
	}
	ctx, cancel := context.WithTimeout(context.Background(), produceTimeout)
	defer cancel()
	// The sync Writer splits the slice into batches, in order per
	// partition.
	werr := w.WriteMessages(ctx, msgs...)
	if err := w.Close(); err != nil {
		t.Errorf("close kafka-go writer: %v", err)
	}
	if werr != nil {
		var we kafka.WriteErrors
		if errors.As(werr, &we) {
			t.Fatalf("kafka-go write via %s: %d of %d records failed; first: %v", addr, we.Count(), n, firstErr(we))
		}
		t.Fatalf("kafka-go write via %s: %v", addr, werr)
	}
	mu.Lock()
	defer mu.Unlock()
	if fails > 0 || len(acks) != n {
		t.Fatalf("kafka-go write via %s: %d records acknowledged, %d failed, want %d acknowledged", addr, len(acks), fails, n)
	}
	return acks
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// consumeKafkaGo reads each partition with its own kafka.Reader (no group)
// from the first offset, as many records as were acknowledged there.
func consumeKafkaGo(t *testing.T, addr, topic string, acks map[int]Pos) []Record {
	t.Helper()
	perPart := map[int32]int{}
	for _, p := range acks {
		perPart[p.Partition]++
	}
	ctx, cancel := context.WithTimeout(context.Background(), consumeTimeout)
	defer cancel()
	var (
		mu  sync.Mutex
		out []Record
		wg  sync.WaitGroup
	)
	for p := range int32(numPartitions) {
		want := perPart[p]
		wg.Go(func() {
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers:   []string{addr},
				Topic:     topic,
				Partition: int(p),
				Dialer:    &kafka.Dialer{DialFunc: cluster.DialTo(addr), Timeout: 10 * time.Second, ClientID: "shale-interop"},
				MinBytes:  1,
				MaxBytes:  8 << 20,
				MaxWait:   500 * time.Millisecond,
			})
			defer r.Close()
			if err := r.SetOffset(kafka.FirstOffset); err != nil {
				t.Errorf("kafka-go reader %s/%d: set offset: %v", topic, p, err)
				return
			}
			for n := 0; n < want; n++ {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					t.Errorf("kafka-go read %s/%d via %s: %d of %d records: %v", topic, p, addr, n, want, err)
					return
				}
				rec := Record{Partition: int32(m.Partition), Offset: m.Offset, Key: string(m.Key), Value: string(m.Value),
					Timestamp: m.Time.UnixMilli()}
				for _, h := range m.Headers {
					rec.Headers = append(rec.Headers, Header{h.Key, string(h.Value)})
				}
				mu.Lock()
				out = append(out, rec)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}
