package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Credentials and region of every versitygw started here.
const (
	s3AccessKey = "shale-test-access"
	s3SecretKey = "shale-test-secret-key"
	s3Region    = "us-east-1"
)

// S3Server is a running S3-compatible server with one fresh, empty bucket.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
}

// Host returns the endpoint's host:port.
func (s S3Server) Host() string { return strings.TrimPrefix(s.Endpoint, "http://") }

// S3 starts a real versitygw server (posix backend in t.TempDir()) on a
// random 127.0.0.1 port, waits until it answers, creates a fresh bucket and
// returns its coordinates. t.Cleanup stops the server; the server's output
// is logged if the test failed.
func S3(t testing.TB) S3Server {
	t.Helper()
	dir := t.TempDir() // before the stop cleanup, so it is removed after it
	srv, p, err := startS3(dir)
	if err != nil {
		t.Fatalf("testenv: start versitygw: %v", err)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", p.out.String())
		}
	})
	return srv
}

// StartS3Process starts versitygw serving dir (created if missing) like S3,
// for use outside tests (benchmark drivers, multi-process tests). stop kills
// the server and waits for it; it is safe to call more than once.
func StartS3Process(dir string) (S3Server, func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return S3Server{}, nil, err
	}
	srv, p, err := startS3(dir)
	if err != nil {
		return S3Server{}, nil, err
	}
	return srv, p.stop, nil
}

// Minio returns an independent minio-go client for the server, to inspect
// the bucket without going through shale's code.
func (s S3Server) Minio(t testing.TB) *minio.Client {
	t.Helper()
	c, err := s.minioClient()
	if err != nil {
		t.Fatalf("testenv: minio client: %v", err)
	}
	return c
}

func (s S3Server) minioClient() (*minio.Client, error) {
	return minio.New(s.Host(), &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: false,
		Region: s.Region,
	})
}

type s3Process struct {
	cmd      *exec.Cmd
	out      *CappedBuffer
	exited   chan struct{} // closed when the process has exited
	stopOnce sync.Once
}

func (p *s3Process) stop() {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

// startS3 starts versitygw on a free port, retrying when another process
// takes the port first, and creates the bucket.
func startS3(dir string) (S3Server, *s3Process, error) {
	bin, err := versitygwPath()
	if err != nil {
		return S3Server{}, nil, err
	}
	var lastErr error
	for range 5 {
		srv, p, err := tryStartS3(bin, dir)
		if err == nil {
			return srv, p, nil
		}
		lastErr = err
	}
	return S3Server{}, nil, lastErr
}

func tryStartS3(bin, dir string) (S3Server, *s3Process, error) {
	port, err := FreePort()
	if err != nil {
		return S3Server{}, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin,
		"--port", addr, "--access", s3AccessKey, "--secret", s3SecretKey,
		"--region", s3Region, "--quiet",
		"posix", dir)
	cmd.Env = hermeticEnv()
	return runS3Server("versitygw", addr, cmd, func(endpoint string, exited <-chan struct{}) error {
		return waitHTTP(endpoint, exited)
	})
}

// runS3Server starts cmd, an S3 server (name, for errors) that will listen
// on addr, waits until ready says it answers, and creates a fresh bucket;
// on any failure the process is stopped and its output is in the error.
func runS3Server(name, addr string, cmd *exec.Cmd, ready func(endpoint string, exited <-chan struct{}) error) (S3Server, *s3Process, error) {
	p := &s3Process{cmd: cmd, out: NewCappedBuffer(1 << 20), exited: make(chan struct{})}
	p.cmd.SysProcAttr = dieWithParent()
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		return S3Server{}, nil, fmt.Errorf("start %s: %w", p.cmd.Path, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	srv := S3Server{
		Endpoint:  "http://" + addr,
		Region:    s3Region,
		AccessKey: s3AccessKey,
		SecretKey: s3SecretKey,
		Bucket:    "shale-" + randomHex(8),
	}
	if err := ready(srv.Endpoint, p.exited); err != nil {
		p.stop()
		return S3Server{}, nil, fmt.Errorf("%s on %s: %w; output:\n%s", name, addr, err, p.out.String())
	}
	if err := makeBucket(srv); err != nil {
		p.stop()
		return S3Server{}, nil, fmt.Errorf("%s on %s: create bucket %s: %w; output:\n%s", name, addr, srv.Bucket, err, p.out.String())
	}
	return srv, p, nil
}

// waitHTTP polls url until it answers any HTTP response (an anonymous GET
// gets 403), the process exits, or 15 s pass.
func waitHTTP(url string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for attempt := 0; ; attempt++ {
		resp, err := client.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before answering")
		case <-time.After(min(time.Duration(attempt+1)*10*time.Millisecond, 200*time.Millisecond)):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering: %w", err)
		}
	}
}

func makeBucket(srv S3Server) error {
	c, err := srv.minioClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.MakeBucket(ctx, srv.Bucket, minio.MakeBucketOptions{Region: srv.Region})
}

// hermeticEnv is the environment minus versitygw's own settings, which would
// otherwise change how the test server behaves.
func hermeticEnv() []string { return EnvWithout("VGW_", "ROOT_") }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var versitygw struct {
	once sync.Once
	path string
	err  error
}

// versitygwPath finds the versitygw binary once per process: $SHALE_VERSITYGW,
// else `go tool -n versitygw` run in the module root (go.mod's tool line).
func versitygwPath() (string, error) {
	versitygw.once.Do(func() {
		if p := os.Getenv("SHALE_VERSITYGW"); p != "" {
			versitygw.path = p
			return
		}
		root, err := ModuleRoot()
		if err != nil {
			versitygw.err = err
			return
		}
		cmd := exec.Command("go", "tool", "-n", "versitygw")
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			versitygw.err = fmt.Errorf("go tool -n versitygw in %s: %w: %s (set SHALE_VERSITYGW to a versitygw binary)", root, err, stderr.String())
			return
		}
		versitygw.path = strings.TrimSpace(string(out))
	})
	return versitygw.path, versitygw.err
}
