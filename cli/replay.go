package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"golang.org/x/term"

	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/s3tier"
)

// replayMemoryLimit is the soft Go heap limit of `shale replay` (unless
// GOMEMLIMIT is set): above the default read-ahead plus a Parquet row
// group per partition decoded at once.
const replayMemoryLimit = 160 << 20

func newReplayCmd() *cobra.Command {
	readAhead := ByteSize(replay.DefaultReadAhead)
	fileBytes := ByteSize(replay.DefaultParquetFileBytes)
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Read a topic's history straight from etcd and the bucket (no agent needed)",
		Long: `Read a topic's records from the bucket, using the offset index in etcd, and write them as
JSONL, Parquet or raw Kafka record batches. No agent needs to run, and nothing is written to
etcd or the bucket (both are opened read-only).

Range: --from is inclusive, --to exclusive. Each is an offset (applies to every partition), an
RFC 3339 time (2026-11-25T10:00:00Z) or a date (2026-11-25, midnight UTC), a time being compared
with each record's own timestamp. Default: from the
log start to the end of each partition as it is when the replay starts. Time bounds are exact
per record, even when a batch's timestamps are out of order; a --to time makes the replay read
to the end of each partition, since a later batch may still hold older timestamps.
--from after --to is an error; --from equal to --to is an empty range.

Formats:
  jsonl    one object per line, the shape of 'shale consume -o json': {"topic":"clicks",
           "partition":0,"offset":42,"timestamp":<Unix ms>,"key":..,"value":..,
           "headers":[{"key":"h","value":".."}]}; --bytes says how key and value
           bytes are written (utf8: text, or base64 with "encoding":"base64" when not UTF-8;
           base64; json: valid JSON nested as is, anything else as with utf8). Null is null.
  parquet  one file per partition, rolled at --parquet-file-bytes: <topic>-<p>-<n>.parquet,
           columns partition int32, offset int64, timestamp TIMESTAMP(MILLIS), key and value
           optional binary, headers list<struct<key string, value optional binary>>. Needs --out DIR.
  raw      record batches as stored, with absolute offsets (a Kafka log's byte layout): every
           batch holding a record in the range, whole. To stdout only for one partition.
  iceberg  a one-off Apache Iceberg table whose location is --out (a new directory or
           s3://bucket/prefix, on the --s3-endpoint of the source bucket): metadata/ and data/,
           opened by path (metadata/version-hint.text). Schema and partitioning of a table the
           iceberg job materializes (icetable/doc.go): --iceberg-mode key_value or json and
           --iceberg-partition day or hour, by default the topic's shale.iceberg.mode (key_value
           when disabled) and shale.iceberg.partition. Committed records only (no aborted
           transaction's). A location that already holds a table is refused. Not maintained
           afterwards: for a live table set shale.iceberg.mode on the topic.

--out DIR writes <topic>-<p>.jsonl / .kafka / -<n>.parquet per partition (partitions with no
record in the range get no file); --out - (default) writes to stdout, partitions interleaved
batch by batch, each in offset order. A progress bar goes to stderr when it is a terminal.

Memory: at most --parallel ranged GETs in flight and --read-ahead bytes fetched ahead of decoding;
the Go heap is soft-limited to 160MiB unless GOMEMLIMIT is set.`,
		Example: `  shale replay -t clicks --from 2026-11-25T00:00:00Z --to 2026-11-26T00:00:00Z > day.jsonl
  shale replay -t clicks --format parquet --out ./clicks --parallel 8 \
    --etcd-endpoints etcd:2379 --bucket s3://shale/prod --s3-endpoint http://minio:9000
  shale replay -t clicks -p 3 --from 1000 --to 2000 --format raw > p3.kafka
  shale replay -t clicks --from 2026-11-25 --format iceberg --iceberg-mode json --out s3://lake/clicks-2026-11-25`,
		Args: cobra.NoArgs,
	}
	addConfigFileFlag(cmd)
	f := cmd.Flags()
	f.StringP("topic", "t", "", "topic to replay (required)")
	f.StringSliceP("partitions", "p", nil, "only these partitions, comma-separated (default: all)")
	f.String("from", "", "first offset or RFC 3339 time, inclusive (default: log start)")
	f.String("to", "", "offset or RFC 3339 time to stop before, exclusive (default: end)")
	f.String("format", "jsonl", "jsonl, parquet, raw or iceberg")
	f.String("iceberg-mode", "", "--format iceberg: key_value or json (default: the topic's shale.iceberg.mode, key_value when disabled)")
	f.String("iceberg-partition", "", "--format iceberg: day or hour (default: the topic's shale.iceberg.partition)")
	f.StringP("out", "o", "-", "output directory, or - for stdout")
	f.String("bytes", "utf8", "jsonl key/value bytes: utf8, base64 or json")
	f.Int("parallel", replay.DefaultParallel, "ranged GETs in flight and partitions decoded at once")
	f.Var(&readAhead, "read-ahead", "bytes fetched ahead of decoding, across partitions")
	f.Var(&fileBytes, "parquet-file-bytes", "start a new Parquet file once one reaches this size")
	f.Bool("quiet", false, "no progress bar even on a terminal")
	addEtcdReadFlags(cmd)
	addS3Flags(cmd, "object store: s3://bucket/prefix, or a local directory (default: the bucket the cluster recorded in etcd)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		opts := replay.Options{Topic: v.GetString("topic"), Parallel: v.GetInt("parallel")}
		if opts.Topic == "" {
			return errors.New("--topic is required")
		}
		if opts.From, err = replay.ParseBound(v.GetString("from")); err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		if opts.To, err = replay.ParseBound(v.GetString("to")); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		for _, p := range splitList(v.GetStringSlice("partitions")) {
			n, err := strconv.ParseInt(p, 10, 32)
			if err != nil || n < 0 {
				return fmt.Errorf("bad partition %q", p)
			}
			opts.Partitions = append(opts.Partitions, int32(n))
		}
		ra, err := ParseByteSize(v.GetString("read-ahead"))
		if err != nil {
			return fmt.Errorf("--read-ahead: %w", err)
		}
		opts.ReadAhead = int64(ra)
		fb, err := ParseByteSize(v.GetString("parquet-file-bytes"))
		if err != nil {
			return fmt.Errorf("--parquet-file-bytes: %w", err)
		}
		enc, err := replay.ParseBytesEncoding(v.GetString("bytes"))
		if err != nil {
			return err
		}
		format, out := v.GetString("format"), v.GetString("out")
		toStdout := out == "-" || out == ""
		switch format {
		case "jsonl", "raw":
		case "parquet", "iceberg":
			if toStdout {
				return fmt.Errorf("--format %s needs --out DIR", format)
			}
		default:
			return fmt.Errorf("bad --format %q: use jsonl, parquet, raw or iceberg", format)
		}
		if os.Getenv("GOMEMLIMIT") == "" {
			// A soft heap limit keeps the peak RSS near the read-ahead and
			// writer buffers instead of twice the live heap (GOGC=100).
			debug.SetMemoryLimit(replayMemoryLimit)
		}
		ctx := cmd.Context()
		meta, so, closeMeta, err := openReadOnly(ctx, v) // replay never writes to etcd
		if err != nil {
			return err
		}
		defer closeMeta()
		if b := so.Bucket; !strings.HasPrefix(b, "s3://") {
			if st, err := os.Stat(strings.TrimPrefix(b, "file://")); err != nil || !st.IsDir() {
				return fmt.Errorf("bucket directory %s: not found", b)
			}
		}
		store, err := OpenStore(ctx, so)
		if err != nil {
			return err
		}
		store = replay.ReadOnlyStore(store) // nor to the bucket

		plan, err := replay.NewPlan(ctx, meta, opts)
		if err != nil {
			return err
		}
		if format == "raw" && toStdout {
			n := 0
			for _, pp := range plan.Partitions {
				if pp.Start < pp.End {
					n++
				}
			}
			if n > 1 {
				return errors.New("--format raw to stdout needs one partition (--partitions N) or --out DIR: batches carry no partition")
			}
		}
		if format == "iceberg" {
			return replayIceberg(cmd, v, meta, store, so, plan, out)
		}
		o := replay.Output{Stream: cmd.OutOrStdout()}
		if !toStdout {
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("create --out %s: %w", out, err)
			}
			o = replay.Output{Dir: out}
		}
		var sink replay.Sink
		switch format {
		case "jsonl":
			sink = replay.JSONL(o, plan.Topic.Name, enc)
		case "raw":
			sink = replay.Raw(o, plan.Topic.Name)
		case "parquet":
			sink = replay.Parquet(out, plan.Topic.Name, int64(fb))
		}
		var stats replay.Stats
		if ef, ok := cmd.ErrOrStderr().(*os.File); ok && !v.GetBool("quiet") && term.IsTerminal(int(ef.Fd())) {
			stop := replay.StartProgress(ef, &stats, plan.TotalBytes, 250*time.Millisecond)
			defer stop()
		}
		if err := plan.Run(ctx, meta, store, sink, &stats); err != nil {
			return err
		}
		return sink.Close()
	}
	return cmd
}

// replayIceberg writes plan's records as a one-off Iceberg table at out.
func replayIceberg(cmd *cobra.Command, v *viper.Viper, meta *metastore.Store, src s3tier.Store, so StackOptions, plan *replay.Plan, out string) error {
	ctx := cmd.Context()
	opts := icetable.ExportOptions{Mode: icetable.Mode(v.GetString("iceberg-mode")), Partition: v.GetString("iceberg-partition")}
	if opts.Mode == "" {
		opts.Mode = icetable.ModeOf(plan.Topic.Configs)
		if opts.Mode == icetable.ModeDisabled {
			opts.Mode = icetable.ModeKeyValue
		}
	}
	if opts.Partition == "" {
		opts.Partition = icetable.PartitionOf(plan.Topic.Configs)
	}
	if opts.Mode != icetable.ModeKeyValue && opts.Mode != icetable.ModeJSON {
		return fmt.Errorf("bad --iceberg-mode %q: use key_value or json", opts.Mode)
	}
	if opts.Partition != icetable.PartitionDay && opts.Partition != icetable.PartitionHour {
		return fmt.Errorf("bad --iceberg-partition %q: use day or hour", opts.Partition)
	}
	dst := so
	dst.Bucket = out
	if !strings.HasPrefix(out, "s3://") {
		abs, err := filepath.Abs(out)
		if err != nil {
			return err
		}
		dst.Bucket = abs
	}
	store, err := OpenStore(ctx, dst)
	if err != nil {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	st, err := icetable.Export(ctx, meta, src, store, plan, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %d rows (%d in _raw), %d data files, %d snapshots (%s, by %s)\n",
		st.Location, st.Rows, st.Raw, st.Files, st.Commits, opts.Mode, opts.Partition)
	return nil
}
