package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/metastore"
)

// describeFromEtcd is `topic describe` when no agent answered (agentErr):
// everything it shows is in etcd, offsets included (the partition states),
// so it needs only --etcd-endpoints. Configs are those set on the topic;
// the others have their defaults.
func describeFromEtcd(ctx context.Context, out io.Writer, v *viper.Viper, name string, agentErr error) error {
	meta, closeMeta, err := openMetaFlags(ctx, v)
	if err != nil {
		return fmt.Errorf("%w\nand etcd could not be read either: %v", agentErr, err)
	}
	defer closeMeta()
	t, err := meta.GetTopic(ctx, name)
	if errors.Is(err, metastore.ErrTopicNotFound) {
		return fmt.Errorf("topic %s not found in etcd (see `shale status`)", name)
	}
	if err != nil {
		return err
	}
	storage, err := scanStorage(ctx, meta, t)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "topic %s  id %s  partitions %d  (read from etcd: no agent answered)\n\n", name, kafkaTopicID(t.ID), t.Partitions)
	w := newTable(out, "PARTITION", "LOG START", "LOG END", "RECORDS", "BYTES", "OBJECTS", "INDEX ENTRIES")
	for p := range t.Partitions {
		ps := storage[p]
		w.row(p, ps.start, ps.next, ps.next-ps.start, HumanBytes(ps.bytes), ps.objects, ps.entries)
	}
	if err := w.flush(); err != nil {
		return err
	}
	fmt.Fprint(out, compressionLine(ctx, meta, t))
	fmt.Fprint(out, cleanerLines(ctx, meta, t, storage))
	fmt.Fprintln(out, "\nCONFIG (set on the topic; every other config has its default)")
	keys := make([]string, 0, len(t.Configs))
	for k := range t.Configs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w = newTable(out)
	for _, k := range keys {
		if agent.TopicConfigIgnored(k) {
			w.row(k, t.Configs[k], "(ignored on shale)")
		} else {
			w.row(k, t.Configs[k])
		}
	}
	return w.flush()
}

// compressionLine says what recompressing produced batches into the
// topic's compression.type saved, as the agents counted it (empty when
// they never recompressed a batch of it).
func compressionLine(ctx context.Context, meta *metastore.Store, t metastore.Topic) string {
	c, err := meta.GetCompressionStats(ctx, t.ID)
	if err != nil {
		return fmt.Sprintf("\n(bytes saved by compression.type left out: %v)\n", err)
	}
	if c.Produced == 0 {
		return ""
	}
	verdict := fmt.Sprintf("%s saved (%.1f%%)", HumanBytes(c.Saved()), 100*float64(c.Saved())/float64(c.Produced))
	if c.Saved() < 0 {
		verdict = fmt.Sprintf("%s more stored than produced", HumanBytes(-c.Saved()))
	}
	return fmt.Sprintf("\nrecompressed at produce into compression.type: %s as produced, %s stored, %s since the topic was created\n",
		HumanBytes(c.Produced), HumanBytes(c.Stored), verdict)
}

// cleanerLines shows, for a topic whose cleanup.policy includes compact,
// each partition's key-compaction state: the cleaner checkpoint (offsets
// below it were compacted at least once), the part of the log above it
// (dirty: offsets, bytes of the index entries reaching it, and their ratio
// to the partition's bytes, as min.cleanable.dirty.ratio counts it), when
// the last pass ran and the bytes it rewrote, before and after. Empty for
// other topics.
func cleanerLines(ctx context.Context, meta *metastore.Store, t metastore.Topic, storage map[int32]partitionStorage) string {
	if _, compacts := metastore.CleanupPolicyOf(t.Configs); !compacts {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nKEY COMPACTION\n")
	w := newTable(&b, "PARTITION", "CHECKPOINT", "DIRTY OFFSETS", "DIRTY BYTES", "DIRTY RATIO", "LAST PASS", "REWROTE (BEFORE -> AFTER)")
	for p := range t.Partitions {
		st, err := meta.GetCleanerState(ctx, t.ID, p)
		if err != nil {
			return fmt.Sprintf("\n(key compaction state left out: %v)\n", err)
		}
		var dirty, total int64
		if _, _, err := meta.ScanIndex(ctx, t.ID, p, func(e metastore.IndexEntry) bool {
			total += e.Bytes()
			if e.LastOffset >= st.Checkpoint {
				dirty += e.Bytes()
			}
			return true
		}); err != nil {
			return fmt.Sprintf("\n(key compaction state left out: %v)\n", err)
		}
		ratio := 0.0
		if total > 0 {
			ratio = float64(dirty) / float64(total)
		}
		last, rewrote := "never", "-"
		if n := len(st.Passes); n > 0 {
			last = time.UnixMilli(st.Passes[n-1].AtMs).UTC().Format(time.RFC3339)
			rewrote = HumanBytes(st.BytesBefore) + " -> " + HumanBytes(st.BytesAfter)
		}
		ps := storage[p]
		w.row(p, st.Checkpoint, max(0, ps.next-max(st.Checkpoint, ps.start)), HumanBytes(dirty), fmt.Sprintf("%.2f", ratio), last, rewrote)
	}
	_ = w.flush()
	return b.String()
}
