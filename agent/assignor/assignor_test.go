package assignor

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
)

func id(b byte) TopicID { return TopicID{b} }

// check asserts the invariants of any assignment: every partition of a
// subscribed topic is assigned exactly once, to a member subscribed to it.
func check(t *testing.T, members []Member, topics []Topic, a Assignment) {
	t.Helper()
	owner := map[string]string{}
	subs := map[string]map[string]bool{}
	for _, m := range members {
		subs[m.ID] = map[string]bool{}
		for _, tn := range m.Topics {
			subs[m.ID][tn] = true
		}
	}
	names := map[TopicID]string{}
	for _, tp := range topics {
		names[tp.ID] = tp.Name
	}
	for mid, ta := range a {
		for tid, parts := range ta {
			if !slices.IsSorted(parts) {
				t.Fatalf("member %s topic %v: partitions %v not sorted", mid, tid, parts)
			}
			for _, p := range parts {
				k := fmt.Sprintf("%s/%d", names[tid], p)
				if prev, ok := owner[k]; ok {
					t.Fatalf("%s assigned to %s and %s", k, prev, mid)
				}
				if !subs[mid][names[tid]] {
					t.Fatalf("%s assigned to %s, which does not subscribe to it", k, mid)
				}
				owner[k] = mid
			}
		}
	}
	for _, tp := range topics {
		wanted := false
		for _, s := range subs {
			wanted = wanted || s[tp.Name]
		}
		for p := int32(0); p < tp.Partitions; p++ {
			k := fmt.Sprintf("%s/%d", tp.Name, p)
			if _, ok := owner[k]; wanted != ok {
				t.Fatalf("%s: assigned=%v, subscribed=%v", k, ok, wanted)
			}
		}
	}
}

func counts(a Assignment) map[string]int {
	c := map[string]int{}
	for mid, ta := range a {
		for _, ps := range ta {
			c[mid] += len(ps)
		}
	}
	return c
}

// TestUniformBalancedAndSticky proves uniform spreads 10 partitions over 3
// members as 4/3/3, and that adding a member moves only what balance
// requires (every partition a member keeps was its before).
func TestUniformBalancedAndSticky(t *testing.T) {
	topics := []Topic{{id(1), "a", 6}, {id(2), "b", 4}}
	ms := []Member{{ID: "m1", Topics: []string{"a", "b"}}, {ID: "m2", Topics: []string{"a", "b"}}, {ID: "m3", Topics: []string{"a", "b"}}}
	a := Assign(Uniform, ms, topics)
	check(t, ms, topics, a)
	c := counts(a)
	got := []int{c["m1"], c["m2"], c["m3"]}
	slices.Sort(got)
	if !slices.Equal(got, []int{3, 3, 4}) {
		t.Fatalf("counts %v, want 3,3,4", got)
	}
	for i := range ms {
		ms[i].Current = a[ms[i].ID]
	}
	ms = append(ms, Member{ID: "m4", Topics: []string{"a", "b"}})
	b := Assign(Uniform, ms, topics)
	check(t, ms, topics, b)
	moved := 0
	for _, m := range ms[:3] {
		for tid, ps := range b[m.ID] {
			for _, p := range ps {
				if !slices.Contains(a[m.ID][tid], p) {
					t.Fatalf("%s gained %v/%d while a member joined", m.ID, tid, p)
				}
			}
		}
		moved += counts(a)[m.ID] - counts(b)[m.ID]
	}
	if c := counts(b); c["m4"] != moved || c["m4"] < 2 {
		t.Fatalf("m4 got %d, others gave up %d", c["m4"], moved)
	}
}

// TestRangeContiguous proves range gives each member a contiguous block
// per topic, the first members one more, static members first.
func TestRangeContiguous(t *testing.T) {
	topics := []Topic{{id(1), "a", 5}}
	ms := []Member{{ID: "x", Topics: []string{"a"}}, {ID: "y", InstanceID: "i2", Topics: []string{"a"}}, {ID: "z", InstanceID: "i1", Topics: []string{"a"}}}
	a := Assign(Range, ms, topics)
	check(t, ms, topics, a)
	want := map[string][]int32{"z": {0, 1}, "y": {2, 3}, "x": {4}}
	for mid, ps := range want {
		if !slices.Equal(a[mid][id(1)], ps) {
			t.Fatalf("%s got %v, want %v", mid, a[mid][id(1)], ps)
		}
	}
}

// TestHeterogeneousSubscriptions proves a topic goes only to its
// subscribers and unsubscribed topics to nobody, for both assignors.
func TestHeterogeneousSubscriptions(t *testing.T) {
	topics := []Topic{{id(1), "a", 3}, {id(2), "b", 2}, {id(3), "c", 4}}
	ms := []Member{{ID: "m1", Topics: []string{"a"}}, {ID: "m2", Topics: []string{"a", "b"}}, {ID: "m3", Topics: []string{"missing"}}}
	for _, name := range []string{Uniform, Range} {
		a := Assign(name, ms, topics)
		check(t, ms, topics, a)
		if len(a["m3"]) != 0 {
			t.Fatalf("%s: m3 subscribes to nothing existing, got %v", name, a["m3"])
		}
	}
}

// TestRandomInvariants runs both assignors over random groups, each round
// feeding uniform its previous output, and checks every invariant and
// determinism (members given in another order give the same result).
func TestRandomInvariants(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	names := []string{"a", "b", "c", "d"}
	for round := 0; round < 300; round++ {
		var topics []Topic
		for i, n := range names {
			if r.Intn(4) > 0 {
				topics = append(topics, Topic{id(byte(i + 1)), n, int32(r.Intn(9))})
			}
		}
		var ms []Member
		for i := 0; i < 1+r.Intn(6); i++ {
			m := Member{ID: fmt.Sprintf("m%d", i)}
			for _, n := range names {
				if r.Intn(2) == 0 {
					m.Topics = append(m.Topics, n)
				}
			}
			ms = append(ms, m)
		}
		for _, name := range []string{Uniform, Range} {
			a := Assign(name, ms, topics)
			check(t, ms, topics, a)
			rev := slices.Clone(ms)
			slices.Reverse(rev)
			if b := Assign(name, rev, topics); fmt.Sprint(b) != fmt.Sprint(a) {
				t.Fatalf("%s not deterministic: %v vs %v", name, a, b)
			}
			if name == Uniform {
				for i := range ms {
					ms[i].Current = a[ms[i].ID]
				}
				check(t, ms, topics, Assign(name, ms, topics))
			}
		}
	}
}
