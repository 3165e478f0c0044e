package interop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/tests/cluster"
)

// groupScriptSummary is the last line of group.py and group.js.
type groupScriptSummary struct {
	Consumed  int              `json:"consumed"`
	Errors    []string         `json:"errors"`
	Committed map[string]int64 `json:"committed"`
}

// runGroupScript produces records with franz-go, runs a group consumer
// script against agent B and checks that it consumed every record and
// that the offsets it committed are every partition's end.
func runGroupScript(t *testing.T, name string, argv ...string) {
	t.Helper()
	c := cluster.Start(t, cluster.Options{Agents: 2})
	topic, group := name+"-group", name+"-g"
	const records = 2000
	c.CreateTopic(t, 0, topic, numPartitions)
	prod := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.GzipCompression())) // kafkajs has no snappy
	var recs []*kgo.Record
	for i := range records {
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte("v")})
	}
	if err := prod.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ends := map[int32]int64{}
	for _, r := range recs {
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
	}
	env := append(os.Environ(),
		"SHALE_CONSUME_BOOTSTRAP="+c.Addr(1),
		"SHALE_TOPIC="+topic, "SHALE_GROUP="+group,
		"SHALE_COUNT="+strconv.Itoa(records),
		"SHALE_PARTITIONS="+strconv.Itoa(numPartitions),
		"SHALE_READ_TIMEOUT="+strconv.Itoa(int(readTimeout.Seconds())),
	)
	res := execTool(t, toolTimeout, nil, env, argv[0], argv[1:]...)
	if res.err != nil {
		t.Fatalf("%s: %v\nstderr:\n%.4096s", name, res.err, res.stderr)
	}
	var sum *groupScriptSummary
	sc := bufio.NewScanner(bytes.NewReader(res.stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m struct {
			Kind string `json:"kind"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Kind == "summary" {
			sum = &groupScriptSummary{}
			if err := json.Unmarshal(sc.Bytes(), sum); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sum == nil {
		t.Fatalf("%s printed no summary; stderr:\n%.4096s", name, res.stderr)
	}
	if sum.Consumed != records || len(sum.Errors) > 0 {
		t.Errorf("%s: consumed %d of %d records, errors %q", name, sum.Consumed, records, sum.Errors)
	}
	for p, e := range ends {
		if got := sum.Committed[strconv.Itoa(int(p))]; got != e {
			t.Errorf("%s: partition %d committed %d, want the end %d", name, p, got, e)
		}
	}
}

// TestPythonConsumerGroup proves confluent-kafka (librdkafka) consumes
// through a shale-coordinated group with subscribe() and synchronous
// commits, and reads back what it committed.
func TestPythonConsumerGroup(t *testing.T) {
	python, script := pythonScript(t, "group.py")
	runGroupScript(t, "python", python, script)
}

// TestKafkaJSConsumerGroup proves kafkajs's consumer (it has no other kind)
// reads through a shale-coordinated group and commits, and kafkajs's admin
// reads the committed offsets back.
func TestKafkaJSConsumerGroup(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is missing (%v): run `make test-deps`", err)
	}
	dir, err := filepath.Abs("../js")
	if err != nil {
		t.Fatal(err)
	}
	need(t, filepath.Join(dir, "node_modules", "kafkajs", "package.json"), "kafkajs (tests/js/node_modules; `npm ci` in tests/js)")
	runGroupScript(t, "kafkajs", node, filepath.Join(dir, "group.js"))
}
