package cli

import (
	"fmt"
	"runtime/debug"
)

// Version and Commit may be set at build time with -ldflags
// "-X github.com/shale-dev/shale/cli.Version=... -X ...cli.Commit=..."; the
// build info's VCS stamp, when there is one, wins over Commit (make build
// sets Commit because Go does not stamp builds in a git worktree).
var (
	Version = "dev"
	Commit  = ""
)

// versionString is what `shale --version` prints after "shale version":
// the release (Version, else the module version when built with go install
// at a tag), the VCS commit and whether the tree was modified, and the Go
// version, all from the binary's build info.
func versionString() string {
	ver, commit, goVer := Version, Commit, "unknown"
	if commit == "" {
		commit = "unknown"
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVer = bi.GoVersion
		if ver == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			ver = bi.Main.Version
		}
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
				if len(commit) > 12 {
					commit = commit[:12]
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && commit != "unknown" {
			commit += "-dirty"
		}
	}
	return fmt.Sprintf("%s (commit %s, %s)", ver, commit, goVer)
}
