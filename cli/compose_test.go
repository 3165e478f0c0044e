package cli

import (
	"io"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeFileIsValid checks docker-compose.yml statically (there is no
// Docker engine on the build machines): it parses, every image is pinned to
// a version, the agents are built from the repo, and every flag and SHALE_*
// variable passed to shale exists in `shale agent`.
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
		if len(svc.Command) == 0 || svc.Command[0] != "agent" {
			t.Errorf("service %s: built from the repo but does not run `shale agent`", name)
			continue
		}
		agents++
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
}
