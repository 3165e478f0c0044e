package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func encode(t testing.TB, h Header, objects []string, kvs [][2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objects {
		if err := w.Object(o); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range kvs {
		if err := w.KV(kv[0], []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRoundTrip proves a manifest decodes to the header, objects and keys
// it was written with, in order, with counts that match.
func TestRoundTrip(t *testing.T) {
	h := Header{Namespace: "/shale", Revision: 42, CreatedMs: 1700000000000, Bucket: "s3://b/p", Writer: "node 1"}
	objs := []string{"wal/a", "seg/b"}
	kvs := [][2]string{{"topics/t", `{"id":"x"}`}, {"index/x/0000000000/00000000000000000000", `{}`}, {"producer-id", ""}}
	data := encode(t, h, objs, kvs)
	var gotObjs []string
	var gotKVs [][2]string
	gh, c, err := Decode(data, 0, Visitor{
		Object: func(k string) error { gotObjs = append(gotObjs, k); return nil },
		KV:     func(k string, v []byte) error { gotKVs = append(gotKVs, [2]string{k, string(v)}); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Version = Version
	if gh != h || c != (Counts{Objects: 2, Keys: 3}) {
		t.Fatalf("header %+v counts %+v", gh, c)
	}
	if fmt.Sprint(gotObjs) != fmt.Sprint(objs) || fmt.Sprint(gotKVs) != fmt.Sprint(kvs) {
		t.Fatalf("objects %v keys %v", gotObjs, gotKVs)
	}
}

// TestCorruptIsAnError proves that every truncation and every flipped byte
// of a manifest is ErrCorrupt (the CRC or the framing catches it), never
// a panic nor a silently different content.
func TestCorruptIsAnError(t *testing.T) {
	data := encode(t, Header{Revision: 7}, []string{"wal/x"}, [][2]string{{"topics/a", "v"}})
	for n := 0; n < len(data); n++ {
		if _, _, err := Decode(data[:n], 0, Visitor{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x40
		if _, _, err := Decode(bad, 0, Visitor{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
}

// TestKeys proves manifest keys sort by revision and parse back.
func TestKeys(t *testing.T) {
	if !(Key(9) < Key(10)) || !(Key(10) < Key(1<<40)) {
		t.Fatal("keys do not sort by revision")
	}
	if rev, ok := ParseKey(Key(1234)); !ok || rev != 1234 {
		t.Fatalf("ParseKey: %d %v", rev, ok)
	}
	for _, k := range []string{"meta/manifests/1.shm", "wal/x", Prefix + "0000000000000000000x.shm", Key(5) + ".tmp"} {
		if _, ok := ParseKey(k); ok {
			t.Fatalf("ParseKey(%q) accepted", k)
		}
	}
}

// FuzzDecode proves the decoder never panics and bounds its memory on any
// input: it returns a manifest or an error wrapping ErrCorrupt.
func FuzzDecode(f *testing.F) {
	f.Add(encode(f, Header{Revision: 1}, nil, nil))
	f.Add(encode(f, Header{Namespace: "/shale", Revision: 99}, []string{"wal/a", "seg/b"}, [][2]string{{"topics/t", "{}"}, {"acls/x", "y"}}))
	f.Add([]byte("SHMF\x01\x00\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, err := Decode(data, 1<<20, Visitor{
			Object: func(string) error { return nil },
			KV:     func(string, []byte) error { return nil },
		})
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error not ErrCorrupt: %v", err)
		}
	})
}
