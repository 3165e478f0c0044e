package reliability

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
)

// Environment variables that turn a test binary into an etcd server
// (see RunEtcdIfAsked).
const (
	envEtcdDir    = "SHALE_RELIABILITY_ETCD_DIR"
	envEtcdClient = "SHALE_RELIABILITY_ETCD_CLIENT"
	envEtcdPeer   = "SHALE_RELIABILITY_ETCD_PEER"
	etcdReadyLine = "shale-reliability-etcd-ready"
)

// RunEtcdIfAsked makes the test binary an etcd server when the environment
// asks for it: it runs metastore.StartEmbedded on the given directory and
// fixed client and peer addresses, at a stock etcd's limits (128
// operations per transaction, 1.5 MiB per request), prints a ready line and serves until
// SIGTERM (or dies with SIGKILL). Call it first in TestMain; it returns
// only when not asked.
func RunEtcdIfAsked() {
	dir := os.Getenv(envEtcdDir)
	if dir == "" {
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	srv, err := metastore.StartEmbedded(ctx, metastore.EmbedConfig{
		Dir:        dir,
		ClientAddr: os.Getenv(envEtcdClient),
		PeerAddr:   os.Getenv(envEtcdPeer),
		Fast:       true,
		// A stock etcd server's limits, as production runs.
		MaxTxnOps:       testenv.EtcdDefaultMaxTxnOps,
		MaxRequestBytes: testenv.EtcdDefaultMaxRequestBytes,
		Logger:          log,
	})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd mode:", err)
		os.Exit(1)
	}
	fmt.Println(etcdReadyLine)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	_ = srv.Close()
	os.Exit(0)
}

// EtcdProc is an etcd server running as a child process (this test binary
// in etcd mode) on a fixed directory and ports, so a test can SIGKILL it
// and start it again with every key kept.
type EtcdProc struct {
	t          testing.TB
	dir        string
	clientAddr string
	peerAddr   string
	cmd        *exec.Cmd
	exited     chan struct{}
	out        *testenv.CappedBuffer
	Restarts   int
}

// StartEtcdProc starts etcd as a child process; t.Cleanup stops it.
func StartEtcdProc(t testing.TB) *EtcdProc {
	t.Helper()
	e := &EtcdProc{t: t, dir: t.TempDir(), out: testenv.NewCappedBuffer(1 << 20)}
	var err error
	if e.clientAddr, err = freeAddr(); err != nil {
		t.Fatal(err)
	}
	if e.peerAddr, err = freeAddr(); err != nil {
		t.Fatal(err)
	}
	if err := e.start(); err != nil {
		t.Fatalf("etcd process: %v", err)
	}
	t.Cleanup(func() {
		e.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("etcd process output:\n%s", e.out.String())
		}
	})
	return e
}

// Endpoints are the client URLs, stable across restarts.
func (e *EtcdProc) Endpoints() []string { return []string{"http://" + e.clientAddr} }

// Kill SIGKILLs the process and waits for it to be gone.
func (e *EtcdProc) Kill() { e.stop(syscall.SIGKILL) }

// Restart starts the process again on the same directory and ports.
func (e *EtcdProc) Restart() {
	e.t.Helper()
	e.Restarts++
	if err := e.start(); err != nil {
		e.t.Fatalf("etcd process restart: %v", err)
	}
}

func (e *EtcdProc) stop(sig syscall.Signal) {
	if e.cmd == nil {
		return
	}
	_ = e.cmd.Process.Signal(sig)
	select {
	case <-e.exited:
	case <-time.After(15 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.exited
	}
	e.cmd = nil
}

func (e *EtcdProc) start() error {
	// The ports are fixed for the life of the test; one just released by a
	// killed process may take a moment to be free again.
	var lastErr error
	for attempt := range 20 {
		if attempt > 0 {
			time.Sleep(250 * time.Millisecond)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envEtcdDir+"="+e.dir, envEtcdClient+"="+e.clientAddr, envEtcdPeer+"="+e.peerAddr)
		cmd.Stderr = e.out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		exited := make(chan struct{})
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			ok := false
			for sc.Scan() {
				if strings.Contains(sc.Text(), etcdReadyLine) && !ok {
					ok = true
					ready <- true
				}
			}
			if !ok {
				ready <- false
			}
		}()
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case ok := <-ready:
			if ok {
				e.cmd, e.exited = cmd, exited
				return nil
			}
			<-exited
			lastErr = errors.New("exited before ready")
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("not ready within 60s")
		}
	}
	return fmt.Errorf("%w; output:\n%s", lastErr, e.out.String())
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}
