package metastore

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
)

// roundTrip checks the decoder contract on arbitrary input: no panic, errors
// wrap ErrCorruptValue, and a decoded value re-encodes to bytes that decode
// to the same value and encode to the same bytes.
func roundTrip[T any](t *testing.T, data []byte, decode func(string, []byte) (T, error), encode func(T) ([]byte, error)) {
	v1, err := decode("fuzz", data)
	if err != nil {
		if !errors.Is(err, ErrCorruptValue) {
			t.Fatalf("error does not wrap ErrCorruptValue: %v", err)
		}
		return
	}
	b1, err := encode(v1)
	if err != nil {
		t.Fatalf("valid value does not encode: %v (%+v)", err, v1)
	}
	v2, err := decode("fuzz", b1)
	if err != nil {
		t.Fatalf("own encoding %s does not decode: %v", b1, err)
	}
	b2, err := encode(v2)
	if err != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("encoding unstable: %s then %s (%v)", b1, b2, err)
	}
	v3, err := decode("fuzz", b2)
	if err != nil || !reflect.DeepEqual(v2, v3) {
		t.Fatalf("decode unstable: %+v then %+v (%v)", v2, v3, err)
	}
}

var fuzzCommonSeeds = []string{
	"", "null", "{}", "[]", "1", `"x"`, "{", "{}{}", "{} x", `{"unknown":1}`,
}

// FuzzDecodeIndexEntry proves DecodeIndexEntry never panics and is stable.
func FuzzDecodeIndexEntry(f *testing.F) {
	for _, s := range fuzzCommonSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"base":0,"last":9,"obj":"o","pos":0,"size":1,"sbase":0,"batches":1,"fts":-1,"mts":-1,"crc":0,"cms":0}`,
		`{"k":0,"base":5,"last":5,"obj":"a/b.obj","pos":100,"size":61,"sbase":0,"batches":1,"fts":1,"mts":2,"crc":4294967295,"cms":3}`,
		`{"k":1,"base":0,"last":0,"obj":"o","pos":0,"size":1,"batches":1}`,
		`{"base":-1,"last":0,"obj":"o","pos":0,"size":1,"batches":1}`,
		`{"base":5,"last":4,"obj":"o","pos":0,"size":1,"batches":1}`,
		`{"base":0,"last":0,"obj":"","pos":0,"size":1,"batches":1}`,
		`{"base":0,"last":0,"obj":"o","pos":0,"size":0,"batches":1}`,
		`{"base":0,"last":0,"obj":"o","pos":9223372036854775807,"size":1,"batches":1}`,
		`{"base":0,"last":9223372036854775807,"obj":"o","pos":0,"size":1,"sbase":1,"batches":1}`,
		`{"base":0,"last":0,"obj":"o","pos":0,"size":1,"batches":2}`,
		`{"base":1e3,"last":0,"obj":"o"}`,
		`{"BASE":0,"last":0,"obj":"\ud800","pos":0,"size":1,"batches":1}`,
		`{"base":0,"last":0,"obj":"o","pos":0,"size":1,"batches":1,"crc":-1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, DecodeIndexEntry, encodeIndexEntry)
	})
}

// FuzzDecodePartitionState proves DecodePartitionState never panics and is stable.
func FuzzDecodePartitionState(f *testing.F) {
	for _, s := range fuzzCommonSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"next":0,"start":0}`,
		`{"next":10,"start":3,"producers":{"1000":{"e":0,"b":[{"f":0,"l":4,"o":5}],"t":1}}}`,
		`{"next":10,"start":0,"producers":{}}`,
		`{"next":10,"start":0,"producers":{"-1":{"e":0,"t":0}}}`,
		`{"next":10,"start":0,"producers":{"x":{"e":0,"t":0}}}`,
		`{"next":10,"start":0,"producers":{"7":null}}`,
		`{"next":10,"start":0,"producers":{"7":{"e":-1,"t":0}}}`,
		`{"next":10,"start":0,"producers":{"7":{"e":0,"b":[{"f":0,"l":0,"o":10}],"t":0}}}`,
		`{"next":10,"start":0,"producers":{"7":{"e":0,"b":[{},{},{},{},{},{}],"t":0}}}`,
		`{"next":1,"start":2}`,
		`{"next":-1,"start":-2}`,
		`{"next":9223372036854775808}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, DecodePartitionState, encodePartitionState)
	})
}

// FuzzDecodeTopic proves DecodeTopic never panics and is stable.
func FuzzDecodeTopic(f *testing.F) {
	for _, s := range fuzzCommonSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"id":"0123456789abcdef0123456789abcdef","name":"t","partitions":1,"created_ms":0}`,
		`{"id":"0123456789ABCDEF0123456789ABCDEF","name":"a.b_c-D","partitions":100000,"configs":{"retention.ms":"-1"},"created_ms":1700000000000}`,
		`{"id":"00000000000000000000000000000000","name":"t","partitions":1,"created_ms":0}`,
		`{"id":"0123","name":"t","partitions":1,"created_ms":0}`,
		`{"id":[1,2,3],"name":"t","partitions":1,"created_ms":0}`,
		`{"id":"0123456789abcdef0123456789abcdef","name":"..","partitions":1,"created_ms":0}`,
		`{"id":"0123456789abcdef0123456789abcdef","name":"t","partitions":0,"created_ms":0}`,
		`{"id":"0123456789abcdef0123456789abcdef","name":"t","partitions":1,"configs":{"":"x"},"created_ms":0}`,
		`{"id":"0123456789abcdef0123456789abcdef","name":"t","partitions":1,"configs":{},"created_ms":0}`,
		`{"id":"0123456789abcdef0123456789abcdef","name":"t","partitions":1,"created_ms":-5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, DecodeTopic, encodeTopic)
	})
}

// FuzzActiveMembers proves ActiveMembers never panics on any type record,
// that what it lists round-trips through ActiveRecord, and that an active
// record is a consumer type.
func FuzzActiveMembers(f *testing.F) {
	for _, s := range []string{"", GroupTypeConsumer, GroupTypeConsumerActive, ActiveRecord(nil),
		ActiveRecord([]string{"a", "b"}), "consumer-activex", "consumer-active\n\n\nz", "classic"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, typ string) {
		active, ids, listed := ActiveMembers(typ)
		if active != IsConsumerType(typ) && typ != GroupTypeConsumer {
			t.Fatalf("%q: active %v but consumer type %v", typ, active, IsConsumerType(typ))
		}
		if !listed {
			return
		}
		again, ids2, listed2 := ActiveMembers(ActiveRecord(ids))
		if !again || !listed2 && len(ActiveRecord(ids)) <= maxActiveRecord || listed2 && !slices.Equal(ids, ids2) {
			t.Fatalf("%q: ids %q do not round-trip: %q %v", typ, ids, ids2, listed2)
		}
	})
}

// FuzzDecodeConfigMap proves DecodeConfigMap (stored broker configs) never
// panics, refuses what is not an object of strings, and is stable.
func FuzzDecodeConfigMap(f *testing.F) {
	for _, s := range fuzzCommonSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"sasl.kerberos.min.time.before.relogin":"58000"}`,
		`{"a":"1","b":""}`, `{"":"x"}`, `{"a":1}`, `{"a":null}`, `{"a":"\u0000"}`,
		`{"a":"1","a":"2"}`, `{"a":"\ud800"}`, `["a","b"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, DecodeConfigMap, encodeConfigMap)
	})
}

// FuzzDecodeMembersRecord proves DecodeMembersRecord never panics and is
// stable, and that a listed record never re-encodes listing other members
// than it decoded (it may only become unlisted: members unknown).
func FuzzDecodeMembersRecord(f *testing.F) {
	for _, s := range fuzzCommonSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{"45000", "45000\n", "45000\na\nb\n", "6000\n\n\nz", "0", "-1", "+5\na",
		"9223372036854775807", "9223372036854\nx", "1e3\na\n", " 45000\na\n", "45000\r\na\n", "45000\na\n\xff\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, DecodeMembersRecord, encodeMembersRecord)
		r, err := DecodeMembersRecord("fuzz", data)
		if err != nil {
			return
		}
		if r.Session < 0 {
			t.Fatalf("%q: negative session %v", data, r.Session)
		}
		again, err := DecodeMembersRecord("fuzz", r.Encode())
		if err != nil || again.Session != r.Session || again.Listed && !slices.Equal(again.IDs, r.IDs) {
			t.Fatalf("%q: %+v re-encodes as %+v (%v)", data, r, again, err)
		}
	})
}
