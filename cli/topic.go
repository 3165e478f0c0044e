package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/metastore"
)

func newTopicCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, alter and delete topics",
		Long: `Manage topics through any agent (the Kafka admin protocol).

Configs shale honours: retention.ms and retention.bytes (-1 keeps forever),
max.message.bytes, message.timestamp.type, compression.type, and shale's own shale.flush.ms
(a flush interval for this topic alone, in ms: lower acks=all latency for one PUT per interval).
cleanup.policy=compact keeps the latest record per key (min.compaction.lag.ms, max.compaction.lag.ms,
delete.retention.ms, min.cleanable.dirty.ratio, segment.ms and segment.bytes tune it) and refuses
keyless records. Other Kafka topic configs (flush.messages, min.insync.replicas...) are
accepted so that tools which set them keep working, but have no effect: shale sizes its own
objects and acknowledged records are already durable in the bucket. 'topic describe' marks them.`,
	}
	cmd.AddCommand(topicCreateCmd(), topicListCmd(), topicDescribeCmd(), topicAlterCmd(), topicDeleteCmd())
	return cmd
}

func parseConfigs(kvs []string) (map[string]*string, error) {
	out := make(map[string]*string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("bad config %q: use key=value, e.g. retention.ms=-1", kv)
		}
		out[k] = &v
	}
	return out, nil
}

func topicCreateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a topic",
		Example: "  shale topic create clicks --partitions 12 --config retention.ms=-1",
		Args:    exactArgs(1),
	}
	addBootstrapFlag(cmd)
	cmd.Flags().Int32P("partitions", "p", 1, "number of partitions")
	cmd.Flags().StringArrayP("config", "c", nil, "topic config key=value (repeatable)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		cfgs, err := parseConfigs(v.GetStringSlice("config"))
		if err != nil {
			return err
		}
		adm, done, err := adminClient(cmd.Context(), v)
		if err != nil {
			return err
		}
		defer done()
		resp, err := adm.CreateTopic(cmd.Context(), v.GetInt32("partitions"), -1, cfgs, args[0])
		if resp.Err != nil { // kadm returns resp.Err as err too
			err = withMessage(resp.Err, resp.ErrMessage)
		}
		if err != nil {
			return fmt.Errorf("create topic %s: %w", args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "created topic %s with %s\n", args[0], plural(int64(resp.NumPartitions), "partition"))
		return nil
	}
	return cmd
}

func topicListCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List topics", Args: cobra.NoArgs}
	addBootstrapFlag(cmd)
	cmd.RunE = adminRun(func(cmd *cobra.Command, adm *kadm.Client, _ []string) error {
		tds, err := adm.ListTopics(cmd.Context())
		if err != nil {
			return fmt.Errorf("list topics: %w", err)
		}
		t := newTable(cmd.OutOrStdout(), "TOPIC", "PARTITIONS", "ID")
		for _, td := range tds.Sorted() {
			t.row(td.Topic, len(td.Partitions), kafkaTopicID(td.ID))
		}
		return t.flush()
	})
	return cmd
}

func topicDescribeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "describe NAME", Short: "Show a topic's partitions, offsets, storage and configs", Args: exactArgs(1),
		Long: `Show a topic's partitions with their log start and end offsets (through the Kafka API),
their storage (read from etcd: record bytes stored, index entries, and distinct objects
referenced; an object shared by several partitions counts in each), the bytes saved by
recompressing produced batches into the topic's compression.type (counted by the agents since
the topic was created, including data retention has since deleted), for a compacted topic each
partition's key-compaction checkpoint, and its configs.
Storage columns need etcd (--etcd-endpoints, default the dev agent's embedded etcd); when it
is unreachable they are left out with a note. When no agent answers, the topic is described from
etcd alone (offsets, storage, and the configs set on the topic), so it works with every agent
stopped.`}
	addBootstrapFlag(cmd)
	addEtcdReadFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		adm, done, err := adminClient(cmd.Context(), v)
		if err != nil {
			return describeFromEtcd(cmd.Context(), cmd.OutOrStdout(), v, args[0], err)
		}
		defer done()
		ctx, name := cmd.Context(), args[0]
		tds, err := adm.ListTopics(ctx, name)
		if err != nil {
			return fmt.Errorf("describe %s: %w", name, err)
		}
		td, ok := tds[name]
		if !ok || td.Err != nil {
			return fmt.Errorf("topic %s: %v (see `shale topic list`)", name, td.Err)
		}
		starts, err := adm.ListStartOffsets(ctx, name)
		if err != nil {
			return fmt.Errorf("start offsets of %s: %w", name, err)
		}
		ends, err := adm.ListEndOffsets(ctx, name)
		if err != nil {
			return fmt.Errorf("end offsets of %s: %w", name, err)
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "topic %s  id %s  partitions %d\n\n", name, kafkaTopicID(td.ID), len(td.Partitions))
		storage, saved, serr := topicStorage(ctx, v, name)
		header := []string{"PARTITION", "LOG START", "LOG END", "RECORDS"}
		if serr == nil {
			header = append(header, "BYTES", "OBJECTS", "INDEX ENTRIES")
		}
		w := newTable(out, header...)
		for _, p := range td.Partitions.Sorted() {
			s, _ := starts.Lookup(name, p.Partition)
			e, _ := ends.Lookup(name, p.Partition)
			if serr == nil {
				ps := storage[p.Partition]
				w.row(p.Partition, s.Offset, e.Offset, e.Offset-s.Offset, HumanBytes(ps.bytes), ps.objects, ps.entries)
			} else {
				w.row(p.Partition, s.Offset, e.Offset, e.Offset-s.Offset)
			}
		}
		if serr != nil {
			defer fmt.Fprintf(out, "\n(storage columns left out: %v)\n", serr)
		}
		if err := w.flush(); err != nil {
			return err
		}
		fmt.Fprint(out, saved)
		rcs, err := adm.DescribeTopicConfigs(ctx, name)
		if err != nil {
			return fmt.Errorf("configs of %s: %w", name, err)
		}
		rc, err := rcs.On(name, nil)
		if err == nil && rc.Err == nil && len(rc.Configs) > 0 {
			return printTopicConfigs(out, rc.Configs)
		}
		return nil
	}
	return cmd
}

func topicAlterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "alter NAME",
		Short:   "Change a topic's configs or add partitions",
		Example: "  shale topic alter clicks --config retention.ms=604800000 --partitions 24",
		Args:    exactArgs(1),
	}
	addBootstrapFlag(cmd)
	cmd.Flags().StringArrayP("config", "c", nil, "set config key=value (repeatable)")
	cmd.Flags().StringArray("delete-config", nil, "reset config key to its default (repeatable)")
	cmd.Flags().Int32P("partitions", "p", 0, "grow the topic to this many partitions")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		cfgs, err := parseConfigs(v.GetStringSlice("config"))
		if err != nil {
			return err
		}
		dels := v.GetStringSlice("delete-config")
		parts := v.GetInt32("partitions")
		if len(cfgs) == 0 && len(dels) == 0 && parts == 0 {
			return fmt.Errorf("nothing to change: pass --config key=value, --delete-config key or --partitions N")
		}
		adm, done, err := adminClient(cmd.Context(), v)
		if err != nil {
			return err
		}
		defer done()
		ctx, name := cmd.Context(), args[0]
		var alters []kadm.AlterConfig
		for k, val := range cfgs {
			alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: val})
		}
		for _, k := range dels {
			alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
		}
		if len(alters) > 0 {
			rs, err := adm.AlterTopicConfigs(ctx, alters, name)
			if err == nil {
				var r kadm.AlterConfigsResponse
				if r, err = rs.On(name, nil); err == nil {
					err = withMessage(r.Err, r.ErrMessage)
				}
			}
			if err != nil {
				return fmt.Errorf("alter configs of %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "altered %s of %s\n", plural(int64(len(alters)), "config"), name)
		}
		if parts > 0 {
			rs, err := adm.UpdatePartitions(ctx, int(parts), name)
			if err == nil {
				var r kadm.CreatePartitionsResponse
				if r, err = rs.On(name, nil); err == nil {
					err = withMessage(r.Err, r.ErrMessage)
				}
			}
			if err != nil {
				return fmt.Errorf("grow %s to %d partitions: %w", name, parts, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s now has %s\n", name, plural(int64(parts), "partition"))
		}
		return nil
	}
	return cmd
}

func topicDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete topics (their data becomes garbage and is collected)",
		Args:  minArgs(1),
	}
	addBootstrapFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		adm, done, err := cmdAdmin(cmd)
		if err != nil {
			return err
		}
		defer done()
		rs, err := adm.DeleteTopics(cmd.Context(), args...)
		if err != nil {
			return fmt.Errorf("delete topics: %w", err)
		}
		var failed []string
		for _, r := range rs.Sorted() {
			if r.Err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", r.Topic, withMessage(r.Err, r.ErrMessage)))
				continue
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s\n", r.Topic)
		}
		if failed != nil {
			return fmt.Errorf("%s", strings.Join(failed, "; "))
		}
		return nil
	}
	return cmd
}

// partitionStorage is what one partition keeps in the bucket, from its index.
type partitionStorage struct {
	bytes   int64 // record batch bytes its index entries cover
	objects int   // distinct objects its entries point into
	entries int   // index entries (etcd keys)
	start   int64 // log start offset
	next    int64 // next offset (log end)
	oldest  int64 // first timestamp of the oldest entry, -1 if none
}

// topicStorage reads the index of every partition of the topic from etcd.
func topicStorage(ctx context.Context, v *viper.Viper, name string) (map[int32]partitionStorage, string, error) {
	meta, closeMeta, err := openMetaFlags(ctx, v)
	if err != nil {
		return nil, "", err
	}
	defer closeMeta()
	t, err := meta.GetTopic(ctx, name)
	if err != nil {
		return nil, "", err
	}
	storage, err := scanStorage(ctx, meta, t)
	if err != nil {
		return nil, "", err
	}
	return storage, compressionLine(ctx, meta, t) + cleanerLines(ctx, meta, t, storage), nil
}

// scanStorage reads every partition's state and index entries.
func scanStorage(ctx context.Context, meta *metastore.Store, t metastore.Topic) (map[int32]partitionStorage, error) {
	out := make(map[int32]partitionStorage, t.Partitions)
	for p := int32(0); p < t.Partitions; p++ {
		ps := partitionStorage{oldest: -1}
		objs := make(map[string]bool)
		st, _, err := meta.ScanIndex(ctx, t.ID, p, func(e metastore.IndexEntry) bool {
			if ps.entries == 0 {
				ps.oldest = e.FirstTimestamp
			}
			ps.entries++
			ps.bytes += e.Bytes()
			objs[e.ObjectKey] = true
			return true
		})
		if err != nil {
			return nil, err
		}
		ps.objects = len(objs)
		ps.start, ps.next = st.LogStartOffset, st.NextOffset
		out[p] = ps
	}
	return out, nil
}

// kafkaTopicID formats a topic ID as Kafka's tools do (Uuid.toString): URL-safe
// base64 without padding, e.g. "x3OGZ6UxT9-4tWmvZ2h6dA".
func kafkaTopicID(id [16]byte) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// printTopicConfigs lists the configs shale applies, then those the topic
// sets that shale accepts but ignores (marked so), and counts the ignored
// ones left at their Kafka default rather than listing values that mislead
// (min.insync.replicas, flush.messages...).
func printTopicConfigs(out io.Writer, cs []kadm.Config) error {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Key < cs[j].Key })
	fmt.Fprintln(out, "\nCONFIG")
	w := newTable(out)
	ignoredDefaults := 0
	for _, c := range cs {
		src := strings.ToLower(c.Source.String())
		switch {
		case !agent.TopicConfigIgnored(c.Key):
			w.row(c.Key, c.MaybeValue(), "("+src+")")
		case c.Source == kmsg.ConfigSourceDynamicTopicConfig:
			w.row(c.Key, c.MaybeValue(), "("+src+"; ignored on shale)")
		default:
			ignoredDefaults++
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	if ignoredDefaults > 0 {
		fmt.Fprintf(out, "(%d other Kafka configs are accepted for compatibility but have no effect on shale; see `shale topic --help`)\n", ignoredDefaults)
	}
	return nil
}
