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
// lag per partition.
func TestGroupShareCommands(t *testing.T) {
	addr := startTestStack(t)
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
	out, errs, code = run(t, "", "group", "describe", "workers", "-b", addr)
	if code != 0 || !strings.Contains(out, "type share") || !hasRow(out, "sq", "0", "3", "10", "7") {
		t.Fatalf("group describe: %q %q", out, errs)
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
