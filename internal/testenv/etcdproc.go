package testenv

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

	"github.com/shale-dev/shale/metastore"
)

// Environment variables that turn a test binary into an etcd server
// (see RunEtcdIfAsked).
const (
	envEtcdDir    = "SHALE_TESTENV_ETCD_DIR"
	envEtcdClient = "SHALE_TESTENV_ETCD_CLIENT"
	envEtcdPeer   = "SHALE_TESTENV_ETCD_PEER"
	etcdReadyLine = "shale-testenv-etcd-ready"
)

// RunEtcdIfAsked makes the test binary an etcd server when the environment
// asks for it: it runs metastore.StartEmbedded on the given directory and
// fixed client and peer addresses, at a stock etcd's limits (128
// operations per transaction, 1.5 MiB per request), prints a ready line and serves until
// SIGTERM (or dies with SIGKILL). Call it first in TestMain of every
// package that starts an EtcdProcess (tests/cluster's Main does); it
// returns only when not asked.
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
		MaxTxnOps:       EtcdDefaultMaxTxnOps,
		MaxRequestBytes: EtcdDefaultMaxRequestBytes,
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

// EtcdProcess is an etcd server running as a child process (this test
// binary in etcd mode, see RunEtcdIfAsked) at a stock etcd server's limits,
// on a fixed directory and ports, so a test can SIGKILL it and start it
// again with every key kept.
type EtcdProcess struct {
	t          testing.TB
	dir        string
	clientAddr string
	peerAddr   string
	cmd        *exec.Cmd
	exited     chan struct{}
	out        *CappedBuffer
	Restarts   int
}

// StartEtcdProcess starts etcd as a child process; t.Cleanup stops it.
// The test binary's TestMain must call RunEtcdIfAsked first.
func StartEtcdProcess(t testing.TB) *EtcdProcess {
	t.Helper()
	e := &EtcdProcess{t: t, dir: t.TempDir(), out: NewCappedBuffer(1 << 20)}
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
func (e *EtcdProcess) Endpoints() []string { return []string{"http://" + e.clientAddr} }

// Kill SIGKILLs the process and waits for it to be gone.
func (e *EtcdProcess) Kill() { e.stop(syscall.SIGKILL) }

// Restart starts the process again on the same directory and ports.
func (e *EtcdProcess) Restart() {
	e.t.Helper()
	e.Restarts++
	if err := e.start(); err != nil {
		e.t.Fatalf("etcd process restart: %v", err)
	}
}

// Wipe SIGKILLs the process, deletes its data directory and starts a
// fresh, empty etcd on the same ports: etcd lost.
func (e *EtcdProcess) Wipe() {
	e.t.Helper()
	e.Kill()
	if err := os.RemoveAll(e.dir); err != nil {
		e.t.Fatal(err)
	}
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	e.Restart()
}

func (e *EtcdProcess) stop(sig syscall.Signal) {
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

func (e *EtcdProcess) start() error {
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
		cmd.SysProcAttr = dieWithParent()
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
			lastErr = errors.New("exited before ready (does the test binary's TestMain call testenv.RunEtcdIfAsked first?)")
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
