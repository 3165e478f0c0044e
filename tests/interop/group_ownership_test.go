package interop

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ownership audits which member of a group owns each partition, as the
// members' own callbacks say: assigned adds, revoked and lost remove. A
// partition assigned to a member while another still owns it is a
// violation: the double ownership a Kafka consumer never sees, not even
// across a coordinator's failover.
type ownership struct {
	mu         sync.Mutex
	owner      map[int32]string
	violations []string
}

func newOwnership() *ownership { return &ownership{owner: map[int32]string{}} }

// opts are the callbacks that report member name's partitions to o;
// beforeRevoke, if not nil, runs first in OnPartitionsRevoked (while the
// member still owns what it is giving up).
func (o *ownership) opts(name string, beforeRevoke func()) []kgo.Opt {
	return []kgo.Opt{
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { o.assign(name, m) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if beforeRevoke != nil {
				beforeRevoke()
			}
			o.drop(name, m)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { o.drop(name, m) }),
	}
}

func (o *ownership) assign(name string, m map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ps := range m {
		for _, p := range ps {
			if cur, ok := o.owner[p]; ok && cur != name {
				o.violations = append(o.violations, fmt.Sprintf("partition %d assigned to %s while %s owns it", p, name, cur))
			}
			o.owner[p] = name
		}
	}
}

func (o *ownership) drop(name string, m map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ps := range m {
		for _, p := range ps {
			if o.owner[p] == name {
				delete(o.owner, p)
			}
		}
	}
}

// counts returns how many partitions each member owns now.
func (o *ownership) counts() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := map[string]int{}
	for _, m := range o.owner {
		n[m]++
	}
	return n
}

// check fails t with every violation seen, and logs the owners.
func (o *ownership) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, v := range o.violations {
		t.Error(v)
	}
	t.Logf("owners at the end: %v", o.owner)
}
