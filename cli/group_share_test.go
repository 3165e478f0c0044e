package cli

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupShareCommands proves shale group list names share groups with
// their type, and describe shows a share group's start offset, log end and
// lag per partition, and from etcd its acquired, redelivered and archived
// records (left out with a note when etcd does not answer).
func TestGroupShareCommands(t *testing.T) {
	addr, endpoints := startTestStackEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("sq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "sq"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte('a' + i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: "sq", Partition: 0, At: 3})
	if r, err := adm.AlterShareGroupOffsets(ctx, "workers", o); err != nil || r.Error() != nil {
		t.Fatalf("alter share group offsets: %v %v", err, r.Error())
	}
	out, errs, code := run(t, "", "group", "list", "-b", addr)
	if code != 0 || !hasRow(out, "workers", "share", "Empty") {
		t.Fatalf("group list: %q %q", out, errs)
	}
	out, errs, code = run(t, "", "group", "describe", "workers", "-b", addr, "--etcd-endpoints", "127.0.0.1:1", "--data-dir", t.TempDir())
	if code != 0 || !strings.Contains(out, "type share") || !hasRow(out, "sq", "0", "3", "10", "7") || !strings.Contains(out, "etcd, which did not answer") {
		t.Fatalf("group describe without etcd: %q %q", out, errs)
	}

	// A member rejects offset 3, releases 4, accepts the rest, and then
	// holds 4, delivered a second time.
	sc, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("sq"), kgo.ShareGroup("workers"), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for acked := 0; acked < 7; {
		fs := sc.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("share consumer: %d of 7 records: %v", acked, fs.Errors())
		}
		for _, r := range fs.Records() {
			switch r.Offset {
			case 3:
				r.Ack(kgo.AckReject)
			case 4:
				r.Ack(kgo.AckRelease)
			default:
				r.Ack(kgo.AckAccept)
			}
			acked++
		}
	}
	if err := sc.FlushAcks(ctx); err != nil {
		t.Fatal(err)
	}
	for again := false; !again; {
		fs := sc.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("offset 4 never came back")
		}
		for _, r := range fs.Records() {
			if r.Offset != 4 || r.DeliveryCount() != 2 {
				t.Fatalf("redelivered %d (count %d), want offset 4 (count 2)", r.Offset, r.DeliveryCount())
			}
			again = true
		}
	}
	out, errs, code = run(t, "", "group", "describe", "workers", "-b", addr, "--etcd-endpoints", strings.Join(endpoints, ","))
	// START OFFSET 4, LOG END 10, LAG 1, ACQUIRED 1, REDELIVERED 1, ARCHIVED 1.
	if code != 0 || !strings.Contains(out, "ACQUIRED") || !hasRow(out, "sq", "0", "4", "10", "1", "1", "1", "1") {
		t.Fatalf("group describe with etcd: %q %q", out, errs)
	}
}

// hasRow reports whether a line of out starts with the given fields.
func hasRow(out string, fields ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= len(fields) && slices.Equal(f[:len(fields)], fields) {
			return true
		}
	}
	return false
}
