package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/replay/replaytest"
)

// TestReplayCommand proves `shale replay`, with every agent stopped, writes
// what a Kafka consumer read through the agents (a topic written with every
// codec, part compacted into segments): as JSONL on stdout, as raw batch
// files in a directory, and as Parquet files read back by an independent
// implementation; and that bad flags are errors.
func TestReplayCommand(t *testing.T) {
	f := replaytest.NewFixture(t, 120)
	for _, a := range f.C.Agents {
		if err := a.Stop(); err != nil {
			t.Fatalf("stop agent: %v", err)
		}
	}
	ctx := replaytest.Ctx(t)
	mid := f.Want[len(f.Want)/2]
	t.Run("command jsonl", func(t *testing.T) {
		// The command, read-only itself, against etcd + bucket directory.
		from, to := replay.AtTime(replaytest.TimeOf(mid.Timestamp-2000)), replay.AtTime(replaytest.TimeOf(mid.Timestamp+2000))
		var out, errb bytes.Buffer
		code := Execute(ctx, []string{"replay", "-t", f.Topic, "--from", from.String(), "--to", to.String(), "--bytes", "base64",
			"--etcd-endpoints", strings.Join(f.C.Endpoints, ","), "--etcd-namespace", f.C.Namespace, "--bucket", f.C.BucketDir},
			nil, &out, &errb)
		if code != 0 {
			t.Fatalf("shale replay: exit %d: %s", code, errb.String())
		}
		replaytest.CompareRecs(t, "shale replay --format jsonl", replaytest.SortRecs(replaytest.ParseJSONL(t, out.Bytes())), replaytest.Filter(f.Want, nil, from, to))
		if errb.Len() != 0 {
			t.Errorf("stderr is not a terminal, yet got %q", errb.String())
		}
	})
	t.Run("command raw to directory", func(t *testing.T) {
		dir := t.TempDir()
		var errb bytes.Buffer
		if code := Execute(ctx, []string{"replay", "-t", f.Topic, "--format", "raw", "--out", dir,
			"--etcd-endpoints", strings.Join(f.C.Endpoints, ","), "--etcd-namespace", f.C.Namespace, "--bucket", f.C.BucketDir},
			nil, &bytes.Buffer{}, &errb); code != 0 {
			t.Fatalf("shale replay: exit %d: %s", code, errb.String())
		}
		var got []replaytest.Rec
		for p := range f.Parts {
			data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s-%d.kafka", f.Topic, p)))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, replaytest.DecodeRaw(t, p, data)...)
		}
		replaytest.CompareRecs(t, "raw files", got, f.Want)
	})
	t.Run("command errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"--from", "10", "--to", "9"},
			{"--format", "parquet"},
			{"--format", "raw"}, // several partitions to stdout
			{"--bytes", "hex"},
		} {
			var errb bytes.Buffer
			full := append([]string{"replay", "-t", f.Topic, "--etcd-endpoints", strings.Join(f.C.Endpoints, ","),
				"--etcd-namespace", f.C.Namespace, "--bucket", f.C.BucketDir}, args...)
			if code := Execute(ctx, full, nil, &bytes.Buffer{}, &errb); code == 0 {
				t.Errorf("shale replay %v: exit 0, want an error", args)
			}
		}
	})
	t.Run("parquet", func(t *testing.T) { testParquet(t, f) })
}
