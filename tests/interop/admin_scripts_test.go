package interop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/tests/cluster"
)

// adminLine is one observation of tests/python/admin.py.
type adminLine struct {
	Kind    string          `json:"kind"`
	Errors  json.RawMessage `json:"errors"`
	Configs map[string]struct {
		Value  string `json:"value"`
		Source int    `json:"source"`
	} `json:"configs"`
	Codec     string   `json:"codec"`
	Failed    []string `json:"failed"`
	Unflushed int      `json:"unflushed"`
	Match     bool     `json:"match"`
	Read      int      `json:"read"`
	Want      int      `json:"want"`
	Described map[string]struct {
		State        string  `json:"state"`
		ProtocolType string  `json:"protocol_type"`
		Error        *string `json:"error"`
	} `json:"described"`
	Listed map[string]struct {
		State        string `json:"state"`
		ProtocolType string `json:"protocol_type"`
	} `json:"listed"`
}

// noErrors reports whether an "errors" field (a map of key to error, or a
// list) holds no error.
func noErrors(raw json.RawMessage) bool {
	var m map[string]*string
	if json.Unmarshal(raw, &m) == nil {
		for _, v := range m {
			if v != nil {
				return false
			}
		}
		return true
	}
	var l []string
	return json.Unmarshal(raw, &l) == nil && len(l) == 0
}

// TestPythonAdminSession proves, with confluent-kafka's AdminClient
// (librdkafka) on agent A and its consumer on agent B: a topic created
// with compression.type=zstd and altered to lz4 is described so; records
// produced afterwards by lz4, gzip and uncompressed producers are read back
// identical and in order, and are stored as lz4 (the topic's codec, checked
// with a raw fetch); a topic created with the deprecated
// message.format.version is accepted and described with it; and groups are
// listed and described with Kafka's states and protocol types (never used:
// Dead; consumer left: Empty "consumer"; offsets only: Empty "").
func TestPythonAdminSession(t *testing.T) {
	python, script := pythonScript(t, "admin.py")
	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic, count = "py-admin", 200
	env := append(os.Environ(),
		"SHALE_PRODUCE_BOOTSTRAP="+c.Addr(0), "SHALE_CONSUME_BOOTSTRAP="+c.Addr(1),
		"SHALE_TOPIC="+topic, "SHALE_COUNT="+strconv.Itoa(count),
		"SHALE_READ_TIMEOUT="+strconv.Itoa(int(readTimeout.Seconds())))
	res := execTool(t, toolTimeout, nil, env, python, script)
	if res.err != nil {
		t.Fatalf("admin.py: %v\nstderr:\n%.4096s", res.err, res.stderr)
	}
	lines := map[string][]adminLine{}
	sc := bufio.NewScanner(bytes.NewReader(res.stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l adminLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("admin.py printed %q: %v", sc.Text(), err)
		}
		lines[l.Kind] = append(lines[l.Kind], l)
	}
	if len(lines["summary"]) != 1 {
		t.Fatalf("admin.py did not finish; stdout:\n%s\nstderr:\n%.4096s", res.stdout, res.stderr)
	}
	const dynamic = 1 // confluent_kafka ConfigSource.DYNAMIC_TOPIC_CONFIG
	if l := lines["create"][0]; !noErrors(l.Errors) || l.Configs["compression.type"].Value != "zstd" || l.Configs["compression.type"].Source != dynamic {
		t.Errorf("create with compression.type=zstd: %+v", l)
	}
	if l := lines["alter"][0]; !noErrors(l.Errors) || l.Configs["compression.type"].Value != "lz4" || l.Configs["compression.lz4.level"].Value != "9" {
		t.Errorf("alter to lz4: %+v", l)
	}
	for _, l := range lines["produced"] {
		if len(l.Failed) > 0 || l.Unflushed != 0 {
			t.Errorf("%s producer: %d failed (%q), %d unflushed", l.Codec, len(l.Failed), l.Failed, l.Unflushed)
		}
	}
	if len(lines["produced"]) != 3 {
		t.Errorf("%d producers reported, want 3", len(lines["produced"]))
	}
	if l := lines["read"][0]; !l.Match || l.Read != 3*count || !noErrors(l.Errors) {
		t.Errorf("read back: %+v", l)
	}
	if l := lines["deprecated"][0]; !noErrors(l.Errors) || l.Configs["message.format.version"].Value != "0.10.0" || l.Configs["message.format.version"].Source != dynamic {
		t.Errorf("message.format.version: %+v", l)
	}
	g := lines["groups"][0]
	want := map[string][2]string{topic + "-never": {"Dead", ""}, topic + "-left": {"Empty", "consumer"}, topic + "-simple": {"Empty", ""}}
	for name, w := range want {
		d, described := g.Described[name]
		if !described && w[0] == "Dead" {
			// librdkafka's list_groups drops a group described as Dead
			// (it did list it when shale called it Empty).
			d.State = "Dead"
		}
		if d.State != w[0] || d.ProtocolType != w[1] {
			t.Errorf("describe %s: %+v, want state %s protocol type %q", name, d, w[0], w[1])
		}
		l, listed := g.Listed[name]
		if wantListed := w[0] != "Dead"; listed != wantListed || listed && (l.State != w[0] || l.ProtocolType != w[1]) {
			t.Errorf("list %s: listed %v as %+v, want listed %v", name, listed, l, wantListed)
		}
	}

	// Stored as the topic's codec: lz4.
	checkStoredCodec(t, c, 1, topic, 0, segment.CompressionLZ4)
}

// checkStoredCodec fetches a partition raw (Fetch v12) through agent i,
// from offset 0 to its high watermark, and fails unless every batch it
// holds is compressed with codec.
func checkStoredCodec(t *testing.T, c *cluster.Cluster, i int, topic string, partition int32, codec int8) {
	t.Helper()
	cl := c.Client(t, kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(cluster.DialTo(c.Addr(i))), kgo.MaxVersions(kversion.V2_8_0())) // Fetch v12: by name
	for next, hw := int64(0), int64(1); next < hw; {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.MaxWaitMillis, req.MaxBytes = 12, 100, 64<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = partition, next, 64<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(t.Context(), cl)
		if err != nil || len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("raw fetch %s/%d at %d: %v %+v", topic, partition, next, err, resp)
		}
		p := resp.Topics[0].Partitions[0]
		bs, err := segment.SplitBatches(p.RecordBatches, true)
		if err != nil || len(bs) == 0 && p.HighWatermark > next {
			t.Fatalf("stored batches of %s/%d at %d: %d, %v", topic, partition, next, len(bs), err)
		}
		for _, b := range bs {
			if b.Header.Compression() != codec {
				t.Fatalf("%s/%d: batch at %d stored with codec %d, want %d", topic, partition, b.Header.BaseOffset, b.Header.Compression(), codec)
			}
			next = max(next, b.Header.LastOffset()+1)
		}
		hw = p.HighWatermark
	}
}

// TestPythonCompactedTopicConfigs proves, with confluent-kafka on agent A
// and B: a topic created as Kafka Connect creates its offsets topic
// (cleanup.policy=compact with the compaction configs) is accepted; an
// idempotent producer's keyed record is acknowledged and its keyless one
// refused with INVALID_RECORD; the topic switches to compact,delete with
// AlterConfigs; a min.cleanable.dirty.ratio above 1 is INVALID_CONFIG; the
// configs are described through the other agent as set
// (DYNAMIC_TOPIC_CONFIG).
func TestPythonCompactedTopicConfigs(t *testing.T) {
	python, script := pythonScript(t, "compact_configs.py")
	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic = "connect-offsets"
	env := append(os.Environ(), "SHALE_PRODUCE_BOOTSTRAP="+c.Addr(0), "SHALE_CONSUME_BOOTSTRAP="+c.Addr(1), "SHALE_TOPIC="+topic)
	res := execTool(t, toolTimeout, nil, env, python, script)
	if res.err != nil {
		t.Fatalf("compact_configs.py: %v\nstderr:\n%.4096s", res.err, res.stderr)
	}
	lines := map[string]adminLine{}
	sc := bufio.NewScanner(bytes.NewReader(res.stdout))
	for sc.Scan() {
		var l adminLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("compact_configs.py printed %q: %v", sc.Text(), err)
		}
		lines[l.Kind] = l
	}
	if _, ok := lines["summary"]; !ok {
		t.Fatalf("compact_configs.py did not finish; stdout:\n%s\nstderr:\n%.4096s", res.stdout, res.stderr)
	}
	refused := func(kind, msg string) {
		t.Helper()
		var m map[string]*string
		if err := json.Unmarshal(lines[kind].Errors, &m); err != nil || len(m) != 1 {
			t.Fatalf("%s: errors %s", kind, lines[kind].Errors)
		}
		for _, e := range m {
			if e == nil || !strings.Contains(*e, "INVALID_CONFIG") || !strings.Contains(*e, msg) {
				t.Errorf("%s: %v, want INVALID_CONFIG mentioning %q", kind, e, msg)
			}
		}
	}
	refused("alter-ratio", "[0, 1]")
	for _, kind := range []string{"create-compact", "alter-compact-delete"} {
		if l := lines[kind]; !noErrors(l.Errors) {
			t.Errorf("%s: %s", kind, l.Errors)
		}
	}
	var produced map[string]*string
	if err := json.Unmarshal(lines["produce"].Errors, &produced); err != nil || len(produced) != 2 {
		t.Fatalf("produce: %s", lines["produce"].Errors)
	}
	if e := produced["keyed"]; e != nil {
		t.Errorf("keyed record refused: %s", *e)
	}
	if e := produced["keyless"]; e == nil || !strings.Contains(*e, "INVALID_RECORD") {
		t.Errorf("keyless record: %v, want INVALID_RECORD", e)
	}
	const dynamic = 1 // confluent_kafka ConfigSource.DYNAMIC_TOPIC_CONFIG
	want := map[string]string{"cleanup.policy": "compact,delete", "min.compaction.lag.ms": "1000", "max.compaction.lag.ms": "604800000",
		"delete.retention.ms": "3600000", "min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000",
		"segment.bytes": "104857600", "min.insync.replicas": "1"}
	got := lines["describe"].Configs
	for k, v := range want {
		if got[k].Value != v || got[k].Source != dynamic {
			t.Errorf("described %s = %+v, want %s from the topic", k, got[k], v)
		}
	}
}
