package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/semaphore"

	"github.com/shale-dev/shale/internal/retry"
)

// conn serves one client connection. The read loop decodes requests and
// runs their handlers in request order; a handler may defer its answer
// (produce waits for durability off the read loop), and the write loop
// sends answers strictly in request order, as Kafka requires.
type conn struct {
	s   *Server
	nc  net.Conn
	log *slog.Logger

	ctx    context.Context // ends when the connection closes
	cancel context.CancelFunc
	out    chan *inflight // in request order, to the write loop
	once   sync.Once

	draining    atomic.Bool        // read no more requests (graceful shutdown)
	drainCtx    context.Context    // ends at drain (or close): long polls answer early
	drainCancel context.CancelFunc //
	done        chan struct{}      // closed when serve returns

	lst  *boundListener // the listener that accepted the connection
	auth connAuth       // SASL state and principal (sasl.go)
	// mutedUntil (Unix ns): no request is read before it (a client
	// throttled by its quota, quotas.go).
	mutedUntil atomic.Int64

	// shareSessions: a share session was opened on the connection; its
	// close then ends the sessions it last used (share_partitions.go).
	shareSessions atomic.Bool
}

// inflight is one request's answer on its way to the write loop.
type inflight struct {
	corr  int32
	key   int16
	ready chan struct{} // closed once resp/err are set
	resp  kmsg.Response // nil: no answer (acks=0 produce)
	err   error         // non-nil: close the connection
	// written, when set, runs after the answer is written.
	written func()
	// large: the request frame was at least largeBytes (its bytes are
	// garbage once the answer is written).
	large bool
}

// largeBytes is the size of a request, or of a fetch answer's records,
// after whose answer the agent collects garbage at once (collectLarge).
const largeBytes = 16 << 20

// collectLarge runs a garbage collection once a large request or fetch
// answer is done with, so that its bytes are free for the next one: left
// to the pacer (a collection when the heap doubles), a 100 MiB batch is
// still garbage when the next arrives, and the agent's memory grows by
// both (peak RSS 2.5-3.6x the batch on the producing agent, 2.0x on the
// reading one, for two 100 MiB batches; TestLargeRecordAcrossAgents). One
// collection at a time, one more queued at most: large requests are rare
// next to the bytes they move (a collection marks the live heap, a few
// milliseconds).
func (s *Server) collectLarge() {
	if s.gcQueued.Swap(true) {
		return
	}
	go func() {
		s.gcQueued.Store(false)
		runtime.GC()
	}()
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	dctx, dcancel := context.WithCancel(ctx)
	return &conn{
		drainCtx:    dctx,
		drainCancel: dcancel,
		s:           s,
		nc:          nc,
		log:         s.log.With("remote", nc.RemoteAddr().String()),
		ctx:         ctx,
		cancel:      cancel,
		out:         make(chan *inflight, maxInflightPerConnection),
		done:        make(chan struct{}),
	}
}

// drain makes the read loop stop before the next request (a request being
// read is abandoned); the answers of requests already read still go out.
func (c *conn) drain() {
	c.draining.Store(true)
	c.drainCancel()
	_ = c.nc.SetReadDeadline(time.Now())
}

// waitCtx is the context a handler's optional wait (a fetch long poll)
// honours: it ends when the connection starts draining.
func (rc *reqCtx) waitCtx(ctx context.Context) context.Context {
	if rc == nil || rc.conn == nil {
		return ctx
	}
	return rc.conn.drainCtx
}

func (c *conn) close() {
	c.once.Do(func() {
		c.cancel()
		c.nc.Close()
	})
}

func (c *conn) serve() {
	defer close(c.done)
	defer c.close()
	done := make(chan struct{})
	go func() { defer close(done); c.writeLoop() }()
	err := c.readLoop()
	close(c.out)
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), c.ctx.Err() != nil:
	case errors.Is(err, os.ErrDeadlineExceeded) && c.draining.Load():
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Debug("closing idle connection")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		// The client hung up (a port probe, a client killed mid-request):
		// its business, not the operator's.
		c.log.Debug("client closed the connection", "err", err)
	default:
		c.log.Info("closing connection", "err", err)
	}
	<-done
	if c.shareSessions.Load() {
		c.close()
		c.s.shareReg().connClosed(c)
	}
}

// mute stops reading requests from the connection for d (KIP-219).
func (c *conn) mute(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		old := c.mutedUntil.Load()
		if old >= until || c.mutedUntil.CompareAndSwap(old, until) {
			return
		}
	}
}

// readLoop reads and handles requests until the connection fails, a handler
// returns an error, or the server closes. io.EOF is a clean close.
func (c *conn) readLoop() error {
	// Small: bodies larger than the buffer are read around it, and an idle
	// connection should cost little.
	br := bufio.NewReaderSize(c.nc, 8<<10)
	var sizeBuf [4]byte
	for {
		// A throttled client's connection is muted (KIP-219): nothing
		// more is read from it until its throttle time has passed.
		if d := time.Until(time.Unix(0, c.mutedUntil.Load())); d > 0 && !retry.Sleep(c.drainCtx, d) {
			return nil // closing: nothing more is read
		}
		if err := c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout)); err != nil {
			return err
		}
		// After setting the deadline, so that drain's deadline wins.
		if c.draining.Load() {
			return nil
		}
		if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
			return err
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < minRequestBytes || size > c.s.cfg.MaxFrameBytes {
			return fmt.Errorf("request size %d outside [%d, %d]", size, minRequestBytes, c.s.cfg.MaxFrameBytes)
		}
		if err := c.preAuthLimit(size); err != nil {
			return err
		}
		// Bound the memory of requests in flight across connections; the
		// bytes are held until the request is handed over (a produce's
		// records then count against the engine's own back-pressure).
		body, held, err := readBody(c.ctx, c.s.mem, br, int(size))
		if err != nil {
			c.s.mem.Release(held)
			return fmt.Errorf("read request of %d bytes: %w", size, err)
		}
		fl, err := c.handleFrame(body)
		c.s.mem.Release(held)
		if err != nil {
			return err
		}
		if fl == nil {
			continue
		}
		fl.large = size >= largeBytes
		select {
		case c.out <- fl:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
	}
}

// minRequestBytes is the smallest request header: key, version, correlation
// ID and client ID length.
const minRequestBytes = 10

// readBody reads exactly n bytes, growing its buffer as the bytes arrive so
// that a client declaring a large frame and sending little costs little. It
// accounts the buffer in the server's request-memory semaphore as it grows
// and returns the bytes held there, which the caller releases (also on
// error). mem is the server's request-memory semaphore.
//
// Memory is taken as bytes arrive, not for the declared size up front: a
// slow client that declares 100 MiB and trickles bytes must not hold (or,
// the semaphore being FIFO, queue ahead of everyone for) memory it has not
// used. A connection that cannot grow gives back what it holds and waits
// for its whole frame at once, so partly read requests never wait for each
// other while holding memory.
func readBody(ctx context.Context, mem *semaphore.Weighted, r io.Reader, n int) (buf []byte, held int64, err error) {
	const step = 256 << 10
	grow := func(to int) error {
		if int64(to) <= held {
			return nil
		}
		if mem.TryAcquire(int64(to) - held) {
			held = int64(to)
			return nil
		}
		mem.Release(held)
		held = 0
		if err := mem.Acquire(ctx, int64(n)); err != nil {
			return err
		}
		held = int64(n)
		return nil
	}
	if err := grow(min(n, step)); err != nil {
		return nil, held, err
	}
	buf = make([]byte, 0, min(n, step))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			// Double, and take the whole frame once an eighth has
			// arrived: a large request then costs its size plus about a
			// quarter of garbage on the way (TestReadBodyAllocs), not a
			// dead copy of half of it at the last doubling; a slow client
			// holds at most 8x what it sent.
			size := min(n, 2*cap(buf))
			if cap(buf) >= n/8 {
				size = n
			}
			if err := grow(size); err != nil {
				return nil, held, err
			}
			grown := make([]byte, len(buf), size)
			copy(grown, buf)
			buf = grown
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) < n {
				return nil, held, io.ErrUnexpectedEOF
			}
			if len(buf) < n {
				return nil, held, err
			}
		}
	}
	return buf, held, nil
}

// handleFrame decodes and dispatches one request. It returns the answer to
// queue (nil for none) or an error that closes the connection.
func (c *conn) handleFrame(body []byte) (fl *inflight, err error) {
	defer func() {
		if r := recover(); r != nil {
			// A bug, never expected from client input: log it with the stack
			// and drop the connection rather than the process.
			c.log.Error("panic handling request", "panic", r, "stack", string(debug.Stack()))
			fl, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	req, rc, early, err := c.s.decode(body)
	if err != nil {
		return nil, err
	}
	if early != nil {
		fl = &inflight{corr: rc.corr, key: rc.key, ready: make(chan struct{}), resp: early}
		close(fl.ready)
		return fl, nil
	}
	rc.conn = c
	if err := c.admit(rc.key); err != nil {
		return nil, err
	}
	if hook := c.s.cfg.FaultHook; hook != nil {
		if err := hook(rc.key); err != nil {
			return nil, fmt.Errorf("fault hook for %s: %w", kmsg.NameForKey(rc.key), err)
		}
	}
	start := time.Now()
	api := kmsg.NameForKey(rc.key)
	rep, err := c.s.dispatch(c.ctx, rc, req)
	if err != nil {
		return nil, fmt.Errorf("%s v%d: %w", kmsg.NameForKey(rc.key), rc.version, err)
	}
	fl = &inflight{corr: rc.corr, key: rc.key, ready: make(chan struct{}), written: rep.written}
	if rep.wait == nil {
		fl.resp = rep.resp
		if rep.resp == nil && !rep.noResponse {
			return nil, fmt.Errorf("%s v%d: handler returned no response", kmsg.NameForKey(rc.key), rc.version)
		}
		c.s.cfg.Metrics.Request(api, time.Since(start))
		close(fl.ready)
		return fl, nil
	}
	go func() {
		defer close(fl.ready)
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("panic finishing request", "panic", r, "stack", string(debug.Stack()))
				fl.resp, fl.err = nil, fmt.Errorf("panic: %v", r)
			}
		}()
		fl.resp, fl.err = rep.wait(c.ctx)
		c.s.cfg.Metrics.Request(api, time.Since(start))
		if fl.err != nil {
			fl.err = fmt.Errorf("%s v%d: %w", kmsg.NameForKey(rc.key), rc.version, fl.err)
		}
	}()
	return fl, nil
}

// writeLoop writes answers in request order. It stops (closing the
// connection) on a write error or an answer carrying an error.
func (c *conn) writeLoop() {
	var buf []byte
	for fl := range c.out {
		select {
		case <-fl.ready:
		case <-c.ctx.Done():
			c.close()
			continue // drain so the read loop never blocks
		}
		if fl.err != nil {
			if c.ctx.Err() == nil {
				c.log.Info("closing connection", "err", fl.err)
			}
			c.close()
			continue
		}
		if fl.resp == nil || c.ctx.Err() != nil {
			continue
		}
		var pieces net.Buffers
		large := fl.large
		if fr, ok := fl.resp.(*kmsg.FetchResponse); ok {
			pieces = fetchFrame(buf, fl.corr, fr) // records written in place (fetch_write.go)
			for _, p := range pieces {
				large = large || len(p) >= largeBytes
			}
		}
		if pieces == nil {
			buf = appendResponse(buf[:0], fl.corr, fl.resp)
			pieces = net.Buffers{buf}
		} else if len(pieces[0]) > 0 {
			buf = pieces[0][:0]
		}
		if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
			c.close()
			continue
		}
		if _, err := pieces.WriteTo(c.nc); err != nil {
			c.log.Debug("write failed", "err", err)
			c.close()
			continue
		}
		if fl.written != nil {
			fl.written()
		}
		if large {
			c.s.collectLarge()
		}
		if cap(buf) > 4<<20 {
			buf = nil // do not pin a large fetch response's buffer
		}
	}
}

// appendResponse frames a response: size, correlation ID, the header's tag
// section for flexible versions (never for ApiVersions, whose response
// header is always v0), then the body.
func appendResponse(dst []byte, corr int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	if resp.IsFlexible() && resp.Key() != kmsg.ApiVersions.Int16() {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
