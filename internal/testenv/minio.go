package testenv

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// MinIOVersion is the MinIO server module version scripts/test-deps.sh
// builds (`go install github.com/minio/minio@MinIOVersion`). MinIO is
// AGPL-licensed: it is a test server only, run as a separate process and
// never imported.
const MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

// MinIOPath is where scripts/test-deps.sh puts the MinIO binary:
// $SHALE_MINIO if set, else <cache>/minio-<MinIOVersion>/minio, where
// <cache> is $SHALE_TEST_CACHE, else $XDG_CACHE_HOME/shale-test, else
// ~/.cache/shale-test.
func MinIOPath() string {
	if p := os.Getenv("SHALE_MINIO"); p != "" {
		return p
	}
	return filepath.Join(TestCache(), "minio-"+MinIOVersion, "minio")
}

// TestCache is the directory scripts/test-deps.sh builds test servers and
// suites into: $SHALE_TEST_CACHE, else $XDG_CACHE_HOME/shale-test, else
// ~/.cache/shale-test.
func TestCache() string {
	if c := os.Getenv("SHALE_TEST_CACHE"); c != "" {
		return c
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "shale-test")
}

// RequireServer reports a test server that is not installed: the test is
// skipped, except under CI=true (`make test` in CI), where a skip would
// count a test that never ran as passed, so it fails.
func RequireServer(t testing.TB, what, install string) {
	t.Helper()
	msg := fmt.Sprintf("testenv: %s is not installed: %s", what, install)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a missing test server fails the test)")
	}
	t.Skip(msg)
}

// MinIO starts a real MinIO server (data in t.TempDir(), 127.0.0.1 random
// ports), waits until it answers, creates a fresh bucket and returns its
// coordinates, like S3 does for versitygw. t.Cleanup stops the server.
// Without the binary (run `make test-deps`) the test is skipped, or fails
// under CI=true.
func MinIO(t testing.TB) S3Server {
	t.Helper()
	bin := MinIOPath()
	if _, err := os.Stat(bin); err != nil {
		RequireServer(t, "MinIO ("+bin+")", "run `make test-deps` (scripts/test-deps.sh builds it, about 2 minutes once)")
	}
	dir := t.TempDir()
	var lastErr error
	for range 5 {
		srv, p, err := tryStartMinIO(bin, dir)
		if err == nil {
			t.Cleanup(func() {
				p.stop()
				if t.Failed() {
					t.Logf("minio output:\n%s", p.out.String())
				}
			})
			return srv
		}
		lastErr = err
	}
	t.Fatalf("testenv: start minio: %v", lastErr)
	return S3Server{}
}

func tryStartMinIO(bin, dir string) (S3Server, *s3Process, error) {
	port, err := FreePort()
	if err != nil {
		return S3Server{}, nil, err
	}
	console, err := FreePort()
	if err != nil {
		return S3Server{}, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "server", dir, "--address", addr,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", console), "--quiet")
	cmd.Env = append(EnvWithout("MINIO_"),
		"MINIO_ROOT_USER="+s3AccessKey, "MINIO_ROOT_PASSWORD="+s3SecretKey,
		"MINIO_REGION="+s3Region, "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	return runS3Server("minio", addr, cmd, func(endpoint string, exited <-chan struct{}) error {
		return waitReady(endpoint+"/minio/health/ready", exited)
	})
}

// waitReady polls url until it answers 200 OK, the process exits, or 30 s
// pass.
func waitReady(url string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		select {
		case <-exited:
			return errors.New("exited before answering")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready: %w", err)
		}
	}
}

// StartMinIOProcess starts MinIO serving dir (created if missing) with a
// fresh bucket, for use outside tests (benchmark drivers). stop kills the
// server and waits for it. Without the binary it returns an error saying
// how to install it.
func StartMinIOProcess(dir string) (S3Server, func(), error) {
	bin := MinIOPath()
	if _, err := os.Stat(bin); err != nil {
		return S3Server{}, nil, fmt.Errorf("MinIO is not installed (%s): run `make test-deps`", bin)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return S3Server{}, nil, err
	}
	var lastErr error
	for range 5 {
		srv, p, err := tryStartMinIO(bin, dir)
		if err == nil {
			return srv, p.stop, nil
		}
		lastErr = err
	}
	return S3Server{}, nil, lastErr
}
