package cli

import (
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/shale-dev/shale/internal/testenv"
)

// TestComposeFileIsValid checks docker-compose.yml statically (there is no
// Docker engine on the build machines): it parses, every image is pinned to
// a version, etcd's is the version the tests embed (go.mod) at stock limits
// with a healthcheck, MinIO is built from the module version the tests
// build (testenv.MinIOVersion) with a healthcheck, the agents are built from
// the repo, wait for etcd and MinIO to be healthy, create the bucket,
// restart, and every flag and SHALE_* variable passed to shale exists in
// `shale agent`; .dockerignore keeps data, binaries and npm packages out of
// the build context.
func TestComposeFileIsValid(t *testing.T) {
	data, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Restart     string            `yaml:"restart"`
			Healthcheck any               `yaml:"healthcheck"`
			DependsOn   map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	agentCmd := NewRoot(strings.NewReader(""), io.Discard, io.Discard)
	ac, _, err := agentCmd.Find([]string{"agent"})
	if err != nil {
		t.Fatal(err)
	}
	agents := 0
	for name, svc := range doc.Services {
		if svc.Build == nil {
			tag := svc.Image[strings.LastIndex(svc.Image, ":")+1:]
			if !strings.Contains(svc.Image, ":") || tag == "latest" || tag == "" {
				t.Errorf("service %s: image %q is not pinned to a version", name, svc.Image)
			}
			continue
		}
		if b, ok := svc.Build.(map[string]any); ok && b["context"] != "." {
			continue // not the repo's image: MinIO, checked below
		}
		if len(svc.Command) == 0 || svc.Command[0] != "agent" {
			t.Errorf("service %s: built from the repo but does not run `shale agent`", name)
			continue
		}
		agents++
		if svc.Restart == "" || svc.Restart == "no" {
			t.Errorf("service %s: no restart policy (an agent that exits while etcd is slow stays down)", name)
		}
		if svc.DependsOn["etcd"].Condition != "service_healthy" {
			t.Errorf("service %s: depends on etcd with condition %q, want service_healthy", name, svc.DependsOn["etcd"].Condition)
		}
		for _, arg := range svc.Command[1:] {
			flag := strings.TrimPrefix(strings.SplitN(arg, "=", 2)[0], "--")
			if ac.Flags().Lookup(flag) == nil {
				t.Errorf("service %s: `shale agent` has no flag --%s", name, flag)
			}
		}
		for env := range svc.Environment {
			if strings.HasPrefix(env, "SHALE_") {
				flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "SHALE_")), "_", "-")
				if ac.Flags().Lookup(flag) == nil {
					t.Errorf("service %s: %s matches no `shale agent` flag", name, env)
				}
			}
		}
	}
	if agents != 2 {
		t.Errorf("compose runs %d shale agents, want 2", agents)
	}
	etcd := doc.Services["etcd"]
	if want := "quay.io/coreos/etcd:" + goModVersion(t, "go.etcd.io/etcd/server/v3"); etcd.Image != want {
		t.Errorf("etcd image %q, want %q: the etcd the tests embed", etcd.Image, want)
	}
	if etcd.Healthcheck == nil {
		t.Errorf("etcd has no healthcheck for the agents to wait on")
	}
	for _, arg := range etcd.Command {
		if strings.HasPrefix(arg, "--max-txn-ops") || strings.HasPrefix(arg, "--max-request-bytes") {
			t.Errorf("etcd runs with %s: shale works at a stock etcd's limits, as the tests run it", arg)
		}
	}
	// MinIO is built from the module version the tests build (no image of
	// it is published), and the agents create the bucket.
	minio := doc.Services["minio"]
	build, _ := minio.Build.(map[string]any)
	args, _ := build["args"].(map[string]any)
	if build["context"] != "docker/minio" || args["MINIO_VERSION"] != testenv.MinIOVersion {
		t.Errorf("minio build %v, want context docker/minio with MINIO_VERSION %s (internal/testenv.MinIOVersion)", minio.Build, testenv.MinIOVersion)
	}
	if df, err := os.ReadFile("../docker/minio/Dockerfile"); err != nil || !strings.Contains(string(df), "github.com/minio/minio@${MINIO_VERSION}") {
		t.Errorf("docker/minio/Dockerfile does not build github.com/minio/minio@${MINIO_VERSION}: %v", err)
	}
	if minio.Healthcheck == nil {
		t.Errorf("minio has no healthcheck for the agents to wait on")
	}
	for name, svc := range doc.Services {
		if svc.Build == "." && (svc.DependsOn["minio"].Condition != "service_healthy" || !slices.Contains(svc.Command, "--create-bucket")) {
			t.Errorf("service %s: must wait for minio to be healthy and create the bucket (--create-bucket)", name)
		}
	}
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	for _, want := range []string{"data/", "bin/", "**/node_modules/"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

// goModVersion returns the version go.mod requires of module.
func goModVersion(t *testing.T, module string) string {
	t.Helper()
	data, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == module {
			return f[1]
		}
	}
	t.Fatalf("go.mod does not require %s", module)
	return ""
}
