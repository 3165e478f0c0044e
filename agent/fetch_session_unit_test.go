package agent

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func sessionReq(id, epoch int32, parts ...int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.SessionID, req.SessionEpoch = 12, id, epoch
	if len(parts) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "t"
		for _, p := range parts {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition = p
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// TestFetchSessionPartitionBudget proves the fetch session cache bounds the
// partitions its sessions hold: a session that does not fit is not created
// (ID 0), an incremental fetch growing a session past the budget closes it
// with FETCH_SESSION_ID_NOT_FOUND, and closed or emptied sessions give
// their partitions back.
func TestFetchSessionPartitionBudget(t *testing.T) {
	c := newFetchSessionCache(10, 5)
	open := func(parts ...int32) int32 {
		sf := c.openSession(sessionReq(0, 0, parts...))
		return c.create(false, sf.wanted)
	}
	a := open(0, 1, 2)
	if a == 0 || c.total.Load() != 3 {
		t.Fatalf("first session %d, total %d", a, c.total.Load())
	}
	if b := open(3, 4, 5); b != 0 || c.total.Load() != 3 {
		t.Fatalf("a session past the budget was created (%d), total %d", b, c.total.Load())
	}
	if sf := c.openSession(sessionReq(a, 1, 3)); sf.errCode != 0 || c.total.Load() != 4 {
		t.Fatalf("growing within the budget: %v, total %d", kerr.ErrorForCode(sf.errCode), c.total.Load())
	}
	if sf := c.openSession(sessionReq(a, 2, 4, 5)); sf.errCode != kerr.FetchSessionIDNotFound.Code || c.total.Load() != 0 {
		t.Fatalf("growing past the budget: %v, total %d", kerr.ErrorForCode(sf.errCode), c.total.Load())
	}
	if sf := c.openSession(sessionReq(a, 3)); sf.errCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session answers %v", kerr.ErrorForCode(sf.errCode))
	}
	b := open(0, 1, 2, 3, 4)
	if b == 0 || c.total.Load() != 5 {
		t.Fatalf("a session fitting the freed budget: %d, total %d", b, c.total.Load())
	}
	c.openSession(sessionReq(b, -1))
	if c.total.Load() != 0 || c.get(b) != nil {
		t.Fatalf("after closing with epoch -1: total %d", c.total.Load())
	}
}
