package agent_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shale-dev/shale/agent/agenttest"
)

// captureHandler keeps the message and "err" of every record logged.
type captureHandler struct {
	mu   *sync.Mutex
	recs *[]string
}

func (h captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h captureHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h captureHandler) WithGroup(string) slog.Handler            { return h }
func (h captureHandler) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			line += " err=" + a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, line)
	h.mu.Unlock()
	return nil
}

// TestClientHangUpIsNotLoggedAtInfo proves a port probe or a client that
// hangs up mid-request is logged at debug only, while a frame a Kafka
// client never sends (a bad size) is still logged at info.
func TestClientHangUpIsNotLoggedAtInfo(t *testing.T) {
	var (
		mu   sync.Mutex
		recs []string
	)
	c := agenttest.Start(t, agenttest.Options{Log: slog.New(captureHandler{mu: &mu, recs: &recs})})
	addr := c.Agents[0].Addr
	for _, send := range [][]byte{nil, {0, 0}, {0, 0, 0, 32, 'a', 'b', 'c'}, {0x7f, 0xff, 0xff, 0xff}} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if len(send) > 0 {
			if _, err := conn.Write(send); err != nil {
				t.Fatal(err)
			}
		}
		if send == nil || send[0] != 0x7f {
			conn.Close()
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = conn.Read(make([]byte, 1)) // the agent closes it
		conn.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		all := strings.Join(recs, "\n")
		mu.Unlock()
		// Both mid-request hang-ups are recorded (at debug) and the bad
		// size (at info): every connection has been handled.
		if strings.Contains(all, "INFO closing connection err=request size") && strings.Count(all, "DEBUG client closed the connection") >= 2 {
			for _, l := range strings.Split(all, "\n") {
				if strings.HasPrefix(l, "INFO") && strings.Contains(l, "EOF") {
					t.Errorf("a client hang-up is logged at info: %s", l)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want the bad frame size at info and two hang-ups at debug:\n%s", all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
