package agent_test

import (
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
)

// TestMaxConnections proves connections above Config.MaxConnections are
// closed at accept while those within it are served, and that a slot frees
// when a connection closes.
func TestMaxConnections(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agent: func(_ int, cfg *agent.Config) { cfg.MaxConnections = 2 }})
	addr := c.Agents[0].Addr
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	a.roundTrip(kmsg.NewPtrApiVersionsRequest())
	b.roundTrip(kmsg.NewPtrApiVersionsRequest())
	over := dialRaw(t, addr)
	over.expectClosed()
	a.c.Close()
	// The server notices a's close, then accepts again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		rc := &rawConn{t: t, c: nc}
		rc.send(kmsg.NewPtrApiVersionsRequest())
		_ = nc.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := rc.readFrame(false); err == nil {
			nc.Close()
			return
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatal("no connection accepted after one of two closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
