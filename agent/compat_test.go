package agent_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/shale-dev/shale/agent/agenttest"
)

// TestSaramaCompat proves sarama at an old protocol level (Kafka 0.11, the
// first with record batch v2) and at its newest produces idempotently and
// reads back through partition consumers.
func TestSaramaCompat(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	for _, v := range []sarama.KafkaVersion{sarama.V0_11_0_0, sarama.V2_1_0_0, sarama.MaxVersion} {
		t.Run(v.String(), func(t *testing.T) {
			topic := "sarama-" + v.String()
			cfg := sarama.NewConfig()
			cfg.Version = v
			cfg.ClientID = "shale-test"
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Return.Successes = true
			cfg.Producer.Idempotent = true
			cfg.Net.MaxOpenRequests = 1
			cfg.Producer.Retry.Max = 5
			cfg.Metadata.AllowAutoTopicCreation = true
			cfg.Consumer.Return.Errors = true

			prod, err := sarama.NewSyncProducer(c.Addrs(), cfg)
			if err != nil {
				t.Fatalf("producer: %v", err)
			}
			defer prod.Close()
			const n = 50
			for i := range n {
				p, off, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(fmt.Sprint(i))})
				if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				if p != 0 || off != int64(i) {
					t.Fatalf("send %d: partition %d offset %d", i, p, off)
				}
			}

			cons, err := sarama.NewConsumer([]string{c.Agents[1].Addr}, cfg)
			if err != nil {
				t.Fatalf("consumer: %v", err)
			}
			defer cons.Close()
			pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
			if err != nil {
				t.Fatalf("consume partition: %v", err)
			}
			defer pc.Close()
			timeout := time.After(time.Minute)
			for i := range n {
				select {
				case m := <-pc.Messages():
					if m.Offset != int64(i) || string(m.Value) != fmt.Sprint(i) || string(m.Key) != "k" {
						t.Fatalf("message %d: offset %d key %q value %q", i, m.Offset, m.Key, m.Value)
					}
				case err := <-pc.Errors():
					t.Fatalf("consume: %v", err)
				case <-timeout:
					t.Fatalf("consumed %d of %d messages", i, n)
				}
			}
		})
	}
}

// TestKafkaGoCompat proves segmentio/kafka-go writes and reads back records.
func TestKafkaGoCompat(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	const topic = "kafkago"
	if _, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	w := &kafkago.Writer{Addr: kafkago.TCP(c.Addrs()...), Topic: topic, RequiredAcks: kafkago.RequireAll, BatchTimeout: 10 * time.Millisecond}
	defer w.Close()
	var msgs []kafkago.Message
	for i := range 20 {
		msgs = append(msgs, kafkago.Message{Key: []byte("k"), Value: []byte(fmt.Sprint(i)), Headers: []kafkago.Header{{Key: "h", Value: []byte("v")}}})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write: %v", err)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: c.Addrs(), Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	for i := range 20 {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if m.Offset != int64(i) || string(m.Value) != fmt.Sprint(i) || len(m.Headers) != 1 {
			t.Fatalf("message %d: offset %d value %q headers %v", i, m.Offset, m.Value, m.Headers)
		}
	}
}
