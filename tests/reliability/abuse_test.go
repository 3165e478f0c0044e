package reliability

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/segment/segmenttest"
	"github.com/shale-dev/shale/tests/cluster"
)

// TestAbuse proves DESIGN invariant 5 against hostile clients, on a real
// agent process: 1,000 idle connections, slow-loris frames (a 100 MiB size
// prefix, then a byte now and then), size prefixes far above the limit, and
// a flood of ~1 MiB produce requests from connections that pipeline without
// pause (some never read their answers). Meanwhile a well-behaved franz-go
// client keeps producing and consuming through the same agent: every one of
// its produces succeeds and is read back. The agent's peak RSS (VmHWM)
// stays bounded, oversize prefixes are refused at once, and idle and
// slow-loris connections are closed after the idle timeout.
func TestAbuse(t *testing.T) {
	const (
		idleConns   = 1000
		slowLoris   = 40
		flooders    = 6
		floodFor    = 8 * time.Second
		idleTimeout = 6 * time.Second
		rssBound    = 1 << 30
	)
	c := cluster.Start(t, cluster.Options{Agents: 1, Args: []string{"--idle-timeout", idleTimeout.String()}})
	addr := c.Addr(0)
	const topic, flood = "abuse", "flood"
	c.CreateTopic(t, 0, topic, 2)
	c.CreateTopic(t, 0, flood, 4)
	pid := c.Pid(0)
	baseRSS := procStatus(t, pid, "VmRSS")

	// The well-behaved client, through the whole test.
	good := startGoodClient(t, addr, topic)

	// 1,000 idle connections.
	var idle []net.Conn
	for range idleConns {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(idle), err)
		}
		idle = append(idle, nc)
	}
	t.Cleanup(func() {
		for _, nc := range idle {
			nc.Close()
		}
	})
	idleOpened := time.Now()

	// Slow-loris: a 100 MiB frame declared, then a byte every 200 ms.
	var loris []net.Conn
	lctx, lcancel := context.WithCancel(context.Background())
	defer lcancel()
	var lwg sync.WaitGroup
	for range slowLoris {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		loris = append(loris, nc)
		lwg.Go(func() {
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], 100<<20)
			if _, err := nc.Write(hdr[:]); err != nil {
				return
			}
			for lctx.Err() == nil {
				if _, err := nc.Write([]byte{0}); err != nil {
					return
				}
				select {
				case <-time.After(200 * time.Millisecond):
				case <-lctx.Done():
				}
			}
		})
	}
	t.Cleanup(func() {
		for _, nc := range loris {
			nc.Close()
		}
	})

	// Oversize and negative size prefixes: closed before anything is read.
	for _, size := range []uint32{100<<20 + 1, 1 << 31, 0xffffffff, 0x7fffffff, 3} {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], size)
		start := time.Now()
		_, _ = nc.Write(hdr[:])
		_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
		if n, err := nc.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("size prefix %#x: connection still open after %v (read %d, %v)", size, time.Since(start), n, err)
		}
		nc.Close()
	}

	// The flood.
	var floodSent, floodAnswered atomic.Int64
	fctx, fcancel := context.WithTimeout(context.Background(), floodFor)
	defer fcancel()
	var fwg sync.WaitGroup
	value := make([]byte, 900<<10)
	for i := range value {
		value[i] = byte(i)
	}
	batch := segmenttest.Batch(segmenttest.BatchOptions{Value: value})
	for f := range flooders {
		readAnswers := f%3 != 0 // every third flooder never reads
		fwg.Go(func() {
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return
			}
			defer nc.Close()
			if readAnswers {
				go func() {
					br := bufio.NewReader(nc)
					var hdr [4]byte
					for {
						if _, err := io.ReadFull(br, hdr[:]); err != nil {
							return
						}
						if _, err := br.Discard(int(binary.BigEndian.Uint32(hdr[:]))); err != nil {
							return
						}
						floodAnswered.Add(1)
					}
				}()
			}
			for corr := int32(0); fctx.Err() == nil; corr++ {
				req := kmsg.NewPtrProduceRequest()
				req.Version, req.Acks, req.TimeoutMillis = 8, -1, 30000 // v8: the last non-flexible version
				rt := kmsg.NewProduceRequestTopic()
				rt.Topic = flood
				rp := kmsg.NewProduceRequestTopicPartition()
				rp.Partition = corr % 4
				rp.Records = batch
				rt.Partitions = append(rt.Partitions, rp)
				req.Topics = append(req.Topics, rt)
				frame := appendRequest(nil, corr, req)
				_ = nc.SetWriteDeadline(time.Now().Add(time.Until(deadlineOf(fctx))))
				if _, err := nc.Write(frame); err != nil {
					return
				}
				floodSent.Add(1)
			}
		})
	}
	// Sample RSS while everything runs.
	peakSeen := int64(0)
	for fctx.Err() == nil {
		peakSeen = max(peakSeen, procStatus(t, pid, "VmRSS"))
		time.Sleep(250 * time.Millisecond)
	}
	fwg.Wait()

	// Idle and slow-loris connections are closed by the idle timeout.
	waitClosed := func(name string, conns []net.Conn) int {
		closed := 0
		deadline := idleOpened.Add(idleTimeout + 15*time.Second)
		for _, nc := range conns {
			_ = nc.SetReadDeadline(deadline)
			if _, err := nc.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
				closed++
			}
		}
		return closed
	}
	idleClosed := waitClosed("idle", idle)
	lcancel()
	lorisClosed := waitClosed("slow-loris", loris)
	lwg.Wait()

	goodRep := good.stop(t)
	hwm := procStatus(t, pid, "VmHWM")
	summary := fmt.Sprintf("abuse: %d idle conns (%d closed by idle timeout %v), %d slow-loris conns (%d closed), 5 oversize prefixes refused, flood %d produce requests of 900 KiB (%d answers read) over %v; agent RSS before %d MiB, peak sampled %d MiB, VmHWM %d MiB; good client: %s",
		idleConns, idleClosed, idleTimeout, slowLoris, lorisClosed, floodSent.Load(), floodAnswered.Load(), floodFor,
		baseRSS>>20, peakSeen>>20, hwm>>20, goodRep)
	t.Log(summary)
	fmt.Println(summary)
	if idleClosed != idleConns {
		t.Errorf("%d of %d idle connections still open after the idle timeout", idleConns-idleClosed, idleConns)
	}
	if lorisClosed != slowLoris {
		t.Errorf("%d of %d slow-loris connections still open after the idle timeout", slowLoris-lorisClosed, slowLoris)
	}
	if bound := rssBound * c.MemFactor(); hwm > bound {
		t.Errorf("agent peak RSS %d MiB above %d MiB", hwm>>20, bound>>20)
	}
	if !goodRep.ok() {
		t.Errorf("the well-behaved client was not served: %s", goodRep)
	}
}

func deadlineOf(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(time.Minute)
	}
	return d
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// appendRequest frames a request with header v1 (client ID "abuse"); the
// produce versions used here are not flexible.
func appendRequest(dst []byte, corr int32, req kmsg.Request) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.Key()))
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.GetVersion()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	dst = binary.BigEndian.AppendUint16(dst, 5)
	dst = append(dst, "abuse"...)
	dst = req.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// procStatus reads a kB field of /proc/<pid>/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("no /proc status for pid %d (memory is measured on Linux only): %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("parse %s: %q", field, line)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// goodClient produces one record at a time (acks=all, synchronously) and
// records each one's latency, until stopped; then reads them all back.
type goodClient struct {
	cl      *kgo.Client
	addr    string
	topic   string
	stopC   chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	acked   map[string]bool
	errs    []string
	maxLat  time.Duration
	samples int
}

type goodReport struct {
	acked, failed, readBack int
	maxLatency              time.Duration
}

func (r goodReport) ok() bool { return r.failed == 0 && r.acked > 0 && r.readBack == r.acked }
func (r goodReport) String() string {
	return fmt.Sprintf("%d produces acknowledged (%d failed, slowest %v), %d read back", r.acked, r.failed, r.maxLatency.Round(time.Millisecond), r.readBack)
}

func startGoodClient(t *testing.T, addr, topic string) *goodClient {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.Dialer(cluster.DialTo(addr)), kgo.DefaultProduceTopic(topic),
		kgo.RecordDeliveryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	g := &goodClient{cl: cl, addr: addr, topic: topic, stopC: make(chan struct{}), done: make(chan struct{}), acked: map[string]bool{}}
	go func() {
		defer close(g.done)
		for i := 0; ; i++ {
			select {
			case <-g.stopC:
				return
			case <-time.After(50 * time.Millisecond):
			}
			v := fmt.Sprintf("good-%06d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			start := time.Now()
			err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr()
			lat := time.Since(start)
			cancel()
			g.mu.Lock()
			if err != nil {
				g.errs = append(g.errs, err.Error())
			} else {
				g.acked[v] = true
			}
			g.maxLat = max(g.maxLat, lat)
			g.mu.Unlock()
		}
	}()
	return g
}

func (g *goodClient) stop(t *testing.T) goodReport {
	t.Helper()
	close(g.stopC)
	<-g.done
	g.cl.Close()
	g.mu.Lock()
	rep := goodReport{acked: len(g.acked), failed: len(g.errs), maxLatency: g.maxLat}
	for i, e := range g.errs {
		if i < 3 {
			t.Logf("good client error: %s", e)
		}
	}
	want := g.acked
	g.mu.Unlock()
	cl, err := kgo.NewClient(kgo.SeedBrokers(g.addr), kgo.Dialer(cluster.DialTo(g.addr)),
		kgo.ConsumeTopics(g.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for len(seen) < len(want) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if want[string(r.Value)] {
				seen[string(r.Value)] = true
			}
		})
	}
	rep.readBack = len(seen)
	return rep
}
