package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/tests/cluster"
)

// pythonScript returns Debian's python3 and the absolute path of
// tests/python/<name>, failing t (with how to install them) unless both
// exist and python3 imports confluent_kafka.
func pythonScript(t *testing.T, name string) (python, script string) {
	t.Helper()
	python = "/usr/bin/python3"
	need(t, python, "python3 (Debian python3)")
	if out, err := exec.Command(python, "-c", "import confluent_kafka").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import confluent_kafka (%v: %s): run `make test-deps` (scripts/test-deps.sh) to install the Debian package python3-confluent-kafka", python, err, out)
	}
	script, err := filepath.Abs(filepath.Join("../python", name))
	if err != nil {
		t.Fatal(err)
	}
	need(t, script, "tests/python/"+name)
	return python, script
}

// TestPythonRoundTrip proves that confluent-kafka for Python (librdkafka)
// round-trips 10,000 keyed records with headers and explicit timestamps,
// zstd-compressed, producing through agent A and reading with assign() (no
// group) through agent B until every partition reports its end: every
// record at its acknowledged partition and offset, in order, dense.
func TestPythonRoundTrip(t *testing.T) {
	python, script := pythonScript(t, "roundtrip.py")

	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic = "python"
	c.CreateTopic(t, 0, topic, numPartitions)
	res := execTool(t, toolTimeout, nil, scriptEnv(c, topic, "python"), python, script)
	run := parseScript(t, res, "python roundtrip.py")
	if run.summary == nil {
		return
	}
	want := func(i int) Record { return recordFor("python", i) }
	sum := run.summary
	if sum.Acked != numRecords || sum.Failed != 0 {
		t.Errorf("python: %d records acknowledged, %d failed; want %d acknowledged", sum.Acked, sum.Failed, numRecords)
	}
	if !slices.Equal(sum.EOFPartitions, []int32{0, 1, 2, 3, 4, 5}) {
		t.Errorf("python: end of partition reported for %v, want all of 0..5", sum.EOFPartitions)
	}
	if len(sum.Errors) > 0 {
		t.Errorf("python: consumer errors: %q", sum.Errors)
	}
	if h := digestRecords(run.records); h != sum.SHA256 {
		t.Errorf("python: SHA-256 of the %d record lines read is %s, the script computed %s over %d records", len(run.records), h, sum.SHA256, sum.Consumed)
	}
	verify(t, expectation{n: numRecords, want: want, acks: run.acks, partitions: numPartitions}, run.records)
	checkEndOffsets(t, c.Addr(1), topic, numRecords, run.acks)
}

// TestKafkaPythonRoundTrip proves that kafka-python (Debian's
// python3-kafka 2.0.2, the pure-Python client, which speaks older request
// versions than the other clients here: it infers a broker version from
// ApiVersions and uses that version's requests) round-trips 10,000 keyed
// records with headers and explicit timestamps, gzip-compressed: produced
// through agent A, each at the offset it was acknowledged with; read in a
// consumer group through agent B until every partition's position reaches
// its end, in order and dense; and the group's commit, read back by
// kafka-python and by franz-go through agent A, is each partition's end.
func TestKafkaPythonRoundTrip(t *testing.T) {
	python := "/usr/bin/python3"
	need(t, python, "python3 (Debian python3)")
	if out, err := exec.Command(python, "-c", "import kafka").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import kafka (%v: %s): run `make test-deps` (scripts/test-deps.sh) to install the Debian package python3-kafka", python, err, out)
	}
	script, err := filepath.Abs("../python/kafkapython.py")
	if err != nil {
		t.Fatal(err)
	}

	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic, group = "kafka-python", "kafka-python-group"
	c.CreateTopic(t, 0, topic, numPartitions)
	res := execTool(t, toolTimeout, nil, append(scriptEnv(c, topic, "kafka-python"), "SHALE_GROUP="+group), python, script)
	run := parseScript(t, res, "python kafkapython.py")
	if run.summary == nil {
		return
	}
	sum := run.summary
	if sum.Acked != numRecords || sum.Failed != 0 {
		t.Errorf("kafka-python: %d records acknowledged, %d failed; want %d acknowledged", sum.Acked, sum.Failed, numRecords)
	}
	if !slices.Equal(sum.EOFPartitions, []int32{0, 1, 2, 3, 4, 5}) {
		t.Errorf("kafka-python: partitions read to their end %v, want all of 0..5", sum.EOFPartitions)
	}
	if len(sum.Errors) > 0 {
		t.Errorf("kafka-python: errors: %q", sum.Errors)
	}
	if h := digestRecords(run.records); h != sum.SHA256 {
		t.Errorf("kafka-python: SHA-256 of the %d record lines read is %s, the script computed %s over %d records", len(run.records), h, sum.SHA256, sum.Consumed)
	}
	verify(t, expectation{n: numRecords, want: func(i int) Record { return recordFor("kafka-python", i) }, acks: run.acks, partitions: numPartitions}, run.records)
	ends := map[int32]int64{}
	for _, p := range run.acks {
		ends[p.Partition] = max(ends[p.Partition], p.Offset+1)
	}
	// The group's commit, as kafka-python read it back and as another
	// client reads it through the other agent.
	adm := kadm.NewClient(c.Client(t, kgo.SeedBrokers(c.Addr(0)), kgo.Dialer(cluster.DialTo(c.Addr(0)))))
	fetched, err := adm.FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatalf("fetch the group's offsets through agent A: %v", err)
	}
	for p := range int32(numPartitions) {
		if got := sum.Committed[strconv.Itoa(int(p))]; got != ends[p] {
			t.Errorf("kafka-python read back a commit of %d for partition %d, want its end %d", got, p, ends[p])
		}
		o, ok := fetched.Lookup(topic, p)
		if !ok || o.At != ends[p] {
			t.Errorf("franz-go through agent A reads the group's commit of partition %d as %+v (found %v), want %d", p, o.At, ok, ends[p])
		}
	}
}

// TestKafkaJSRoundTrip proves that kafkajs's idempotent producer writes
// 10,000 keyed records with headers and explicit timestamps through agent
// A, each at the offset its produce response names, that kafkajs's admin
// sees the resulting end offsets through agent B, and that a kafkajs
// consumer (in a shale-coordinated group) reads all of them back through B
// with the same keys, values, headers, timestamps, partitions and order.
// franz-go reads them too, as an independent check.
func TestKafkaJSRoundTrip(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is missing (%v): run `make test-deps` (scripts/test-deps.sh) to install nodejs and npm", err)
	}
	dir, err := filepath.Abs("../js")
	if err != nil {
		t.Fatal(err)
	}
	need(t, filepath.Join(dir, "node_modules", "kafkajs", "package.json"), "kafkajs (tests/js/node_modules; `npm ci` in tests/js)")

	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic = "kafkajs"
	c.CreateTopic(t, 0, topic, numPartitions)
	res := execTool(t, toolTimeout, nil, scriptEnv(c, topic, "kafkajs"), node, filepath.Join(dir, "roundtrip.js"))
	run := parseScript(t, res, "node roundtrip.js")
	if run.summary == nil {
		return
	}
	sum := run.summary
	if sum.Acked != numRecords || sum.Failed != 0 {
		t.Errorf("kafkajs: %d records acknowledged, %d failed; want %d acknowledged", sum.Acked, sum.Failed, numRecords)
	}
	if len(sum.Errors) > 0 {
		t.Errorf("kafkajs: errors: %q", sum.Errors)
	}
	// kafkajs's admin view of the end offsets, through agent B.
	ends := map[int32]int64{}
	for p, hw := range sum.HighWatermarks {
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil {
			t.Errorf("kafkajs: high watermark for partition %q", p)
			continue
		}
		ends[int32(n)] = hw
	}
	wantEnds := map[int32]int64{}
	for _, p := range run.acks {
		wantEnds[p.Partition] = max(wantEnds[p.Partition], p.Offset+1)
	}
	for p := range int32(numPartitions) {
		if ends[p] != wantEnds[p] {
			t.Errorf("kafkajs admin.fetchTopicOffsets via B: partition %d high watermark %d, want %d", p, ends[p], wantEnds[p])
		}
	}
	want := func(i int) Record { return recordFor("kafkajs", i) }
	if sum.Consumed != numRecords {
		t.Errorf("kafkajs consumer read %d records, want %d", sum.Consumed, numRecords)
	}
	verify(t, expectation{n: numRecords, want: want, acks: run.acks, partitions: numPartitions}, run.records)
	got := consumeAll(t, c.Addr(1), topic, numRecords)
	verify(t, expectation{n: numRecords, want: want, acks: run.acks, partitions: numPartitions}, got)
}

// scriptEnv is the environment of a language script (see doc.go).
func scriptEnv(c *cluster.Cluster, topic, src string) []string {
	return append(os.Environ(),
		"SHALE_PRODUCE_BOOTSTRAP="+c.Addr(0),
		"SHALE_CONSUME_BOOTSTRAP="+c.Addr(1),
		"SHALE_TOPIC="+topic,
		"SHALE_COUNT="+strconv.Itoa(numRecords),
		"SHALE_PARTITIONS="+strconv.Itoa(numPartitions),
		"SHALE_SRC="+src,
		"SHALE_READ_TIMEOUT="+strconv.Itoa(int(readTimeout.Seconds())),
	)
}

// scriptSummary is a script's last line.
type scriptSummary struct {
	Produced       int              `json:"produced"`
	Acked          int              `json:"acked"`
	Failed         int              `json:"failed"`
	Consumed       int              `json:"consumed"`
	EOFPartitions  []int32          `json:"eof_partitions"`
	Errors         []string         `json:"errors"`
	SHA256         string           `json:"sha256"`
	HighWatermarks map[string]int64 `json:"high_watermarks"`
	// Committed is a consumer group's committed offset per partition,
	// as the script's client read it back.
	Committed map[string]int64 `json:"committed"`
}

type scriptRun struct {
	acks    map[int]Pos
	records []Record
	summary *scriptSummary
}

// parseScript checks a script's exit and reads its JSON lines. A script
// that failed or printed no summary fails the test with its stderr.
func parseScript(t *testing.T, res toolResult, name string) scriptRun {
	t.Helper()
	if res.err != nil {
		t.Errorf("%s: %v after %v\nstderr (first 4 KiB):\n%.4096s", name, res.err, res.elapsed, res.stderr)
	} else if len(res.stderr) > 0 {
		t.Logf("%s stderr (first 4 KiB):\n%.4096s", name, res.stderr)
	}
	run := scriptRun{acks: map[int]Pos{}}
	sc := bufio.NewScanner(bytes.NewReader(res.stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m struct {
			Kind      string      `json:"kind"`
			I         int         `json:"i"`
			Partition int32       `json:"partition"`
			Offset    int64       `json:"offset"`
			Key       *string     `json:"key"`
			Value     *string     `json:"value"`
			Headers   [][2]string `json:"headers"`
			Timestamp int64       `json:"timestamp"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			if res.err == nil {
				t.Errorf("%s: stdout line is not JSON: %v: %.200q", name, err, line)
			}
			continue
		}
		switch m.Kind {
		case "ack":
			if prev, dup := run.acks[m.I]; dup {
				t.Errorf("%s: record %d acknowledged twice (%v, then %d/%d)", name, m.I, prev, m.Partition, m.Offset)
			}
			run.acks[m.I] = Pos{m.Partition, m.Offset}
		case "record":
			r := Record{Partition: m.Partition, Offset: m.Offset, Timestamp: m.Timestamp}
			if m.Key != nil {
				r.Key = *m.Key
			}
			if m.Value != nil {
				r.Value = *m.Value
			}
			for _, h := range m.Headers {
				r.Headers = append(r.Headers, Header{h[0], h[1]})
			}
			run.records = append(run.records, r)
		case "summary":
			var s scriptSummary
			if err := json.Unmarshal(line, &s); err != nil {
				t.Errorf("%s: summary: %v", name, err)
				continue
			}
			run.summary = &s
		default:
			t.Errorf("%s: unknown line kind %q", name, m.Kind)
		}
	}
	if run.summary == nil {
		t.Errorf("%s printed no summary line (%d acks, %d records read)", name, len(run.acks), len(run.records))
	}
	return run
}

// digestRecords is the SHA-256 roundtrip.py computes over the records it
// read: per record, the compact JSON of [partition, offset, key, value,
// headers, timestamp] and a newline.
func digestRecords(rs []Record) string {
	h := sha256.New()
	for _, r := range rs {
		hs := make([][2]string, 0, len(r.Headers))
		for _, x := range r.Headers {
			hs = append(hs, [2]string{x.Key, x.Value})
		}
		b, _ := json.Marshal([]any{r.Partition, r.Offset, r.Key, r.Value, hs, r.Timestamp})
		fmt.Fprintf(h, "%s\n", b)
	}
	return hex.EncodeToString(h.Sum(nil))
}
