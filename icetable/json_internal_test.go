package icetable

import (
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
