package cli

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newProduceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Produce lines from stdin as records",
		Long: `Produce one record per line of standard input. With --key-separator, the text before
the first separator is the key. Every record carries the --header values. The command
waits until every record is acknowledged (durable in the bucket) and reports failures.
It ends within --timeout of its last line of input: a record not acknowledged by then
fails (the cluster may still have stored it; a retry can duplicate it).`,
		Example: `  printf 'user1:clicked\nuser2:scrolled\n' | shale produce -t clicks --key-separator :
  cat events.jsonl | shale produce -t events -H source=backfill`,
		Args: cobra.NoArgs,
	}
	addBootstrapFlag(cmd)
	f := cmd.Flags()
	f.StringP("topic", "t", "", "topic to produce to (required)")
	f.StringP("key-separator", "K", "", "split each line into key and value at the first occurrence of this")
	f.StringArrayP("header", "H", nil, "header key=value added to every record (repeatable)")
	f.Int32P("partition", "p", -1, "produce to this partition (default: by key hash, or spread when no key)")
	f.String("acks", "all", "all, 1 or 0")
	f.Int("max-line-bytes", 1<<20, "longest accepted line")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		topic := v.GetString("topic")
		if topic == "" {
			return fmt.Errorf("--topic is required")
		}
		var hdrs []kgo.RecordHeader
		for _, h := range v.GetStringSlice("header") {
			k, val, ok := strings.Cut(h, "=")
			if !ok || k == "" {
				return fmt.Errorf("bad header %q: use key=value", h)
			}
			hdrs = append(hdrs, kgo.RecordHeader{Key: k, Value: []byte(val)})
		}
		timeout := v.GetDuration("timeout")
		if timeout <= 0 {
			return fmt.Errorf("bad --timeout %s: use a positive duration such as 30s", timeout)
		}
		opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation()}
		switch v.GetString("acks") {
		case "all", "-1":
		case "1":
			opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
		case "0":
			opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
		default:
			return fmt.Errorf("bad --acks %q: use all, 1 or 0", v.GetString("acks"))
		}
		part := v.GetInt32("partition")
		if part >= 0 {
			opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		}
		cl, err := kafkaClient(v, opts...)
		if err != nil {
			return err
		}
		defer cl.Close()
		sep := v.GetString("key-separator")
		sc := bufio.NewScanner(cmd.InOrStdin())
		sc.Buffer(make([]byte, 64<<10), v.GetInt("max-line-bytes"))
		var (
			sent, failed, acked atomic.Int64
			firstErr            error
			mu                  sync.Mutex
		)
		for sc.Scan() {
			line := sc.Text()
			r := &kgo.Record{Value: []byte(line), Headers: hdrs, Partition: part}
			if sep != "" {
				if k, val, ok := strings.Cut(line, sep); ok {
					r.Key, r.Value = []byte(k), []byte(val)
				}
			}
			sent.Add(1)
			cl.Produce(cmd.Context(), r, func(_ *kgo.Record, err error) {
				if err == nil {
					acked.Add(1)
					return
				}
				failed.Add(1)
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			})
		}
		// The delivery timeout counts from each record's produce; the flush
		// deadline also covers a client stuck before it can fail records.
		fctx, cancel := context.WithTimeout(cmd.Context(), timeout+time.Second)
		defer cancel()
		if err := cl.Flush(fctx); err != nil {
			return fmt.Errorf("%s not acknowledged within --timeout %s: %w", plural(sent.Load()-acked.Load(), "record"), timeout, err)
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		if n := failed.Load(); n > 0 {
			return fmt.Errorf("%s of %d failed; first error: %v", plural(n, "record"), sent.Load(), firstErr)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "produced %s to %s\n", plural(sent.Load(), "record"), topic)
		return nil
	}
	return cmd
}
