package agent_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
)

// TestIcebergModeConfig proves shale.iceberg.mode is validated by
// CreateTopics, IncrementalAlterConfigs and AlterConfigs (disabled,
// key_value and json accepted; anything else INVALID_CONFIG) and shown
// by DescribeConfigs: its default as DEFAULT_CONFIG, a value set as
// DYNAMIC_TOPIC_CONFIG; and shale.iceberg.partition likewise (day, the
// default, or hour), and shale.iceberg.target.file.bytes (at least 1024).
func TestIcebergModeConfig(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	const name = "shale.iceberg.mode"
	for _, bad := range []string{"JSON", "parquet", ""} {
		r, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{name: kmsg.StringPtr(bad)}, "ice-bad")
		if err == nil {
			err = r.Err
		}
		if !errors.Is(err, kerr.InvalidConfig) {
			t.Fatalf("create with %s=%q: %v, want INVALID_CONFIG", name, bad, err)
		}
	}
	if r, err := adm.CreateTopic(ctx, 1, -1, nil, "ice"); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	describe := func() (string, kmsg.ConfigSource) {
		rcs, err := adm.DescribeTopicConfigs(ctx, "ice")
		if err != nil {
			t.Fatal(err)
		}
		return configValue(t, rcs, name)
	}
	if v, src := describe(); v != "disabled" || src != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("default %s = %q (%v), want disabled (DEFAULT_CONFIG)", name, v, src)
	}
	set := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: name, Value: kmsg.StringPtr("key_value")}}
	if ar, err := adm.AlterTopicConfigs(ctx, set, "ice"); err != nil || ar[0].Err != nil {
		t.Fatalf("incremental alter: %v %v", err, ar)
	}
	if v, src := describe(); v != "key_value" || src != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("%s = %q (%v), want key_value (DYNAMIC_TOPIC_CONFIG)", name, v, src)
	}
	bad := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: name, Value: kmsg.StringPtr("parquet")}}
	if ar, err := adm.AlterTopicConfigs(ctx, bad, "ice"); err != nil || !errors.Is(ar[0].Err, kerr.InvalidConfig) {
		t.Fatalf("incremental alter to parquet: %v %v, want INVALID_CONFIG", err, ar)
	}
	if ar, err := adm.AlterTopicConfigsState(ctx, bad, "ice"); err != nil || !errors.Is(ar[0].Err, kerr.InvalidConfig) {
		t.Fatalf("alter (full state) to parquet: %v %v, want INVALID_CONFIG", err, ar)
	}
	if v, _ := describe(); v != "key_value" {
		t.Fatalf("after refused alters %s = %q, want key_value", name, v)
	}
	js := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: name, Value: kmsg.StringPtr("json")}}
	if ar, err := adm.AlterTopicConfigs(ctx, js, "ice"); err != nil || ar[0].Err != nil {
		t.Fatalf("incremental alter to json: %v %v", err, ar)
	}
	if v, _ := describe(); v != "json" {
		t.Fatalf("%s = %q, want json", name, v)
	}

	// shale.iceberg.partition: day (the default) or hour.
	const part = "shale.iceberg.partition"
	r, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{part: kmsg.StringPtr("minute")}, "ice-bad")
	if err == nil {
		err = r.Err
	}
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("create with %s=minute: %v, want INVALID_CONFIG", part, err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "ice")
	if err != nil {
		t.Fatal(err)
	}
	if v, src := configValue(t, rcs, part); v != "day" || src != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("default %s = %q (%v), want day (DEFAULT_CONFIG)", part, v, src)
	}
	hour := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: part, Value: kmsg.StringPtr("hour")}}
	if ar, err := adm.AlterTopicConfigs(ctx, hour, "ice"); err != nil || ar[0].Err != nil {
		t.Fatalf("alter %s to hour: %v %v", part, err, ar)
	}
	week := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: part, Value: kmsg.StringPtr("week")}}
	if ar, err := adm.AlterTopicConfigs(ctx, week, "ice"); err != nil || !errors.Is(ar[0].Err, kerr.InvalidConfig) {
		t.Fatalf("alter %s to week: %v %v, want INVALID_CONFIG", part, err, ar)
	}

	// shale.iceberg.target.file.bytes: at least 1024.
	const target = "shale.iceberg.target.file.bytes"
	for v, ok := range map[string]bool{"1023": false, "x": false, "1024": true, "268435456": true} {
		set := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: target, Value: kmsg.StringPtr(v)}}
		ar, err := adm.AlterTopicConfigs(ctx, set, "ice")
		if err != nil || ok != (ar[0].Err == nil) || !ok && !errors.Is(ar[0].Err, kerr.InvalidConfig) {
			t.Fatalf("alter %s to %s: %v %v, want ok=%v (else INVALID_CONFIG)", target, v, err, ar, ok)
		}
	}
}
