package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestKcatRoundTrip proves that librdkafka through kcat works against shale:
// `kcat -L` lists both agents and the topic's 6 partitions; an idempotent,
// lz4-compressed `kcat -P -K:` through agent A produces 10,000 keyed records
// with headers; `kcat -C -e -J` through agent B reads all of them back, in
// order per partition, with dense offsets and CreateTime timestamps taken
// while producing.
func TestKcatRoundTrip(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is missing (%v): run `make test-deps` (scripts/test-deps.sh) to install the Debian package kcat", err)
	}
	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic = "kcat"
	c.CreateTopic(t, 0, topic, numPartitions)

	t.Run("list", func(t *testing.T) {
		out := runTool(t, nil, kcat, "-b", c.Addr(0), "-L", "-J", "-t", topic)
		var md struct {
			Brokers []struct {
				ID   int32  `json:"id"`
				Name string `json:"name"`
			} `json:"brokers"`
			Topics []struct {
				Topic      string `json:"topic"`
				Err        string `json:"err"`
				Partitions []struct {
					Partition int32 `json:"partition"`
					Leader    int32 `json:"leader"`
				} `json:"partitions"`
			} `json:"topics"`
		}
		if err := json.Unmarshal(out, &md); err != nil {
			t.Fatalf("kcat -L -J output is not JSON: %v\n%s", err, out)
		}
		var names []string
		ids := map[int32]bool{}
		for _, b := range md.Brokers {
			names = append(names, b.Name)
			ids[b.ID] = true
		}
		slices.Sort(names)
		wantNames := c.Addrs()
		slices.Sort(wantNames)
		if !slices.Equal(names, wantNames) {
			t.Errorf("kcat -L brokers %v, want %v", names, wantNames)
		}
		if len(md.Topics) != 1 || md.Topics[0].Topic != topic {
			t.Fatalf("kcat -L -t %s topics: %+v", topic, md.Topics)
		}
		tp := md.Topics[0]
		if tp.Err != "" {
			t.Errorf("kcat -L: topic %s error %q", topic, tp.Err)
		}
		var parts []int32
		for _, p := range tp.Partitions {
			parts = append(parts, p.Partition)
			if !ids[p.Leader] {
				t.Errorf("kcat -L: partition %d leader %d is not a listed broker", p.Partition, p.Leader)
			}
		}
		slices.Sort(parts)
		if !slices.Equal(parts, []int32{0, 1, 2, 3, 4, 5}) {
			t.Errorf("kcat -L: partitions %v, want 0..5", parts)
		}
		// All topics: __consumer_offsets is listed, as Kafka lists it, with
		// its 50 partitions (librdkafka's metadata has no internal flag;
		// agent's TestConsumerOffsetsIsInternal checks IsInternal by kadm).
		md.Topics = nil
		if err := json.Unmarshal(runTool(t, nil, kcat, "-b", c.Addr(1), "-L", "-J"), &md); err != nil {
			t.Fatalf("kcat -L -J output is not JSON: %v", err)
		}
		i := -1
		for j, tp := range md.Topics {
			if tp.Topic == "__consumer_offsets" {
				i = j
			}
		}
		if i < 0 || md.Topics[i].Err != "" || len(md.Topics[i].Partitions) != 50 {
			t.Errorf("kcat -L (all topics) through agent 1: __consumer_offsets not listed with 50 partitions: %+v", md.Topics)
		}
	})

	// Header values are static in kcat's line mode, and it stamps records
	// with the time it reads them.
	want := func(i int) Record {
		r := recordFor("kcat", i)
		r.Headers = []Header{{"src", "kcat"}, {"run", "interop"}}
		return r
	}
	var in bytes.Buffer
	for i := range numRecords {
		r := want(i)
		fmt.Fprintf(&in, "%s:%s\n", r.Key, r.Value)
	}
	start := time.Now()
	runTool(t, &in, kcat, "-b", c.Addr(0), "-t", topic, "-P", "-K:",
		"-H", "src=kcat", "-H", "run=interop", "-z", "lz4",
		"-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=5")
	end := time.Now()

	// -e: exit once every partition reported end of partition.
	res := execTool(t, readTimeout, nil, nil, kcat, "-b", c.Addr(1), "-C", "-t", topic, "-o", "beginning", "-e", "-J")
	out := res.stdout
	if res.err != nil {
		t.Errorf("kcat -C -e via agent B did not reach the end of every partition: %v\nstderr (first 2 KiB):\n%.2048s", res.err, res.stderr)
		// A killed kcat may leave half a line.
		if k := bytes.LastIndexByte(out, '\n'); k >= 0 {
			out = out[:k+1]
		}
	}
	var got []Record
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m struct {
			Partition int32    `json:"partition"`
			Offset    int64    `json:"offset"`
			TsType    string   `json:"tstype"`
			Ts        int64    `json:"ts"`
			Headers   []string `json:"headers"`
			Key       *string  `json:"key"`
			Payload   *string  `json:"payload"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("kcat -C -J line is not JSON: %v: %q", err, line)
		}
		if m.TsType != "create" {
			t.Errorf("record at %d/%d: timestamp type %q, want create", m.Partition, m.Offset, m.TsType)
		}
		r := Record{Partition: m.Partition, Offset: m.Offset, Timestamp: m.Ts}
		if m.Key != nil {
			r.Key = *m.Key
		}
		if m.Payload != nil {
			r.Value = *m.Payload
		}
		for k := 0; k+1 < len(m.Headers); k += 2 {
			r.Headers = append(r.Headers, Header{m.Headers[k], m.Headers[k+1]})
		}
		got = append(got, r)
	}
	lo, hi := start.Add(-5*time.Second).UnixMilli(), end.Add(5*time.Second).UnixMilli()
	verify(t, expectation{n: numRecords, want: want, partitions: numPartitions,
		ts: func(got, _ int64) bool { return got >= lo && got <= hi }}, got)
	checkEndOffsets(t, c.Addr(1), topic, numRecords, nil)
}

// toolResult is what a client tool run left behind.
type toolResult struct {
	stdout, stderr []byte
	err            error // exit status, or the timeout
	elapsed        time.Duration
}

// execTool runs a client tool with stdin and env (nil: inherit), killed
// after timeout, and returns its output whatever happened.
func execTool(t *testing.T, timeout time.Duration, stdin *bytes.Buffer, env []string, name string, args ...string) toolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if env != nil {
		cmd.Env = env
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w: killed after the %v bound", err, timeout)
	}
	return toolResult{stdout: stdout.Bytes(), stderr: stderr.Bytes(), err: err, elapsed: time.Since(start)}
}

// runTool runs a client tool (bounded by toolTimeout) and returns its
// stdout; a failure fails the test with the tool's stderr.
func runTool(t *testing.T, stdin *bytes.Buffer, name string, args ...string) []byte {
	t.Helper()
	r := execTool(t, toolTimeout, stdin, nil, name, args...)
	if r.err != nil {
		t.Fatalf("%s %s: %v after %v\nstderr:\n%.8192s\nstdout (first 2 KiB):\n%.2048s",
			name, strings.Join(args, " "), r.err, r.elapsed.Round(time.Millisecond), r.stderr, r.stdout)
	}
	if len(r.stderr) > 0 {
		t.Logf("%s stderr:\n%.4096s", name, r.stderr)
	}
	return r.stdout
}
