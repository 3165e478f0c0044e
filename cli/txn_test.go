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
// transaction (state, producer, partitions) and its commit, and that
// describing an ID nobody initialized fails with a message.
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
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := run(t, "", "txn", "list", "--state", "CompleteCommit", "-b", addr); code != 0 || !strings.Contains(out, "cli-txn") {
		t.Fatalf("txn list --state CompleteCommit: %q %q", out, errs)
	}
	if out, errs, code := run(t, "", "txn", "describe", "nobody", "-b", addr); code == 0 || !strings.Contains(errs, "nobody") {
		t.Fatalf("txn describe of an unknown ID: exit %d, %q %q", code, out, errs)
	}
}
