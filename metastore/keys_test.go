package metastore

import (
	"math"
	"sort"
	"testing"
)

// TestKeysRoundTrip proves every key parses back to what built it, including
// extremes, and that keys from another prefix or shape are refused.
func TestKeysRoundTrip(t *testing.T) {
	k := newKeys("/shale/")
	id := TopicID{0xde, 0xad, 15: 0x01}
	for _, p := range []int32{0, 1, math.MaxInt32} {
		for _, off := range []int64{0, 9, math.MaxInt64} {
			gid, gp, goff, err := k.parseIndexKey(k.entry(id, p, off))
			if err != nil || gid != id || gp != p || goff != off {
				t.Fatalf("parseIndexKey(entry(%d, %d)) = %v %d %d %v", p, off, gid, gp, goff, err)
			}
		}
		gid, gp, err := k.parseStateKey(k.state(id, p))
		if err != nil || gid != id || gp != p {
			t.Fatalf("parseStateKey(state(%d)) = %v %d %v", p, gid, gp, err)
		}
	}
	if n, err := k.parseAgentKey(k.agent(42)); err != nil || n != 42 {
		t.Fatalf("parseAgentKey = %d, %v", n, err)
	}
	if got := k.state(id, 3); got != "/shale/partitions/dead0000000000000000000000000001/0000000003" {
		t.Fatalf("state key %q", got)
	}
	for _, bad := range []string{
		"/other/index/dead0000000000000000000000000001/0000000000/00000000000000000000",
		"/shale/index/dead0000000000000000000000000001/0000000000/0",
		"/shale/index/dead0000000000000000000000000001/0000000000/99999999999999999999",
		"/shale/index/dead0000000000000000000000000001/0000000000/-0000000000000000001",
		"/shale/index/xyz/0000000000/00000000000000000000",
		"/shale/index/dead0000000000000000000000000001/9999999999/00000000000000000000",
		"/shale/index/dead0000000000000000000000000001/0000000000/00000000000000000000/x",
	} {
		if _, _, _, err := k.parseIndexKey(bad); err == nil {
			t.Errorf("parseIndexKey(%q) accepted", bad)
		}
	}
}

// TestEntryKeysSortNumerically proves etcd's byte order of entry keys is
// offset order, which FindEntries' range reads rely on.
func TestEntryKeysSortNumerically(t *testing.T) {
	k := newKeys("/ns")
	offs := []int64{0, 1, 9, 10, 99, 100, 1 << 40, math.MaxInt64}
	keys := make([]string, len(offs))
	for i, o := range offs {
		keys[len(offs)-1-i] = k.entry(TopicID{1}, 0, o)
	}
	sort.Strings(keys)
	for i, key := range keys {
		if _, _, o, _ := k.parseIndexKey(key); o != offs[i] {
			t.Fatalf("sorted key %d is offset %d, want %d", i, o, offs[i])
		}
	}
}
