package assignor

import (
	"bytes"
	"cmp"
	"slices"
)

// Names of the assignors, as ConsumerGroupHeartbeat's ServerAssignor
// carries them.
const (
	Uniform = "uniform"
	Range   = "range"
)

// Valid reports whether name is a served assignor.
func Valid(name string) bool { return name == Uniform || name == Range }

// TopicID is a topic's 16-byte ID.
type TopicID = [16]byte

// Topic is a topic a member subscribes to, with its partition count.
type Topic struct {
	ID         TopicID
	Name       string
	Partitions int32
}

// Member is one group member as the assignor sees it.
type Member struct {
	ID string
	// InstanceID orders static members before dynamic ones in range, as
	// Kafka does ("" for a dynamic member).
	InstanceID string
	// Topics are the names of the topics the member subscribes to,
	// resolved (regex subscriptions included).
	Topics []string
	// Current is the member's previous target assignment (uniform keeps
	// what it can of it).
	Current map[TopicID][]int32
}

// Assignment is each member's target: member ID -> topic ID -> partitions
// (sorted). A member with nothing assigned has an empty, non-nil map.
type Assignment map[string]map[TopicID][]int32

// Assign runs the named assignor ("" is uniform).
func Assign(name string, members []Member, topics []Topic) Assignment {
	if name == Range {
		return assignRange(members, topics)
	}
	return assignUniform(members, topics)
}

type tp struct {
	id   TopicID
	name string
	part int32
}

// prepare sorts the inputs and lists every partition of a topic someone
// subscribes to, ordered by topic name then partition.
func prepare(members []Member, topics []Topic) ([]Member, map[string]map[string]bool, []tp, Assignment) {
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	subs := make(map[string]map[string]bool, len(ms))
	wanted := map[string]bool{}
	out := make(Assignment, len(ms))
	for _, m := range ms {
		s := make(map[string]bool, len(m.Topics))
		for _, t := range m.Topics {
			s[t] = true
			wanted[t] = true
		}
		subs[m.ID] = s
		out[m.ID] = map[TopicID][]int32{}
	}
	ts := slices.Clone(topics)
	slices.SortFunc(ts, func(a, b Topic) int {
		if c := cmp.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	var all []tp
	seen := map[string]bool{}
	for _, t := range ts {
		if !wanted[t.Name] || seen[t.Name] {
			continue
		}
		seen[t.Name] = true
		for p := int32(0); p < t.Partitions; p++ {
			all = append(all, tp{t.ID, t.Name, p})
		}
	}
	return ms, subs, all, out
}

// assignUniform keeps each member's current partitions that are still
// valid (topic exists, partition exists, member subscribes), sheds the
// excess of overloaded members, and gives every unassigned partition to
// the least loaded subscribed member (ties to the smallest member ID).
func assignUniform(members []Member, topics []Topic) Assignment {
	ms, subs, all, out := prepare(members, topics)
	if len(ms) == 0 {
		return out
	}
	type key struct {
		id   TopicID
		part int32
	}
	valid := make(map[key]string, len(all))
	for _, t := range all {
		valid[key{t.id, t.part}] = t.name
	}
	taken := map[key]bool{}
	counts := map[string]int{}
	for _, m := range ms {
		ids := make([]TopicID, 0, len(m.Current))
		for id := range m.Current {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b TopicID) int { return bytes.Compare(a[:], b[:]) })
		for _, id := range ids {
			parts := slices.Clone(m.Current[id])
			slices.Sort(parts)
			for _, p := range slices.Compact(parts) {
				k := key{id, p}
				name, ok := valid[k]
				if !ok || !subs[m.ID][name] || taken[k] {
					continue
				}
				taken[k] = true
				out[m.ID][id] = append(out[m.ID][id], p)
				counts[m.ID]++
			}
		}
	}
	// Shed: with N partitions over M members, the most loaded N%M members
	// may keep floor(N/M)+1, the others floor(N/M). Members subscribed to
	// fewer topics may not reach the quota; that only lowers the bar.
	quota, extra := len(all)/len(ms), len(all)%len(ms)
	order := slices.Clone(ms)
	slices.SortStableFunc(order, func(a, b Member) int { return cmp.Compare(counts[b.ID], counts[a.ID]) })
	for i, m := range order {
		allowed := quota
		if i < extra {
			allowed++
		}
		excess := counts[m.ID] - allowed
		if excess <= 0 {
			continue
		}
		ids := make([]TopicID, 0, len(out[m.ID]))
		for id := range out[m.ID] {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b TopicID) int { return bytes.Compare(b[:], a[:]) })
		for _, id := range ids {
			if excess == 0 {
				break
			}
			parts := out[m.ID][id]
			n := min(excess, len(parts))
			for _, p := range parts[len(parts)-n:] {
				delete(taken, key{id, p})
			}
			parts = parts[:len(parts)-n]
			if len(parts) == 0 {
				delete(out[m.ID], id)
			} else {
				out[m.ID][id] = parts
			}
			counts[m.ID] -= n
			excess -= n
		}
	}
	for _, t := range all {
		if taken[key{t.id, t.part}] {
			continue
		}
		best := ""
		for _, m := range ms {
			if subs[m.ID][t.name] && (best == "" || counts[m.ID] < counts[best]) {
				best = m.ID
			}
		}
		if best == "" {
			continue
		}
		out[best][t.id] = append(out[best][t.id], t.part)
		counts[best]++
	}
	for _, a := range out {
		for id := range a {
			slices.Sort(a[id])
		}
	}
	return out
}

// assignRange gives, per topic, contiguous ranges of partitions to the
// members subscribed to it: static members first (by instance ID), then
// dynamic ones (by member ID); the first N%M members get one more.
func assignRange(members []Member, topics []Topic) Assignment {
	ms, subs, all, out := prepare(members, topics)
	slices.SortStableFunc(ms, func(a, b Member) int {
		as, bs := a.InstanceID != "", b.InstanceID != ""
		switch {
		case as && !bs:
			return -1
		case bs && !as:
			return 1
		case as:
			return cmp.Compare(a.InstanceID, b.InstanceID)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].name == all[i].name {
			j++
		}
		parts := all[i:j]
		var to []string
		for _, m := range ms {
			if subs[m.ID][all[i].name] {
				to = append(to, m.ID)
			}
		}
		if len(to) > 0 {
			quota, extra, next := len(parts)/len(to), len(parts)%len(to), 0
			for k, id := range to {
				n := quota
				if k < extra {
					n++
				}
				for _, t := range parts[next : next+n] {
					out[id][t.id] = append(out[id][t.id], t.part)
				}
				next += n
			}
		}
		i = j
	}
	return out
}
