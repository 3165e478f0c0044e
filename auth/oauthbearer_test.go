package auth

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func jws(header, claims, sig string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + "." + sig
}

// TestValidateUnsecuredJWS proves the checks of Kafka's default validator:
// a valid token gives its sub; every other case is ErrInvalidToken.
func TestValidateUnsecuredJWS(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	good := jws(`{"alg":"none"}`, `{"sub":"alice","exp":1000060,"iat":999990}`, "")
	if sub, err := ValidateUnsecuredJWS(good, now); err != nil || sub != "alice" {
		t.Fatalf("valid token: %q, %v", sub, err)
	}
	for name, tok := range map[string]string{
		"expired":         jws(`{"alg":"none"}`, `{"sub":"alice","exp":999999}`, ""),
		"expires now":     jws(`{"alg":"none"}`, `{"sub":"alice","exp":1000000}`, ""),
		"no exp":          jws(`{"alg":"none"}`, `{"sub":"alice"}`, ""),
		"exp a string":    jws(`{"alg":"none"}`, `{"sub":"alice","exp":"1000060"}`, ""),
		"no sub":          jws(`{"alg":"none"}`, `{"exp":1000060}`, ""),
		"blank sub":       jws(`{"alg":"none"}`, `{"sub":" ","exp":1000060}`, ""),
		"sub a number":    jws(`{"alg":"none"}`, `{"sub":7,"exp":1000060}`, ""),
		"signed":          jws(`{"alg":"HS256"}`, `{"sub":"alice","exp":1000060}`, "c2ln"),
		"alg HS256":       jws(`{"alg":"HS256"}`, `{"sub":"alice","exp":1000060}`, ""),
		"no alg":          jws(`{}`, `{"sub":"alice","exp":1000060}`, ""),
		"iat in future":   jws(`{"alg":"none"}`, `{"sub":"alice","exp":1000060,"iat":1000010}`, ""),
		"exp before iat":  jws(`{"alg":"none"}`, `{"sub":"alice","exp":1000060,"iat":1000070}`, ""),
		"claims an array": jws(`{"alg":"none"}`, `[1]`, ""),
		"claims null":     jws(`{"alg":"none"}`, `null`, ""),
		"trailing json":   jws(`{"alg":"none"}`, `{"sub":"alice","exp":1000060}{}`, ""),
		"two parts":       "eyJhbGciOiJub25lIn0.e30",
		"not base64":      "!!.!!.",
		"empty":           "",
	} {
		if _, err := ValidateUnsecuredJWS(tok, now); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
}

// TestParseOAuthBearerInitial proves the RFC 7628 client initial response
// is read as franz-go and librdkafka write it, and malformed ones are
// ErrMalformed.
func TestParseOAuthBearerInitial(t *testing.T) {
	ir, err := ParseOAuthBearerInitial([]byte("n,a=alice,\x01auth=Bearer tok.en.\x01ext=v\x01\x01"))
	if err != nil || ir.AuthzID != "alice" || ir.Token != "tok.en." || ir.Extensions["ext"] != "v" {
		t.Fatalf("parse: %+v %v", ir, err)
	}
	if ir, err := ParseOAuthBearerInitial([]byte("n,,\x01auth=Bearer t\x01\x01")); err != nil || ir.AuthzID != "" || ir.Token != "t" {
		t.Fatalf("parse without authzid: %+v %v", ir, err)
	}
	for _, in := range []string{
		"", "n,,", "n,,\x01\x01", "p=tls-unique,,\x01auth=Bearer t\x01\x01", "n,x,\x01auth=Bearer t\x01\x01",
		"n,,\x01auth=Basic t\x01\x01", "n,,\x01auth=Bearer \x01\x01", "n,,\x01auth=Bearer t\x01auth=Bearer u\x01\x01",
		"n,,\x01auth=Bearer t\x01", "n,,auth=Bearer t\x01\x01", "n,,\x01novalue\x01auth=Bearer t\x01\x01",
		"\x01",
	} {
		if _, err := ParseOAuthBearerInitial([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("parse %q: %v, want ErrMalformed", in, err)
		}
	}
	if _, err := ParseOAuthBearerInitial(make([]byte, MaxOAuthBearerBytes+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized message: %v, want ErrMalformed", err)
	}
}

// FuzzOAuthBearer feeds arbitrary client messages to the parser and the
// validator: they never panic, and a message either parses with a token or
// is ErrMalformed; a token is accepted only with a non-empty principal.
func FuzzOAuthBearer(f *testing.F) {
	f.Add([]byte("n,,\x01auth=Bearer " + jws(`{"alg":"none"}`, `{"sub":"a","exp":99999999999}`, "") + "\x01\x01"))
	f.Add([]byte("n,a=x,\x01auth=Bearer a.b.c\x01k=v\x01\x01"))
	f.Add([]byte("y,,\x01\x01"))
	now := time.Unix(1_000_000, 0)
	f.Fuzz(func(t *testing.T, in []byte) {
		ir, err := ParseOAuthBearerInitial(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parse error %v is not ErrMalformed", err)
			}
			return
		}
		if ir.Token == "" {
			t.Fatal("parsed without a token")
		}
		sub, err := ValidateUnsecuredJWS(ir.Token, now)
		if err != nil && !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("validate error %v is not ErrInvalidToken", err)
		}
		if err == nil && sub == "" {
			t.Fatal("accepted with an empty principal")
		}
	})
}
