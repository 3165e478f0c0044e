package faultproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestEveryKind proves each fault kind does what a client would see from a
// failing object store, and that the counters count it: a zero Rates passes
// requests through, 500/503 carry S3 error codes, hang holds then drops the
// connection, reset and truncate break the exchange, slow delivers the whole
// body late, stall holds a body midway then breaks it.
func TestEveryKind(t *testing.T) {
	body := strings.Repeat("0123456789", 1000)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host == "" {
			t.Errorf("upstream saw no Host header")
		}
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(up.Close)
	p, err := Start("127.0.0.1:0", up.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() (int, string, error) {
		resp, err := cl.Get(p.URL() + "/bucket/key")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	if code, got, err := get(); err != nil || code != 200 || got != body {
		t.Fatalf("no faults: %d %d bytes %v", code, len(got), err)
	}
	tests := []struct {
		kind     Kind
		wantCode int
		wantErr  bool
		wantBody string
		minDur   time.Duration
	}{
		{Err500, 500, false, "InternalError", 0},
		{Err503, 503, false, "SlowDown", 0},
		{Hang, 0, true, "", 200 * time.Millisecond},
		{Reset, 0, true, "", 0},
		{Truncate, 200, true, "", 0},
		{Slow, 200, false, body, 200 * time.Millisecond},
		{Stall, 200, true, "", 200 * time.Millisecond},
		{Delay, 200, false, body, 0}, // a random wait, then the real answer
	}
	for _, tt := range tests {
		p.SetRates(Rates{P: map[Kind]float64{tt.kind: 1}, HangFor: 300 * time.Millisecond, SlowFor: 300 * time.Millisecond})
		start := time.Now()
		code, got, err := get()
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: error %v, want error %v", tt.kind, err, tt.wantErr)
		}
		if !tt.wantErr && (code != tt.wantCode || !strings.Contains(got, tt.wantBody)) {
			t.Errorf("%s: status %d body %.60q, want %d with %.20q", tt.kind, code, got, tt.wantCode, tt.wantBody)
		}
		if d := time.Since(start); d < tt.minDur {
			t.Errorf("%s: answered after %v, want at least %v", tt.kind, d, tt.minDur)
		}
		if n := p.Counts()[tt.kind]; n != 1 {
			t.Errorf("%s: counted %d, want 1", tt.kind, n)
		}
	}
}

// TestMatchAndLimit proves Rates.Match confines faults to the requests it
// accepts and Rates.Limit stops injecting after that many faults.
func TestMatchAndLimit(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	p, err := Start("127.0.0.1:0", up.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	cl := &http.Client{Timeout: 10 * time.Second}
	status := func(method string) int {
		req, _ := http.NewRequest(method, p.URL()+"/bucket/key", nil)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	p.SetRates(Rates{P: map[Kind]float64{Err503: 1}, Limit: 2,
		Match: func(r *http.Request) bool { return r.Method == http.MethodGet }})
	var got []int
	for _, m := range []string{http.MethodHead, http.MethodGet, http.MethodHead, http.MethodGet, http.MethodGet} {
		got = append(got, status(m))
	}
	want := []int{200, 503, 200, 503, 200}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses %v, want %v (HEADs never faulted, two GETs faulted)", got, want)
		}
	}
	if n := p.Counts()[Err503]; n != 2 {
		t.Fatalf("counted %d 503s, want 2", n)
	}
	// SetRates starts a new budget.
	p.SetRates(Rates{P: map[Kind]float64{Err503: 1}, Limit: 1})
	if s := status(http.MethodHead); s != 503 {
		t.Fatalf("after SetRates: %d, want 503", s)
	}
}
