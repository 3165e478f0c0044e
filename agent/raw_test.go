package agent_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawConn speaks the Kafka protocol by hand, so tests can send what no
// client library would.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	corr int32
	// clientID is the requests' client ID ("raw-test" when empty).
	clientID string
}

// ioTimeout bounds every raw read and write, so a server that hangs fails
// the test instead of blocking it.
const ioTimeout = 20 * time.Second

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

func (r *rawConn) write(b []byte) error {
	r.t.Helper()
	if err := r.c.SetWriteDeadline(time.Now().Add(ioTimeout)); err != nil {
		return err
	}
	_, err := r.c.Write(b)
	return err
}

// send writes req at its set version.
func (r *rawConn) send(req kmsg.Request) int32 {
	r.t.Helper()
	r.corr++
	id := r.clientID
	if id == "" {
		id = "raw-test"
	}
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID(id)).AppendRequest(nil, req, r.corr)
	if err := r.write(frame); err != nil {
		r.t.Fatalf("write %s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return r.corr
}

// readFrame reads one response frame and returns its correlation ID and body
// (after the header).
func (r *rawConn) readFrame(flexibleHeader bool) (int32, []byte, error) {
	if err := r.c.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		return 0, nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(r.c, size[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 64<<20 {
		r.t.Fatalf("response frame of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.c, body); err != nil {
		return 0, nil, err
	}
	corr := int32(binary.BigEndian.Uint32(body))
	body = body[4:]
	if flexibleHeader {
		body = body[1:] // empty tag section
	}
	return corr, body, nil
}

// roundTrip sends req and decodes its response.
func (r *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	r.t.Helper()
	corr := r.send(req)
	resp := req.ResponseKind()
	got, body, err := r.readFrame(resp.IsFlexible() && req.Key() != kmsg.ApiVersions.Int16())
	if err != nil {
		r.t.Fatalf("read %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	if got != corr {
		r.t.Fatalf("%s response has correlation ID %d, want %d", kmsg.NameForKey(req.Key()), got, corr)
	}
	if err := resp.ReadFrom(body); err != nil {
		r.t.Fatalf("decode %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// expectClosed fails unless the server closes the connection (rather than
// answering or hanging).
func (r *rawConn) expectClosed() {
	r.t.Helper()
	if err := r.c.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		r.t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := r.c.Read(buf)
		if err == nil {
			r.t.Fatalf("server answered %d bytes, want the connection closed", n)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			r.t.Fatal("connection still open: want it closed")
		}
		return // EOF or reset
	}
}

// expectAnsweredThenClosed reads whatever the server still sends (at most
// one answer's worth) and then wants the connection closed.
func (r *rawConn) expectAnsweredThenClosed() {
	r.t.Helper()
	if err := r.c.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		r.t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	total := 0
	for {
		n, err := r.c.Read(buf)
		total += n
		if total > len(buf) {
			r.t.Fatalf("server keeps answering (%d bytes), want the connection closed", total)
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			r.t.Fatal("connection still open: want it closed")
		}
		return // EOF or reset
	}
}

func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}
