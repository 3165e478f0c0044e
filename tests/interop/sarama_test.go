package interop

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestSaramaRoundTrip proves that sarama's idempotent producers (the
// SyncProducer at protocol version 2.8, the AsyncProducer at 3.6) and its
// partition consumers (no group) round-trip 10,000 keyed records with
// headers and explicit timestamps, producing through agent A and consuming
// through agent B.
func TestSaramaRoundTrip(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Agents: 2})
	versions := []struct {
		name    string
		version sarama.KafkaVersion
		async   bool
	}{
		{"sync-v2.8", sarama.V2_8_0_0, false},
		{"async-v3.6", sarama.V3_6_0_0, true},
	}
	for _, tc := range versions {
		t.Run(tc.name, func(t *testing.T) {
			topic := "sarama-" + tc.name
			c.CreateTopic(t, 0, topic, numPartitions)
			src := "sarama/" + tc.name
			want := func(i int) Record { return recordFor(src, i) }
			produce := produceSarama
			if tc.async {
				produce = produceSaramaAsync
			}
			acks := produce(t, c.Addr(0), tc.version, topic, numRecords, want)
			got := consumeSarama(t, c.Addr(1), tc.version, topic, acks)
			verify(t, expectation{n: numRecords, want: want, acks: acks, partitions: numPartitions}, got)
			checkEndOffsets(t, c.Addr(1), topic, numRecords, acks)
		})
	}
}

// pinnedDialer is a sarama proxy dialer that connects to one agent
// whatever address sarama asks for.
type pinnedDialer struct{ addr string }

func (d pinnedDialer) Dial(network, _ string) (net.Conn, error) {
	return cluster.DialTo(d.addr)(context.Background(), network, "")
}

func saramaConfig(addr string, version sarama.KafkaVersion) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = version
	cfg.ClientID = "shale-interop"
	cfg.Net.Proxy.Enable = true
	cfg.Net.Proxy.Dialer = pinnedDialer{addr}
	cfg.Net.DialTimeout = 10 * time.Second
	cfg.Net.ReadTimeout = 30 * time.Second
	cfg.Net.WriteTimeout = 30 * time.Second
	cfg.Metadata.Retry.Max = 10
	return cfg
}

// saramaProducerConfig is an idempotent acks=all producer's configuration.
func saramaProducerConfig(addr string, version sarama.KafkaVersion) *sarama.Config {
	cfg := saramaConfig(addr, version)
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1 // sarama requires it for idempotence
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Flush.Messages = 500
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	return cfg
}

func saramaMessage(topic string, i int, r Record) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(r.Key),
		Value: sarama.StringEncoder(r.Value), Timestamp: time.UnixMilli(r.Timestamp), Metadata: i}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: []byte(h.Value)})
	}
	return m
}

// produceSarama sends every record with SyncProducer.SendMessages.
func produceSarama(t *testing.T, addr string, version sarama.KafkaVersion, topic string, n int, rec func(int) Record) map[int]Pos {
	t.Helper()
	p, err := sarama.NewSyncProducer([]string{addr}, saramaProducerConfig(addr, version))
	if err != nil {
		t.Fatalf("sarama producer via %s: %v", addr, err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			t.Errorf("close sarama producer: %v", err)
		}
	}()
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range n {
		msgs[i] = saramaMessage(topic, i, rec(i))
	}
	// SendMessages runs through sarama's async pipeline; a bounded wait
	// turns a hang into a failure.
	done := make(chan error, 1)
	go func() { done <- p.SendMessages(msgs) }()
	select {
	case err = <-done:
	case <-time.After(produceTimeout):
		t.Fatalf("sarama produce of %d records via %s did not finish within %v", n, addr, produceTimeout)
	}
	if err != nil {
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) {
			for k, pe := range perrs {
				if k == 5 {
					break
				}
				t.Errorf("produce record %v: %v", pe.Msg.Metadata, pe.Err)
			}
			t.Fatalf("%d of %d records failed to produce via %s", len(perrs), n, addr)
		}
		t.Fatalf("sarama produce via %s: %v", addr, err)
	}
	acks := make(map[int]Pos, n)
	for _, m := range msgs {
		acks[m.Metadata.(int)] = Pos{m.Partition, m.Offset}
	}
	return acks
}

// produceSaramaAsync feeds every record to an AsyncProducer's Input while
// draining its Successes and Errors.
func produceSaramaAsync(t *testing.T, addr string, version sarama.KafkaVersion, topic string, n int, rec func(int) Record) map[int]Pos {
	t.Helper()
	p, err := sarama.NewAsyncProducer([]string{addr}, saramaProducerConfig(addr, version))
	if err != nil {
		t.Fatalf("sarama async producer via %s: %v", addr, err)
	}
	acks := make(map[int]Pos, n)
	fails := 0
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		for len(acks)+fails < n {
			select {
			case m := <-p.Successes():
				acks[m.Metadata.(int)] = Pos{m.Partition, m.Offset}
			case pe := <-p.Errors():
				fails++
				if fails <= 5 {
					t.Errorf("produce record %v via %s: %v", pe.Msg.Metadata, addr, pe.Err)
				}
			case <-time.After(produceTimeout):
				t.Errorf("sarama async producer via %s: no answer for %v (%d acknowledged, %d failed of %d)", addr, produceTimeout, len(acks), fails, n)
				return
			}
		}
	}()
	for i := range n {
		select {
		case p.Input() <- saramaMessage(topic, i, rec(i)):
		case <-answered:
			t.Fatalf("sarama async producer stopped answering after %d records", i)
		}
	}
	<-answered
	if err := p.Close(); err != nil {
		t.Errorf("close sarama async producer: %v", err)
	}
	if fails > 0 || len(acks) != n {
		t.Fatalf("sarama async producer via %s: %d of %d records acknowledged, %d failed", addr, len(acks), n, fails)
	}
	return acks
}

// consumeSarama reads, with one sarama partition consumer per partition
// (no group), as many records from each partition as were acknowledged
// there, then reports what it read.
func consumeSarama(t *testing.T, addr string, version sarama.KafkaVersion, topic string, acks map[int]Pos) []Record {
	t.Helper()
	cfg := saramaConfig(addr, version)
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 500 * time.Millisecond
	cons, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("sarama consumer via %s: %v", addr, err)
	}
	defer cons.Close()
	perPart := map[int32]int{}
	for _, p := range acks {
		perPart[p.Partition]++
	}
	var (
		mu  sync.Mutex
		out []Record
		wg  sync.WaitGroup
	)
	deadline := time.After(consumeTimeout)
	stop := make(chan struct{})
	for p := range int32(numPartitions) {
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("consume %s/%d via %s: %v", topic, p, addr, err)
		}
		want := perPart[p]
		wg.Go(func() {
			defer pc.AsyncClose()
			n := 0
			for n < want {
				select {
				case m := <-pc.Messages():
					r := Record{Partition: m.Partition, Offset: m.Offset, Key: string(m.Key), Value: string(m.Value),
						Timestamp: m.Timestamp.UnixMilli()}
					for _, h := range m.Headers {
						r.Headers = append(r.Headers, Header{string(h.Key), string(h.Value)})
					}
					mu.Lock()
					out = append(out, r)
					mu.Unlock()
					n++
				case err := <-pc.Errors():
					t.Errorf("consume %s/%d via %s: %v", topic, p, addr, err)
					return
				case <-stop:
					t.Errorf("consume %s/%d via %s: %d of %d records within %v", topic, p, addr, n, want, consumeTimeout)
					return
				}
			}
			if hwm := pc.HighWaterMarkOffset(); hwm != int64(want) {
				t.Errorf("%s/%d via %s: high watermark %d, want %d", topic, p, addr, hwm, want)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-deadline:
		close(stop)
		<-finished
	}
	return out
}
