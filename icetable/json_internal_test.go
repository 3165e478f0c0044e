package icetable

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzFieldValueString proves fieldValue's string without escapes (its
// text between the quotes, no json.Unmarshal) is json.Unmarshal's, for
// any valid JSON string token; escaped ones still go through it.
func FuzzFieldValueString(f *testing.F) {
	for _, s := range []string{`"plain"`, `""`, `"é ünï"`, `"a\"b"`, `"\u00e9"`, `"tab\t"`, `"\ud83d\ude00"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) < 2 || raw[0] != '"' || !utf8.Valid(raw) || !json.Valid(raw) {
			return
		}
		var want string
		if err := json.Unmarshal(raw, &want); err != nil {
			return
		}
		kind, v, ok := fieldValue(raw)
		if kind != kindString || !ok || v.(string) != want {
			t.Fatalf("fieldValue(%q) = %v %q %v, json.Unmarshal says %q", raw, kind, v, ok, want)
		}
	})
}

// FuzzObjectFields proves objectFields' scan returns what encoding/json's
// Decoder did (objectFieldsDecoder) for any input: the same fields, names
// and raw values, in order, and the same verdict.
func FuzzObjectFields(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":"x"}`, ` { "a" : [1, {"b": "]}"}] , "c\\"d" : "e\\\\" } `, `[1]`, `{"a":1,"a":2}`,
		`{"\\u0061":1,"a":2}`, `{}`, `{"a":{}}`, `{"n":-1.5e3,"t":true,"f":false,"z":null}`, "{\"x\":\"\xff\"}", `"s"`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		got, gok := objectFields(v)
		want, wok := objectFieldsDecoder(v)
		if gok != wok || len(got) != len(want) {
			t.Fatalf("objectFields(%q) = %q %v, the Decoder's %q %v", v, got, gok, want, wok)
		}
		for i := range got {
			if got[i].name != want[i].name || !bytes.Equal(got[i].raw, want[i].raw) {
				t.Fatalf("objectFields(%q) field %d = %q, the Decoder's %q", v, i, got[i], want[i])
			}
		}
	})
}

// objectFieldsDecoder is objectFields as it was, with encoding/json's
// Decoder: the reference FuzzObjectFields compares it with.
func objectFieldsDecoder(value []byte) (fields []jsonField, ok bool) {
	if !utf8.Valid(value) || !json.Valid(value) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		name, isStr := t.(string)
		if err != nil || !isStr || seen[name] {
			return nil, false
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		fields = append(fields, jsonField{name, raw})
	}
	return fields, true
}
