package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newConsumeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Print a topic's records",
		Long: `Print records of a topic, from a starting point, until the end of the log as it was when
the command started (or --count records, or forever with --follow).

--from takes: earliest (default), latest, an offset (applies to every partition), or an
RFC 3339 time such as 2026-11-25T10:00:00Z (the first record at or after it).`,
		Example: `  shale consume -t clicks
  shale consume -t clicks --from 2026-11-25T10:00:00Z -n 100 -o json
  shale consume -t clicks --from latest --follow`,
		Args: cobra.NoArgs,
	}
	addBootstrapFlag(cmd)
	f := cmd.Flags()
	f.StringP("topic", "t", "", "topic to read (required)")
	f.String("from", "earliest", "earliest, latest, an offset, or an RFC 3339 time")
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
		format := v.GetString("output")
		if format != "text" && format != "kv" && format != "json" {
			return fmt.Errorf("bad --output %q: use text, kv or json", format)
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
		cl, err := kafkaClient(v, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
		if err != nil {
			return err
		}
		defer cl.Close()
		out := bufio.NewWriter(cmd.OutOrStdout())
		defer out.Flush()
		count, limit := int64(0), v.GetInt64("count")
		for (follow || len(pending) > 0) && (limit == 0 || count < limit) {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return nil
			}
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
				}
				printRecord(out, format, r)
				count++
			})
			out.Flush()
		}
		return nil
	}
	return cmd
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
	t, perr := time.Parse(time.RFC3339Nano, from)
	if perr != nil {
		return nil, nil, fmt.Errorf("bad --from %q: use earliest, latest, an offset (e.g. 42) or an RFC 3339 time (e.g. 2026-11-25T10:00:00Z)", from)
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

type jsonRecord struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp string            `json:"timestamp"`
	Key       *string           `json:"key"`
	Value     *string           `json:"value"`
	Headers   map[string]string `json:"headers,omitempty"`
	Encoding  string            `json:"encoding,omitempty"`
}

// printRecord writes one record. JSON output keeps text as text and marks
// records with non-UTF-8 bytes as base64 ("encoding": "base64").
func printRecord(w *bufio.Writer, format string, r *kgo.Record) {
	switch format {
	case "text":
		w.Write(r.Value)
		w.WriteByte('\n')
	case "kv":
		w.Write(r.Key)
		w.WriteByte('\t')
		w.Write(r.Value)
		w.WriteByte('\n')
	case "json":
		bin := !utf8.Valid(r.Key) || !utf8.Valid(r.Value)
		enc := func(b []byte) *string {
			if b == nil {
				return nil
			}
			s := string(b)
			if bin {
				s = base64.StdEncoding.EncodeToString(b)
			}
			return &s
		}
		jr := jsonRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
			Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano), Key: enc(r.Key), Value: enc(r.Value)}
		if bin {
			jr.Encoding = "base64"
		}
		if len(r.Headers) > 0 {
			jr.Headers = map[string]string{}
			for _, h := range r.Headers {
				jr.Headers[h.Key] = string(h.Value)
			}
		}
		b, _ := json.Marshal(jr)
		w.Write(b)
		w.WriteByte('\n')
	}
}
