// Package faultproxy is an HTTP reverse proxy that injects the failures an
// object store shows in production, for reliability tests: 500 Internal
// Error and 503 SlowDown replies, requests that hang (a timeout from the
// client's point of view), bodies trickled slowly, connections reset, and
// response bodies cut short of their Content-Length. Stall, which stops a
// body midway without closing the connection, is opt-in: Uniform and Kinds
// leave it out.
//
// Each request draws at most one fault: the kinds are tried in a fixed order
// (Kinds) and each fires with its configured probability. The proxy keeps
// the client's Host header, so SigV4-signed S3 requests still verify at the
// upstream server. Counters per kind say what was injected.
//
// Faults are switched with SetRates at any time; a zero Rates passes every
// request through untouched. Rates.Match restricts faults to some requests
// (e.g. GETs) and Rates.Limit bounds how many are injected, for tests that
// need exactly one fault. Every wait is bounded (Rates.HangFor,
// Rates.SlowFor) so a test never blocks for longer than it chose.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Kind names one fault.
type Kind string

// The fault kinds, in the order they are drawn.
const (
	Err500   Kind = "500"      // 500 InternalError, request not forwarded
	Err503   Kind = "503"      // 503 SlowDown, request not forwarded
	Hang     Kind = "hang"     // no answer for HangFor, then the connection drops
	Reset    Kind = "reset"    // connection reset, before or after the upstream applied the request
	Truncate Kind = "truncate" // upstream answer with its body cut in half, then the connection drops
	Slow     Kind = "slow"     // upstream answer with its body trickled over SlowFor
	// Stall sends the upstream answer's headers and the first half of its
	// body, then nothing for HangFor, then drops the connection: a server
	// that stalls mid-body. Opt-in: not in Kinds, so not drawn by Uniform.
	Stall Kind = "stall"
	// Delay holds the request for a random time up to DelayUpTo, then
	// forwards it normally: a slow but healthy store, whose answers come
	// back out of order. Opt-in like Stall.
	Delay Kind = "delay"
)

// Kinds lists the fault kinds Uniform sets, in draw order. Stall, drawn
// after them, is left out.
var Kinds = []Kind{Err500, Err503, Hang, Reset, Truncate, Slow}

// drawOrder is every kind, in the order they are drawn.
func drawOrder() []Kind { return append(Kinds[:len(Kinds):len(Kinds)], Stall, Delay) }

// Rates are the probabilities (0..1) of each fault per request.
type Rates struct {
	P map[Kind]float64
	// HangFor is how long a hung request is held (default 3s).
	HangFor time.Duration
	// SlowFor is how long a slow body takes to trickle (default 1s).
	SlowFor time.Duration
	// DelayUpTo bounds a delayed request's wait (default 100ms).
	DelayUpTo time.Duration
	// Match, when set, limits faults to the requests it accepts; the others
	// pass through (and draw nothing).
	Match func(*http.Request) bool
	// Limit, when positive, is how many faults these rates inject at most
	// (counted from SetRates); later requests pass through.
	Limit int64
}

// Uniform returns rates with probability p for every kind.
func Uniform(p float64) Rates {
	r := Rates{P: map[Kind]float64{}}
	for _, k := range Kinds {
		r.P[k] = p
	}
	return r
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	target *url.URL
	rp     *httputil.ReverseProxy
	srv    *http.Server
	ln     net.Listener

	mu       sync.Mutex
	rates    Rates
	injected int64 // faults drawn under rates, for Limit

	counts   sync.Map // Kind -> *atomic.Int64
	requests atomic.Int64
	done     chan struct{}
}

// Start listens on addr (e.g. "127.0.0.1:0") and forwards to upstream (an
// http:// URL). Close stops it.
func Start(addr, upstream string) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: upstream %q: %w", upstream, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen %s: %w", addr, err)
	}
	p := &Proxy{target: u, ln: ln, done: make(chan struct{})}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	p.rp = &httputil.ReverseProxy{
		// Rewrite keeps the inbound Host header (SigV4 signed it).
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = u.Scheme, u.Host
			pr.Out.Host = pr.In.Host
		},
		Transport: tr,
		ErrorLog:  nil,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "faultproxy: upstream: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's http:// address, to give clients instead of upstream's.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// SetRates changes the fault probabilities for the requests that follow.
func (p *Proxy) SetRates(r Rates) {
	if r.HangFor <= 0 {
		r.HangFor = 3 * time.Second
	}
	if r.SlowFor <= 0 {
		r.SlowFor = time.Second
	}
	if r.DelayUpTo <= 0 {
		r.DelayUpTo = 100 * time.Millisecond
	}
	p.mu.Lock()
	p.rates = r
	p.injected = 0
	p.mu.Unlock()
}

// Counts returns how many faults of each kind were injected so far.
func (p *Proxy) Counts() map[Kind]int64 {
	out := make(map[Kind]int64, len(Kinds)+1)
	for _, k := range drawOrder() {
		out[k] = p.counter(k).Load()
	}
	return out
}

// Requests is how many requests the proxy received.
func (p *Proxy) Requests() int64 { return p.requests.Load() }

// Close stops the proxy, dropping requests in flight.
func (p *Proxy) Close() error {
	select {
	case <-p.done:
		return nil
	default:
		close(p.done)
	}
	return p.srv.Close()
}

func (p *Proxy) counter(k Kind) *atomic.Int64 {
	v, _ := p.counts.LoadOrStore(k, new(atomic.Int64))
	return v.(*atomic.Int64)
}

func (p *Proxy) draw(req *http.Request) (Kind, Rates) {
	p.mu.Lock()
	r := p.rates
	p.mu.Unlock()
	if r.Match != nil && !r.Match(req) {
		return "", r
	}
	for _, k := range drawOrder() {
		if pr := r.P[k]; pr > 0 && rand.Float64() < pr {
			p.mu.Lock()
			defer p.mu.Unlock()
			if r.Limit > 0 && p.injected >= r.Limit {
				return "", r
			}
			p.injected++
			return k, r
		}
	}
	return "", r
}

// ServeHTTP forwards one request, injecting at most one fault.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p.requests.Add(1)
	kind, r := p.draw(req)
	if kind != "" {
		p.counter(kind).Add(1)
	}
	switch kind {
	case Err500:
		drain(req)
		s3Error(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case Err503:
		drain(req)
		s3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case Hang:
		select {
		case <-time.After(r.HangFor):
		case <-req.Context().Done():
		case <-p.done:
		}
		resetConn(w)
	case Reset:
		if rand.IntN(2) == 0 {
			// Applied upstream, answer lost.
			rec := &discard{h: http.Header{}}
			p.rp.ServeHTTP(rec, req)
		}
		resetConn(w)
	case Truncate:
		p.sendHalf(w, req)
		resetConn(w)
	case Slow:
		p.rp.ServeHTTP(&slowWriter{ResponseWriter: w, total: r.SlowFor, done: p.done}, req)
	case Stall:
		p.sendHalf(w, req)
		select {
		case <-time.After(r.HangFor):
		case <-req.Context().Done():
		case <-p.done:
		}
		resetConn(w)
	case Delay:
		select {
		case <-time.After(time.Duration(rand.Int64N(int64(r.DelayUpTo)))):
		case <-req.Context().Done():
		case <-p.done:
		}
		p.rp.ServeHTTP(w, req)
	default:
		p.rp.ServeHTTP(w, req)
	}
}

func drain(req *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 64<<20))
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>faultproxy</RequestId></Error>`, code, msg)
}

// resetConn drops the client connection with a TCP RST where possible.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	nc, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
}

// recorder buffers an upstream answer.
type recorder struct {
	h    http.Header
	code int
	body bytesBuffer
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

type bytesBuffer struct{ b []byte }

func (b *bytesBuffer) Write(p []byte) (int, error) { b.b = append(b.b, p...); return len(p), nil }
func (b *bytesBuffer) Bytes() []byte               { return b.b }

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// slowWriter trickles the body in small pieces, pausing total/10 after
// each, until total has passed; the rest goes at full speed.
type slowWriter struct {
	http.ResponseWriter
	total time.Duration
	done  <-chan struct{}
	end   time.Time
}

func (s *slowWriter) Write(b []byte) (int, error) {
	const pieces = 10
	if s.end.IsZero() {
		s.end = time.Now().Add(s.total)
	}
	if time.Now().After(s.end) {
		return s.ResponseWriter.Write(b)
	}
	step := max(1, (len(b)+pieces-1)/pieces)
	n := 0
	for n < len(b) {
		m, err := s.ResponseWriter.Write(b[n:min(len(b), n+step)])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		if time.Now().After(s.end) {
			continue
		}
		select {
		case <-time.After(s.total / pieces):
		case <-s.done:
			return n, errors.New("faultproxy: closed")
		}
	}
	return n, nil
}

func (s *slowWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

var _ http.Handler = (*Proxy)(nil)

// sendHalf forwards req upstream and answers with the full response's
// headers (Content-Length promising the whole body) but only the first
// half of its body, flushed.
func (p *Proxy) sendHalf(w http.ResponseWriter, req *http.Request) {
	rec := &recorder{h: http.Header{}}
	p.rp.ServeHTTP(rec, req)
	body := rec.body.Bytes()
	for k, v := range rec.h {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.status())
	_, _ = w.Write(body[:len(body)/2])
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}
