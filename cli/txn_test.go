package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTxnCommands proves shale txn list and describe show an ongoing
// transaction (state, producer, partitions) and its commit, that txn
// producers shows the producer in the partition it wrote with its open
// transaction's first offset (and none after the commit), and that
// describing an ID nobody initialized, or the producers of a topic that
// does not exist, fails with a message.
func TestTxnCommands(t *testing.T) {
	addr := startTestStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("tt"), kgo.TransactionalID("cli-txn"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "tt"); err != nil {
		t.Fatal(err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v"), Partition: 1}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := run(t, "", "txn", "list", "-b", addr); code != 0 || !strings.Contains(out, "cli-txn") || !strings.Contains(out, "Ongoing") {
		t.Fatalf("txn list: %q %q", out, errs)
	}
	if out, errs, code := run(t, "", "txn", "describe", "cli-txn", "-b", addr); code != 0 || !strings.Contains(out, "Ongoing") || !strings.Contains(out, "tt/1") {
		t.Fatalf("txn describe: %q %q", out, errs)
	}
	// producerRow is txn producers' row of tt/1, its fields.
	producerRow := func() []string {
		t.Helper()
		out, errs, code := run(t, "", "txn", "producers", "tt", "-b", addr)
		if code != 0 {
			t.Fatalf("txn producers: exit %d, %q %q", code, out, errs)
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 7 && f[0] == "tt" && f[1] == "1" {
				return f
			}
		}
		t.Fatalf("txn producers: no row of tt/1 in %q", out)
		return nil
	}
	if f := producerRow(); f[4] != "0" || f[6] != "0" {
		t.Fatalf("txn producers while ongoing: %q, want last sequence 0 and the transaction from offset 0", f)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if f := producerRow(); f[6] != "-" {
		t.Fatalf("txn producers after the commit: %q, want no open transaction", f)
	}
	if out, errs, code := run(t, "", "txn", "producers", "no-such-topic", "-b", addr); code == 0 || !strings.Contains(errs, "no-such-topic") {
		t.Fatalf("txn producers of an unknown topic: exit %d, %q %q", code, out, errs)
	}
	if out, errs, code := run(t, "", "txn", "list", "--state", "CompleteCommit", "-b", addr); code != 0 || !strings.Contains(out, "cli-txn") {
		t.Fatalf("txn list --state CompleteCommit: %q %q", out, errs)
	}
	if out, errs, code := run(t, "", "txn", "describe", "nobody", "-b", addr); code == 0 || !strings.Contains(errs, "nobody") {
		t.Fatalf("txn describe of an unknown ID: exit %d, %q %q", code, out, errs)
	}
}
