package cli

import (
	"io"
	"os"
	"os/exec"
	"regexp"
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

// TestDockerfilesMatchTheTests checks the two Dockerfiles of
// docker-compose.yml statically, as far as that goes without a Docker
// engine (the build machines have none, so neither image has been built
// by a test): every base image is pinned; the Go builder is the Go release
// go.mod asks for; MinIO's image builds the module the tests build, with
// the same `go install` as scripts/test-deps.sh, at the version compose
// passes; it has the curl its compose healthcheck runs; shale's image runs
// shale. (`CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath
// github.com/minio/minio@<version>`, the MinIO Dockerfile's build step, was
// run once outside Docker and built; see README "Run with MinIO and etcd in
// docker-compose".)
func TestDockerfilesMatchTheTests(t *testing.T) {
	goDirective := goModVersion(t, "go")
	goMinor := strings.Join(strings.SplitN(goDirective, ".", 3)[:2], ".")
	steps := func(path string) (from, run []string, text string) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text = strings.ReplaceAll(string(data), "\\\n", " ")
		for _, l := range strings.Split(text, "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) >= 2 && f[0] == "FROM":
				from = append(from, f[1])
			case len(f) >= 2 && f[0] == "RUN":
				run = append(run, strings.Join(f[1:], " "))
			}
		}
		return from, run, text
	}
	for _, path := range []string{"../Dockerfile", "../docker/minio/Dockerfile"} {
		from, _, _ := steps(path)
		if len(from) < 2 {
			t.Errorf("%s: %d stages, want a Go build stage and a runtime stage", path, len(from))
		}
		for _, img := range from {
			name, tag, ok := strings.Cut(img, ":")
			if !ok || tag == "" || tag == "latest" {
				t.Errorf("%s: base image %q is not pinned to a version", path, img)
			}
			if name == "golang" && !strings.HasPrefix(tag, goMinor+"-") && tag != goMinor {
				t.Errorf("%s: builder %s, want golang:%s (go.mod: go %s)", path, img, goMinor, goDirective)
			}
		}
		if !strings.HasPrefix(from[0], "golang:") {
			t.Errorf("%s: first stage %s, want the golang builder", path, from[0])
		}
	}

	// MinIO: the same module and version as scripts/test-deps.sh.
	_, run, text := steps("../docker/minio/Dockerfile")
	const install = "go install -trimpath \"github.com/minio/minio@${MINIO_VERSION}\""
	if !slices.ContainsFunc(run, func(r string) bool { return strings.Contains(r, install) }) || !strings.Contains(text, "ARG MINIO_VERSION") {
		t.Errorf("docker/minio/Dockerfile: no ARG MINIO_VERSION and RUN ... %s", install)
	}
	deps, err := os.ReadFile("../scripts/test-deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(deps), `go install "github.com/minio/minio@$minio_version"`) ||
		!strings.Contains(string(deps), `s/^const MinIOVersion = "\(.*\)"$/\1/p' internal/testenv/minio.go`) {
		t.Errorf("scripts/test-deps.sh no longer builds github.com/minio/minio@<internal/testenv.MinIOVersion>: update this test and docker/minio/Dockerfile with it")
	}
	minioGo, err := os.ReadFile("../internal/testenv/minio.go")
	if err != nil || !regexpLine(string(minioGo), regexp.QuoteMeta(`const MinIOVersion = "`+testenv.MinIOVersion+`"`)) {
		t.Errorf("internal/testenv/minio.go: no line `const MinIOVersion = %q` for scripts/test-deps.sh's sed to read (%v)", testenv.MinIOVersion, err)
	}
	if !slices.ContainsFunc(run, func(r string) bool { return strings.Contains(r, "apt-get install") && strings.Contains(r, " curl") }) {
		t.Errorf("docker/minio/Dockerfile does not install curl, which its compose healthcheck runs")
	}
	if !strings.Contains(text, `ENTRYPOINT ["/usr/local/bin/minio"]`) || !strings.Contains(text, "COPY --from=build /out/minio /usr/local/bin/minio") {
		t.Errorf("docker/minio/Dockerfile: the runtime stage does not run the minio it built")
	}

	// shale: built from the repo, and the agent services' commands are
	// shale's (`agent ...`, TestComposeFileIsValid).
	_, run, text = steps("../Dockerfile")
	if !slices.ContainsFunc(run, func(r string) bool { return strings.Contains(r, "go build") && strings.Contains(r, "-o /out/shale .") }) ||
		!strings.Contains(text, `ENTRYPOINT ["/usr/local/bin/shale"]`) {
		t.Errorf("Dockerfile: does not build the repo into /out/shale and run it")
	}
}

// TestMakeRunTakesItsPorts proves `make run`'s ports and data directory
// can be changed from the make command line (README: a second dev agent
// beside the first) and that every flag it passes exists in `shale agent`:
// `make -n run ...` prints the agent's command line without running it.
func TestMakeRunTakesItsPorts(t *testing.T) {
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Fatalf("make is not installed (make test runs the tests through it): %v", err)
	}
	cmd := exec.Command(makeBin, "-n", "run", "LISTEN=127.0.0.1:19092", "ADMIN_LISTEN=127.0.0.1:19644",
		"ETCD_LISTEN=127.0.0.1:12379", "DATA_DIR=data2", "ARGS=--log-level debug")
	cmd.Dir = ".."
	// Under make test the parent make's flags (-j's jobserver, -n, -k) are
	// in the environment; this make must not inherit them.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n run: %v\n%s", err, out)
	}
	var line string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "bin/shale agent") {
			line = l
		}
	}
	for _, want := range []string{"--listen 127.0.0.1:19092", "--admin-listen 127.0.0.1:19644", "--dev-etcd-listen 127.0.0.1:12379", "--data-dir data2", "--dev", "--log-level debug"} {
		if !strings.Contains(line, want) {
			t.Errorf("make run's agent command %q lacks %q", line, want)
		}
	}
	ac, _, err := NewRoot(strings.NewReader(""), io.Discard, io.Discard).Find([]string{"agent"})
	if err != nil {
		t.Fatal(err)
	}
	_, args, _ := strings.Cut(line, "bin/shale agent")
	for _, f := range strings.Fields(args) {
		if name, ok := strings.CutPrefix(f, "--"); ok && ac.Flags().Lookup(name) == nil {
			t.Errorf("make run passes --%s, which `shale agent` does not have", name)
		}
	}
}
