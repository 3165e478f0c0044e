package span_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/shale-dev/shale/internal/faultproxy"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/s3tier/storetest"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/span"
)

const (
	// testAttemptTimeout is the S3Config.AttemptTimeout of these tests.
	// 1 s, not less: a loaded machine (the race pass, load 15) held a
	// trickled body past 300 ms between two pieces.
	testAttemptTimeout = time.Second
	// faultHold is how long the proxy holds a hung request or stalled body:
	// far beyond testAttemptTimeout, so only the timeout can end it early.
	faultHold = 20 * time.Second
	// promptly is the generous bound on a read that meets one fault: well
	// under the 30 s an agent's fetch allows, and under faultHold.
	promptly = 10 * time.Second
)

// proxiedS3 is an S3 store reaching versitygw through faultproxy, with a
// short AttemptTimeout, holding obj (objSize bytes).
type proxiedS3 struct {
	store s3tier.Store
	proxy *faultproxy.Proxy
	data  []byte
}

const objSize = 256 << 10

func newProxiedS3(t *testing.T, maxAttempts int) *proxiedS3 {
	t.Helper()
	srv := testenv.S3(t)
	proxy, err := faultproxy.Start("127.0.0.1:0", srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	cfg := s3Config(srv, "attempts")
	cfg.Endpoint = proxy.URL()
	cfg.AttemptTimeout = testAttemptTimeout
	cfg.MaxAttempts = maxAttempts
	s, err := s3tier.NewS3Store(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	data := storetest.Data(7, objSize)
	if err := s.Put(t.Context(), "obj", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	return &proxiedS3{store: s, proxy: proxy, data: data}
}

func isGet(r *http.Request) bool { return r.Method == http.MethodGet }

// faultGets injects kind into the next n GETs (n <= 0: every GET).
func (p *proxiedS3) faultGets(kind faultproxy.Kind, n int64) {
	p.proxy.SetRates(faultproxy.Rates{P: map[faultproxy.Kind]float64{kind: 1}, HangFor: faultHold, Match: isGet, Limit: n})
}

// readRange reads [pos, pos+size) of obj with ReadRange, checks the bytes
// when it succeeds, and returns its error, its duration and the number of
// HTTP requests it made.
func (p *proxiedS3) readRange(t *testing.T, ctx context.Context, pos, size int64) (error, time.Duration, int64) {
	t.Helper()
	before := p.proxy.Requests()
	start := time.Now()
	got, err := span.ReadRange(ctx, p.store, "obj", pos, size)
	d := time.Since(start)
	if err == nil && !bytes.Equal(got, p.data[pos:pos+size]) {
		t.Fatalf("ReadRange(%d, %d) returned wrong bytes", pos, size)
	}
	return err, d, p.proxy.Requests() - before
}

// TestS3FaultHungGetRetried proves a GET whose answer never comes is cut at
// AttemptTimeout and retried by the SDK as a new attempt, so the read
// succeeds long before the server would have answered.
func TestS3FaultHungGetRetried(t *testing.T) {
	p := newProxiedS3(t, 3)
	p.faultGets(faultproxy.Hang, 1)
	err, d, reqs := p.readRange(t, t.Context(), 1000, 100_000)
	if err != nil {
		t.Fatalf("ReadRange through one hung GET: %v", err)
	}
	if d > promptly {
		t.Fatalf("ReadRange took %v, want < %v (attempt timeout %v)", d, promptly, testAttemptTimeout)
	}
	if hung := p.proxy.Counts()[faultproxy.Hang]; hung != 1 || reqs != 2 {
		t.Fatalf("%d hung, %d requests; want 1 hung GET and its retry", hung, reqs)
	}
	t.Logf("read through a hung GET in %v", d)
}

// TestS3AttemptTimeoutIsRetryable proves the response-header timeout error
// is one the SDK's standard retryer retries (a connection error), and that
// with a single attempt allowed the request fails after about
// AttemptTimeout with that error, not after the server's hang.
func TestS3AttemptTimeoutIsRetryable(t *testing.T) {
	p := newProxiedS3(t, 1)
	p.faultGets(faultproxy.Hang, 0)
	start := time.Now()
	rc, err := p.store.GetRange(t.Context(), "obj", 0, 10)
	if err == nil {
		rc.Close()
		t.Fatal("GetRange succeeded against a server that never answers")
	}
	if d := time.Since(start); d > promptly {
		t.Fatalf("GetRange failed after %v, want < %v", d, promptly)
	}
	if !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Fatalf("GetRange error %v, want net/http's response-header timeout", err)
	}
	if !retry.NewStandard().IsErrorRetryable(err) {
		t.Fatalf("the SDK's standard retryer does not retry %v", err)
	}
	if s3tier.IsNotFound(err) {
		t.Fatalf("GetRange error %v is classified as not-found", err)
	}
}

// TestS3FaultTruncatedBodyRetried proves a body cut short of its
// Content-Length (then the connection reset) is a transient fault:
// ReadRange reads the missing bytes again and returns the right ones.
func TestS3FaultTruncatedBodyRetried(t *testing.T) {
	p := newProxiedS3(t, 3)
	p.faultGets(faultproxy.Truncate, 1)
	err, _, reqs := p.readRange(t, t.Context(), 0, objSize)
	if err != nil {
		t.Fatalf("ReadRange through one truncated body: %v", err)
	}
	if cut := p.proxy.Counts()[faultproxy.Truncate]; cut != 1 || reqs != 2 {
		t.Fatalf("%d truncated, %d requests; want 1 truncated GET and its retry", cut, reqs)
	}
}

// TestS3FaultTruncatedBodyBounded proves ReadRange gives up after
// span.ReadAttempts GETs whose bodies all end early, with an error that
// is io.ErrUnexpectedEOF, not corruption (segment.ErrTruncated).
func TestS3FaultTruncatedBodyBounded(t *testing.T) {
	p := newProxiedS3(t, 3)
	p.faultGets(faultproxy.Truncate, 0)
	err, _, reqs := p.readRange(t, t.Context(), 0, objSize)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadRange of always-truncated bodies: %v, want io.ErrUnexpectedEOF", err)
	}
	if errors.Is(err, segment.ErrCorrupt) || s3tier.IsNotFound(err) {
		t.Fatalf("ReadRange error %v: a transport fault reported as corruption or not-found", err)
	}
	if reqs != span.ReadAttempts {
		t.Fatalf("%d requests, want span.ReadAttempts = %d", reqs, span.ReadAttempts)
	}
}

// TestS3FaultStalledBodyRetried proves a body that stops midway fails after
// AttemptTimeout with ErrBodyStalled (not a hang until the caller's
// deadline), and that ReadRange retries it and returns the right bytes.
func TestS3FaultStalledBodyRetried(t *testing.T) {
	p := newProxiedS3(t, 3)

	p.faultGets(faultproxy.Stall, 1)
	start := time.Now()
	rc, err := p.store.GetRange(t.Context(), "obj", 0, objSize)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, s3tier.ErrBodyStalled) {
		t.Fatalf("reading a stalled body: %v, want ErrBodyStalled", err)
	}
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() {
		t.Fatalf("stalled-body error %v does not report Timeout()", err)
	}
	if d := time.Since(start); d > promptly {
		t.Fatalf("stalled body failed after %v, want < %v", d, promptly)
	}

	p.faultGets(faultproxy.Stall, 1)
	err, d, reqs := p.readRange(t, t.Context(), 0, objSize)
	if err != nil {
		t.Fatalf("ReadRange through one stalled body: %v", err)
	}
	if d > promptly {
		t.Fatalf("ReadRange took %v, want < %v", d, promptly)
	}
	if reqs != 2 || p.proxy.Counts()[faultproxy.Stall] != 2 {
		t.Fatalf("%d requests, %d stalls; want the stalled GET and its retry", reqs, p.proxy.Counts()[faultproxy.Stall])
	}
}

// TestS3FaultSlowBodyNotCut proves the idle-read timeout is not a deadline
// on the body: a body trickled over several AttemptTimeouts (with gaps
// below it) and a consumer pausing between reads both get every byte.
func TestS3FaultSlowBodyNotCut(t *testing.T) {
	p := newProxiedS3(t, 1)
	p.proxy.SetRates(faultproxy.Rates{P: map[faultproxy.Kind]float64{faultproxy.Slow: 1}, SlowFor: 5 * testAttemptTimeout / 2, Match: isGet})
	if err, _, _ := p.readRange(t, t.Context(), 0, objSize); err != nil {
		t.Fatalf("ReadRange of a slow body: %v", err)
	}
	if p.proxy.Counts()[faultproxy.Slow] != 1 {
		t.Fatalf("the body was not trickled: %v", p.proxy.Counts())
	}

	p.proxy.SetRates(faultproxy.Rates{})
	rc, err := p.store.GetRange(t.Context(), "obj", 0, objSize)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := make([]byte, 0, objSize)
	buf := make([]byte, 16<<10)
	for i := 0; ; i++ {
		n, err := rc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after a pause: %v", err)
		}
		if i < 2 {
			time.Sleep(2 * testAttemptTimeout)
		}
	}
	if !bytes.Equal(got, p.data) {
		t.Fatalf("read %d bytes, want the %d stored", len(got), len(p.data))
	}
}

// TestS3FaultNotRetried proves ReadRange retries neither a missing object,
// nor a range past the object's end (corruption: segment.ErrTruncated, also
// ErrInvalidRange), nor a read the caller's context ended.
func TestS3FaultNotRetried(t *testing.T) {
	p := newProxiedS3(t, 3)

	err, _, reqs := func() (error, time.Duration, int64) {
		before := p.proxy.Requests()
		_, err := span.ReadRange(t.Context(), p.store, "missing", 0, 10)
		return err, 0, p.proxy.Requests() - before
	}()
	if !s3tier.IsNotFound(err) || reqs != 1 {
		t.Fatalf("ReadRange of a missing object: %v after %d requests; want not-found after 1", err, reqs)
	}

	err, _, reqs = p.readRange(t, t.Context(), objSize-10, 20)
	if !errors.Is(err, segment.ErrTruncated) || !errors.Is(err, s3tier.ErrInvalidRange) || reqs != 1 {
		t.Fatalf("ReadRange past the end: %v after %d requests; want ErrTruncated and ErrInvalidRange after 1", err, reqs)
	}

	// A body stalled beyond the caller's deadline: the caller's error,
	// at its deadline, with no further attempt.
	p.faultGets(faultproxy.Stall, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err, d, reqs := p.readRange(t, ctx, 0, objSize)
	if !errors.Is(err, context.DeadlineExceeded) || reqs != 1 {
		t.Fatalf("ReadRange past its deadline: %v after %d requests; want context.DeadlineExceeded after 1", err, reqs)
	}
	if d > promptly {
		t.Fatalf("ReadRange returned %v after its deadline", d)
	}
}

// s3Config returns a store configuration for srv under prefix.
func s3Config(srv testenv.S3Server, prefix string) s3tier.S3Config {
	return s3tier.S3Config{Bucket: srv.Bucket, Prefix: prefix, Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, MaxBackoff: 50 * time.Millisecond}
}
