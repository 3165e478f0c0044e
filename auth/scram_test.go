package auth_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/shale-dev/shale/auth"
)

// TestScramWithFranzGoClient proves the server side interoperates with
// franz-go's SCRAM client for both hashes, and refuses a wrong password
// and a fake (unknown user) credential through the same path.
func TestScramWithFranzGoClient(t *testing.T) {
	faker := auth.NewFaker()
	for _, tc := range []struct {
		mech      string
		clientPwd string
		unknown   bool
		wantOK    bool
	}{
		{auth.ScramSHA256, "s3cret", false, true},
		{auth.ScramSHA512, "s3cret", false, true},
		{auth.ScramSHA256, "wrong", false, false},
		{auth.ScramSHA512, "wrong", false, false},
		{auth.ScramSHA256, "s3cret", true, false},
	} {
		t.Run(tc.mech+"/"+tc.clientPwd, func(t *testing.T) {
			cred, err := auth.NewCredential(tc.mech, "s3cret", auth.MinIterations)
			if err != nil {
				t.Fatal(err)
			}
			if tc.unknown {
				cred = faker.Credential(tc.mech, "user,=x")
			}
			a := scram.Auth{User: "user,=x", Pass: tc.clientPwd}
			m := a.AsSha256Mechanism()
			if tc.mech == auth.ScramSHA512 {
				m = a.AsSha512Mechanism()
			}
			sess, first, err := m.Authenticate(context.Background(), "host:1")
			if err != nil {
				t.Fatal(err)
			}
			cf, err := auth.ParseClientFirst(first)
			if err != nil {
				t.Fatal(err)
			}
			if cf.User != "user,=x" {
				t.Fatalf("user %q", cf.User)
			}
			srv, _ := auth.NewScramServer(tc.mech)
			sfirst, err := srv.Start(cf, cred)
			if err != nil {
				t.Fatal(err)
			}
			_, final, err := sess.Challenge(sfirst)
			if err != nil {
				t.Fatal(err)
			}
			sfinal, err := srv.Finish(final)
			if !tc.wantOK {
				if !errors.Is(err, auth.ErrAuthFailed) {
					t.Fatalf("Finish: %v, want ErrAuthFailed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if done, _, err := sess.Challenge(sfinal); err != nil || !done {
				t.Fatalf("client rejects server-final: done %v err %v", done, err)
			}
		})
	}
}

// TestScramBadInput proves malformed, replayed and tampered messages fail
// cleanly.
func TestScramBadInput(t *testing.T) {
	cred, _ := auth.NewCredential(auth.ScramSHA256, "pw", auth.MinIterations)
	for _, bad := range []string{"", "n", "n,", "n,,", "p=tls,,n=u,r=abc", "n,,r=abc,n=u", "n,,n=,r=abc", "n,,n=u,r=",
		"n,,n=a=2,r=x", "n,,n=a=ZZ,r=x", "n,a=v,n=u,r=x", "n,,n=u,r=x,tokenauth=true", "n,,n=u,r=a b", strings.Repeat("x", auth.MaxMessageBytes+1)} {
		if _, err := auth.ParseClientFirst([]byte(bad)); !errors.Is(err, auth.ErrMalformed) {
			t.Errorf("ParseClientFirst(%.40q) = %v, want ErrMalformed", bad, err)
		}
	}
	cf, err := auth.ParseClientFirst([]byte("n,,n=u,r=clientnonce"))
	if err != nil {
		t.Fatal(err)
	}
	for _, final := range []string{"", "c=biws,r=x", "c=biws,r=x,p=!!", "c=biws,r=wrongnonce,p=AAAA", "c=!!,r=x,p=AAAA", "p=AAAA"} {
		srv, _ := auth.NewScramServer(auth.ScramSHA256)
		if _, err := srv.Start(cf, cred); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Finish([]byte(final)); err == nil {
			t.Errorf("Finish(%q) succeeded", final)
		}
		if _, err := srv.Finish([]byte(final)); err == nil {
			t.Errorf("second Finish(%q) succeeded", final)
		}
	}
	srv, _ := auth.NewScramServer(auth.ScramSHA256)
	if _, err := srv.Finish([]byte("c=biws,r=x,p=AAAA")); err == nil {
		t.Error("Finish before Start succeeded")
	}
	if _, err := auth.NewScramServer("SCRAM-MD5"); !errors.Is(err, auth.ErrUnknownMechanism) {
		t.Errorf("unknown mechanism: %v", err)
	}
}

// TestPlain proves PLAIN parsing and verification against a stored SCRAM
// credential (no password stored).
func TestPlain(t *testing.T) {
	cred, _ := auth.NewCredential(auth.ScramSHA256, "pw", auth.MinIterations)
	u, p, err := auth.ParsePlain([]byte("\x00alice\x00pw"))
	if err != nil || u != "alice" || p != "pw" || !auth.VerifyPassword(cred, p) {
		t.Fatalf("%q %q %v", u, p, err)
	}
	if auth.VerifyPassword(cred, "pW") {
		t.Fatal("wrong password verified")
	}
	for _, bad := range []string{"", "alice", "\x00\x00pw", "bob\x00alice\x00pw", "a\x00b\x00c\x00d"} {
		if _, _, err := auth.ParsePlain([]byte(bad)); err == nil {
			t.Errorf("ParsePlain(%q) succeeded", bad)
		}
	}
}

// FuzzScramServer feeds arbitrary client messages to the SCRAM parser and
// state machine: they must fail or succeed, never panic.
func FuzzScramServer(f *testing.F) {
	f.Add([]byte("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), []byte("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="))
	f.Add([]byte("n,a=u,n=u,r=x,ext=1"), []byte("c=biws,r=x,p="))
	f.Add([]byte("y,,n=a=3D=2C,r=\x7e"), []byte(",p=,p=AAAA"))
	cred, _ := auth.NewCredential(auth.ScramSHA256, "pencil", auth.MinIterations)
	f.Fuzz(func(t *testing.T, first, final []byte) {
		_, _, _ = auth.ParsePlain(first)
		cf, err := auth.ParseClientFirst(first)
		if err != nil {
			return
		}
		srv, _ := auth.NewScramServer(auth.ScramSHA256)
		if _, err := srv.Start(cf, cred); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Finish(final); err == nil {
			t.Fatalf("random client-final %q accepted", final)
		}
	})
}

// TestScramLibrdkafkaNonce proves the client-final nonce of librdkafka
// before 2.6.1 (client nonce + the server's nonce, which already starts with
// the client's) is accepted, as Apache Kafka does, and no other variant.
func TestScramLibrdkafkaNonce(t *testing.T) {
	cred, _ := auth.NewCredential(auth.ScramSHA256, "pw", auth.MinIterations)
	for _, tc := range []struct {
		name   string
		nonce  func(c, s string) string
		wantOK bool
	}{
		{"rfc", func(_, s string) string { return s }, true},
		{"librdkafka<2.6.1", func(c, s string) string { return c + s }, true},
		{"client nonce only", func(c, _ string) string { return c }, false},
		{"other prefix", func(_, s string) string { return "zz" + s }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := scram.Auth{User: "u", Pass: "pw"}.AsSha256Mechanism()
			sess, first, _ := a.Authenticate(context.Background(), "h:1")
			cf, _ := auth.ParseClientFirst(first)
			srv, _ := auth.NewScramServer(auth.ScramSHA256)
			sfirst, _ := srv.Start(cf, cred)
			snonce := strings.TrimPrefix(strings.Split(string(sfirst), ",")[0], "r=")
			// Compute the proof for the rewritten nonce the way a client would.
			final := clientFinal(t, "pw", cf, string(sfirst), tc.nonce(cf.Nonce, snonce))
			_ = sess
			_, err := srv.Finish([]byte(final))
			if (err == nil) != tc.wantOK {
				t.Fatalf("Finish: %v, want ok=%v", err, tc.wantOK)
			}
		})
	}
}

func clientFinal(t *testing.T, pw string, cf auth.ClientFirst, sfirst, nonce string) string {
	t.Helper()
	var salt []byte
	iters := 0
	for _, a := range strings.Split(sfirst, ",") {
		switch {
		case strings.HasPrefix(a, "s="):
			salt, _ = base64.StdEncoding.DecodeString(a[2:])
		case strings.HasPrefix(a, "i="):
			iters, _ = strconv.Atoi(a[2:])
		}
	}
	sp, err := auth.SaltedPassword(auth.ScramSHA256, pw, salt, iters)
	if err != nil {
		t.Fatal(err)
	}
	mac := func(k []byte, m string) []byte { h := hmac.New(sha256.New, k); h.Write([]byte(m)); return h.Sum(nil) }
	ck := mac(sp, "Client Key")
	sk := sha256.Sum256(ck)
	without := "c=biws,r=" + nonce
	sig := mac(sk[:], cf.Bare+","+sfirst+","+without)
	for i := range ck {
		ck[i] ^= sig[i]
	}
	return without + ",p=" + base64.StdEncoding.EncodeToString(ck)
}

// TestCredentialFromSaltedAnyLength proves AlterUserScramCredentials'
// salted password is taken at any non-empty length, as Kafka takes it
// (kafka-go's own test upserts an 18-byte one), and an empty salt or salted
// password is refused.
func TestCredentialFromSaltedAnyLength(t *testing.T) {
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		c, err := auth.CredentialFromSalted(mech, []byte("my-salted-password"), []byte("my-salt"), 15000)
		if err != nil {
			t.Fatalf("%s, 18-byte salted password: %v", mech, err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: credential from an 18-byte salted password does not validate: %v", mech, err)
		}
		if _, err := auth.CredentialFromSalted(mech, nil, []byte("my-salt"), 15000); err == nil {
			t.Fatalf("%s: empty salted password accepted", mech)
		}
		if _, err := auth.CredentialFromSalted(mech, []byte("x"), nil, 15000); err == nil {
			t.Fatalf("%s: empty salt accepted", mech)
		}
	}
}
