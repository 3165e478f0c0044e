package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupCommands proves shale group list, describe (with lag), and
// reset-offsets: a dry run changes nothing, --execute commits the plan.
func TestGroupCommands(t *testing.T) {
	addr := startTestStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("gt"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "gt"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte('a' + i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: "gt", Partition: 0, At: 4, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx, "billing", o); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}
	if out, errs, code := run(t, "", "group", "list", "-b", addr); code != 0 || !strings.Contains(out, "billing") {
		t.Fatalf("group list: %q %q", out, errs)
	}
	out, errs, code := run(t, "", "group", "describe", "billing", "-b", addr)
	if code != 0 || !strings.Contains(out, "gt     0          4          10       6") {
		t.Fatalf("group describe: %q %q", out, errs)
	}
	out, errs, code = run(t, "", "group", "reset-offsets", "billing", "-b", addr, "--topic", "gt", "--to-earliest")
	if code != 0 || !strings.Contains(out, "dry run") {
		t.Fatalf("reset dry run: %q %q", out, errs)
	}
	if r, _ := adm.FetchOffsets(ctx, "billing"); r["gt"][0].At != 4 {
		t.Fatalf("dry run changed the offset to %d", r["gt"][0].At)
	}
	out, errs, code = run(t, "", "group", "reset-offsets", "billing", "-b", addr, "--all-topics", "--to-offset", "7", "--execute")
	if code != 0 || !strings.Contains(out, "committed new offsets") {
		t.Fatalf("reset --execute: %q %q", out, errs)
	}
	if r, _ := adm.FetchOffsets(ctx, "billing"); r["gt"][0].At != 7 {
		t.Fatalf("after reset: offset %d, want 7", r["gt"][0].At)
	}
	if out, errs, code = run(t, "", "group", "delete", "billing", "-b", addr); code != 0 {
		t.Fatalf("group delete: %q %q", out, errs)
	}
	if r, _ := adm.FetchOffsets(ctx, "billing"); len(r["gt"]) != 0 {
		t.Fatalf("offsets after delete: %v", r)
	}
}

// TestGroupCommandsConsumerProtocol proves shale group list and describe
// on a KIP-848 consumer group: the list names its type "consumer", and
// describe shows the member with its epoch and assignment, and the lag of
// what it committed.
func TestGroupCommandsConsumerProtocol(t *testing.T) {
	addr := startTestStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("g848"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := kadm.NewClient(prod).CreateTopic(ctx, 1, 1, nil, "g848"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte{byte('a' + i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("next-gen"), kgo.ConsumeTopics("g848"),
		kgo.ServerSideBalancer(), kgo.ClientID("cli-848"), kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	n := 0
	for n < 4 && ctx.Err() == nil {
		fs := cons.PollRecords(ctx, 4-n)
		for _, r := range fs.Records() {
			if err := cons.CommitRecords(ctx, r); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	out, errs, code := run(t, "", "group", "list", "-b", addr)
	if code != 0 || !strings.Contains(out, "next-gen  consumer") {
		t.Fatalf("group list: %q %q", out, errs)
	}
	out, errs, code = run(t, "", "group", "describe", "next-gen", "-b", addr)
	t.Logf("shale group describe next-gen:\n%s", out)
	for _, want := range []string{"type consumer", "EPOCH", "cli-848", "g848/0", "g848   0          4          10       6"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("group describe lacks %q: %q %q", want, out, errs)
		}
	}
}
