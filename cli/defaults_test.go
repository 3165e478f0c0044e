package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestSharedFlagDefaults proves the commands sharing a flag share its
// default: every --data-dir defaults to the agent's, and every
// --etcd-endpoints (but those of agent and recover, which have --dev) to
// the address a dev agent's embedded etcd listens on, so the tools find a
// dev agent's etcd (or its files) without flags.
func TestSharedFlagDefaults(t *testing.T) {
	root := NewRoot(strings.NewReader(""), io.Discard, io.Discard)
	want := map[string]string{
		"data-dir":       DefaultDataDir,
		"etcd-endpoints": "[" + DevEtcdListen + "]",
	}
	seen := map[string]int{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for name, w := range want {
			if f := c.Flags().Lookup(name); f != nil {
				seen[name]++
				if name == "etcd-endpoints" && c.Flags().Lookup("dev") != nil {
					continue // agent, recover: required unless --dev, which starts its own etcd
				}
				if f.DefValue != w {
					t.Errorf("%s --%s defaults to %s, want %s", c.CommandPath(), name, f.DefValue, w)
				}
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for name := range want {
		if seen[name] < 2 {
			t.Errorf("--%s found on %d commands, want several", name, seen[name])
		}
	}
	agent, _, err := root.Find([]string{"agent"})
	if err != nil {
		t.Fatal(err)
	}
	if got := agent.Flags().Lookup("dev-etcd-listen").DefValue; got != DevEtcdListen {
		t.Errorf("agent --dev-etcd-listen defaults to %s, want %s", got, DevEtcdListen)
	}
	if got := adminListen("", true); got != DevAdminListen {
		t.Errorf("dev admin listener %s, want %s", got, DevAdminListen)
	}
}
