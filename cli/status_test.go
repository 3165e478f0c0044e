package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestStatus proves `shale status` reports the live agent, each topic's
// records and storage, and a group's lag, as a table and as JSON, from etcd.
func TestStatus(t *testing.T) {
	addr, endpoints := startTestStackEtcd(t)
	etcd := strings.Join(endpoints, ",")
	if _, errs, code := run(t, "", "topic", "create", "orders", "-b", addr, "-p", "2"); code != 0 {
		t.Fatal(errs)
	}
	if _, errs, code := run(t, strings.Repeat("x\n", 40), "produce", "-b", addr, "-t", "orders"); code != 0 {
		t.Fatal(errs)
	}
	// A group whose offsets were reset to 0 (a simple commit through the
	// reset command): its lag is every record.
	if _, errs, code := run(t, "", "group", "reset-offsets", "billing", "-b", addr, "--topic", "orders", "--to-offset", "0", "--execute"); code != 0 {
		t.Fatalf("reset-offsets: %s", errs)
	}
	out, errs, code := run(t, "", "status", "--etcd-endpoints", etcd, "-o", "json")
	if code != 0 {
		t.Fatalf("status: %s", errs)
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, out)
	}
	if len(st.Agents) != 1 || !strings.HasPrefix(st.Agents[0].Address, "127.0.0.1:") {
		t.Fatalf("agents %+v, want the one agent", st.Agents)
	}
	var orders *TopicStatus
	for i := range st.Topics {
		if st.Topics[i].Name == "orders" {
			orders = &st.Topics[i]
		}
	}
	if orders == nil || orders.Records != 40 || orders.BytesStored <= 0 || orders.Objects < 1 || orders.IndexEntries < 1 || orders.OldestRecord == "" {
		t.Fatalf("topic status %+v, want 40 records with storage", orders)
	}
	if len(st.Groups) != 1 || st.Groups[0].Name != "billing" || st.Groups[0].Lag != 40 {
		t.Fatalf("groups %+v, want billing with lag 40", st.Groups)
	}
	out, _, code = run(t, "", "status", "--etcd-endpoints", etcd)
	for _, want := range []string{"AGENTS (1)", "orders", "billing", "LAG"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("status table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") || strings.Contains(out, "password") {
		t.Fatalf("status shows a secret:\n%s", out)
	}
}

// TestStatusExplainsAGroupWithoutCoordinator proves the table says why a
// group has no coordinator (none holds it in etcd, e.g. after a restart,
// until its next request) instead of a bare "-".
func TestStatusExplainsAGroupWithoutCoordinator(t *testing.T) {
	var b strings.Builder
	st := Status{Groups: []GroupStatus{{Name: "idle", Coordinator: -1}, {Name: "busy", Coordinator: 2}}}
	if err := st.printTable(&b); err != nil {
		t.Fatal(err)
	}
	if !regexpLine(b.String(), `idle\s+none\*\s+0\s+0`) || !regexpLine(b.String(), `busy\s+2\s+0\s+0`) || !strings.Contains(b.String(), "next client request") {
		t.Fatalf("status table:\n%s", b.String())
	}
}
