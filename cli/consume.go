package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/term"

	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/segment"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newConsumeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Print a topic's records",
		Long: `Print records of a topic, from a starting point, until the end of the log as it was when
the command started (or --count records, or forever with --follow). Without --follow, no record
for --timeout while records remain is an error (a stalled agent), not an endless wait.

--from takes: earliest (default), latest, an offset (applies to every partition), or an
RFC 3339 time such as 2026-11-25T10:00:00Z or a date such as 2026-11-25 (midnight UTC):
the first record at or after it.

-o json prints one JSON object per line, the shape 'shale replay' writes:
  {"topic":"clicks","partition":0,"offset":42,"timestamp":<Unix ms>,"key":"k","value":"v",
   "headers":[{"key":"h","value":"x"}]}
null key or value is null; "encoding":"base64" marks a record whose bytes are not UTF-8.
On a terminal, text and kv output quote keys and values holding control bytes.`,
		Example: `  shale consume -t clicks
  shale consume -t clicks --from 2026-11-25T10:00:00Z -n 100 -o json
  shale consume -t clicks --from latest --follow`,
		Args: cobra.NoArgs,
	}
	addBootstrapFlag(cmd)
	f := cmd.Flags()
	f.StringP("topic", "t", "", "topic to read (required)")
	f.String("from", "earliest", "earliest, latest, an offset, an RFC 3339 time or a date")
	f.Int64P("count", "n", 0, "stop after this many records (0: no limit)")
	f.StringSliceP("partitions", "p", nil, "only these partitions, comma-separated (default: all)")
	f.StringP("output", "o", "text", "text (value per line), kv (key<TAB>value) or json")
	f.Bool("follow", false, "keep waiting for new records")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		topic := v.GetString("topic")
		if topic == "" {
			return fmt.Errorf("--topic is required")
		}
		format, err := outputFlag(v, "text", "kv", "json")
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		adm, done, err := adminClient(ctx, v)
		if err != nil {
			return err
		}
		defer done()
		starts, ends, err := startOffsets(ctx, adm, topic, v.GetString("from"))
		if err != nil {
			return err
		}
		want := map[int32]bool{}
		for _, p := range splitList(v.GetStringSlice("partitions")) {
			n, err := strconv.ParseInt(p, 10, 32)
			if err != nil {
				return fmt.Errorf("bad partition %q", p)
			}
			want[int32(n)] = true
		}
		follow := v.GetBool("follow")
		parts := map[int32]kgo.Offset{}
		pending := map[int32]bool{} // partitions still short of their end
		for p, s := range starts {
			if len(want) > 0 && !want[p] {
				continue
			}
			parts[p] = kgo.NewOffset().At(s)
			if s < ends[p] {
				pending[p] = true
			}
		}
		if len(parts) == 0 {
			return fmt.Errorf("topic %s has none of the partitions asked for", topic)
		}
		if !follow && len(pending) == 0 {
			return nil
		}
		opts := []kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts})}
		if !follow {
			// Closing waits out a fetch in flight: at the end of a log
			// ending in batches without records, a long one.
			opts = append(opts, kgo.FetchMaxWait(tailCheck))
		}
		cl, err := kafkaClient(v, opts...)
		if err != nil {
			return err
		}
		defer cl.Close()
		out := bufio.NewWriter(cmd.OutOrStdout())
		tty := isTerminal(cmd.OutOrStdout())
		defer out.Flush()
		count, limit := int64(0), v.GetInt64("count")
		timeout := v.GetDuration("timeout")
		// next is, per pending partition, the offset after the last record
		// printed: a log may end in batches without records (transaction
		// markers, batches emptied by key compaction), which no record
		// reaches; tailDone looks there when the records stop.
		var topicID [16]byte
		if td, err := adm.ListTopics(ctx, topic); err == nil {
			topicID = td[topic].ID
		}
		next := map[int32]int64{}
		for p := range pending {
			next[p] = parts[p].EpochOffset().Offset
		}
		progress := time.Now()
		for (follow || len(pending) > 0) && (limit == 0 || count < limit) {
			// Reading to the end must progress: no record for --timeout
			// while records remain is an error, not a wait for ever.
			pctx, cancel := ctx, context.CancelFunc(func() {})
			if !follow && timeout > 0 {
				pctx, cancel = context.WithTimeout(ctx, min(timeout, tailCheck))
			}
			fs := cl.PollFetches(pctx)
			idle := pctx.Err() != nil && ctx.Err() == nil
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			if idle {
				for p := range pending {
					if tailDone(ctx, cl, topic, topicID, p, next[p], ends[p]) {
						delete(pending, p)
						progress = time.Now()
					}
				}
				if len(pending) > 0 && time.Since(progress) >= timeout {
					return fmt.Errorf("no record for --timeout %s while %s still short of their end: is the agent stalled?", timeout, plural(int64(len(pending)), "partition"))
				}
				continue
			}
			progress = time.Now()
			var ferr error
			fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("%s/%d: %w", t, p, err) })
			if ferr != nil {
				return ferr
			}
			fs.EachRecord(func(r *kgo.Record) {
				if limit > 0 && count >= limit {
					return
				}
				if !follow {
					if r.Offset >= ends[r.Partition] {
						return
					}
					if r.Offset+1 >= ends[r.Partition] {
						delete(pending, r.Partition)
					}
					next[r.Partition] = r.Offset + 1
				}
				printRecord(out, format, r, tty)
				count++
			})
			out.Flush()
		}
		return nil
	}
	return cmd
}

// tailCheck is how long consume waits for records before it checks
// whether what remains of a partition holds any (tailDone).
const tailCheck = 500 * time.Millisecond

// tailDone reports whether partition p of topic holds no record between
// from and end: only batches without records (transaction markers, batches
// emptied by key compaction) or records below from. It fetches from from
// (read uncommitted) and walks the batches; an error or a fetch that stops
// short of end says no.
func tailDone(ctx context.Context, cl *kgo.Client, topic string, id [16]byte, p int32, from, end int64) bool {
	for from < end {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MaxBytes = 0, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, id // by name up to v12, by ID from v13
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = p, from, 1<<20, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			return false
		}
		data := resp.Topics[0].Partitions[0].RecordBatches
		advanced := false
		for len(data) >= segment.BatchHeaderSize {
			h, err := segment.ParseBatchHeader(data)
			if err != nil || int(h.Length) > len(data) {
				break
			}
			raw := data[:h.Length]
			data = data[h.Length:]
			if h.LastOffset() < from {
				continue
			}
			if h.RecordCount > 0 && !h.IsControl() {
				recs, err := segment.RecordTimestamps(raw)
				if err != nil {
					return false
				}
				for _, r := range recs {
					if h.BaseOffset+int64(r.OffsetDelta) >= from {
						return false // a record at or after from
					}
				}
			}
			from, advanced = h.LastOffset()+1, true
		}
		if !advanced {
			return false
		}
	}
	return true
}

// startOffsets resolves --from to an offset per partition, with each
// partition's end offset at this moment.
func startOffsets(ctx context.Context, adm *kadm.Client, topic, from string) (starts, ends map[int32]int64, err error) {
	collect := func(l kadm.ListedOffsets, err error) (map[int32]int64, error) {
		if err != nil {
			return nil, fmt.Errorf("offsets of %s: %w", topic, err)
		}
		out := map[int32]int64{}
		var perr error
		l.Each(func(o kadm.ListedOffset) {
			if o.Err != nil {
				perr = fmt.Errorf("topic %s: %w (see `shale topic list`)", topic, o.Err)
			}
			out[o.Partition] = o.Offset
		})
		if len(out) == 0 && perr == nil {
			perr = fmt.Errorf("topic %s not found (see `shale topic list`)", topic)
		}
		return out, perr
	}
	if ends, err = collect(adm.ListEndOffsets(ctx, topic)); err != nil {
		return nil, nil, err
	}
	earliest, err := collect(adm.ListStartOffsets(ctx, topic))
	if err != nil {
		return nil, nil, err
	}
	switch from {
	case "earliest", "beginning", "start", "":
		return earliest, ends, nil
	case "latest", "end":
		return ends, ends, nil
	}
	if n, perr := strconv.ParseInt(from, 10, 64); perr == nil && n >= 0 {
		starts = map[int32]int64{}
		for p, s := range earliest {
			starts[p] = min(max(n, s), ends[p])
		}
		return starts, ends, nil
	}
	t, perr := replay.ParseTime(from)
	if perr != nil {
		return nil, nil, fmt.Errorf("bad --from %q: use earliest, latest, an offset (e.g. 42), an RFC 3339 time (e.g. 2026-11-25T10:00:00Z) or a date (2026-11-25, midnight UTC)", from)
	}
	byTime, err := collect(adm.ListOffsetsAfterMilli(ctx, t.UnixMilli(), topic))
	if err != nil {
		return nil, nil, err
	}
	for p, o := range byTime {
		if o < 0 { // no record at or after t
			byTime[p] = ends[p]
		}
	}
	return byTime, ends, nil
}

// printRecord writes one record. JSON is replay's JSONL shape (one shape for
// both commands; see replay.JSONL): text stays text, and a record with
// non-UTF-8 key or value is written in base64 with "encoding":"base64".
// On a terminal (tty), text and kv output quote a key or value holding
// bytes a terminal would interpret (control characters, invalid UTF-8), Go
// style; piped output stays byte for byte.
func printRecord(w *bufio.Writer, format string, r *kgo.Record, tty bool) {
	switch format {
	case "text":
		writeBytes(w, r.Value, tty)
		w.WriteByte('\n')
	case "kv":
		writeBytes(w, r.Key, tty)
		w.WriteByte('\t')
		writeBytes(w, r.Value, tty)
		w.WriteByte('\n')
	case "json":
		rr := replay.Record{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			rr.Headers = append(rr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		w.Write(replay.AppendJSONL(nil, r.Topic, &rr, replay.BytesUTF8))
	}
}

func writeBytes(w *bufio.Writer, b []byte, tty bool) {
	if tty && !printable(b) {
		w.WriteString(strconv.Quote(string(b)))
		return
	}
	w.Write(b)
}

// printable reports whether b is valid UTF-8 without control characters
// (a tab is allowed).
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if (r < 0x20 && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}
