package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/shale-dev/shale/metastore"
)

// TestQuotaMetersOfIdleClientsDropped proves that under a default
// client-id quota, where every client ID gets its own meter, the meters
// of clients idle for a whole window are dropped as new ones come: 5,000
// client IDs, then 5,000 others a window later, leave at most the second
// 5,000 (10,000 without the sweep), while a client still active keeps its
// measured rate.
func TestQuotaMetersOfIdleClientsDropped(t *testing.T) {
	q := newQuotas()
	q.store([]metastore.ClientQuota{{Entity: []metastore.QuotaEntityPart{{Type: quotaClientID}}, Values: map[string]float64{"producer_byte_rate": 1 << 20}}}, 1)
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 5000 {
		q.throttle(&reqCtx{clientID: fmt.Sprint("old-", i)}, "producer_byte_rate", 100, t0, false)
	}
	if len(q.rates) != 5000 {
		t.Fatalf("%d meters for 5000 client IDs", len(q.rates))
	}
	later := t0.Add(quotaSamples*quotaSample + time.Second)
	// A heavy client, active across the sweep: throttled before and after.
	heavy := &reqCtx{clientID: "heavy"}
	if d := q.throttle(heavy, "producer_byte_rate", 64<<20, later, false); d == 0 {
		t.Fatal("64 MiB in a second under a 1 MiB/s quota not throttled")
	}
	for i := range 5000 {
		q.throttle(&reqCtx{clientID: fmt.Sprint("new-", i)}, "producer_byte_rate", 100, later, false)
	}
	if n := len(q.rates); n > 5001 {
		t.Fatalf("%d meters after 5000 idle and 5001 active client IDs, want at most 5001 (idle ones dropped)", n)
	}
	if d := q.throttle(heavy, "producer_byte_rate", 1, later, false); d == 0 {
		t.Fatal("the active heavy client lost its meter in the sweep")
	}
}
