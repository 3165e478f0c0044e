package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newTxnCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "txn",
		Short: "List and describe transactions (transactional IDs)",
		Long: `Inspect Kafka transactions through any agent (the Kafka admin protocol).

Each transactional ID has one coordinator agent at a time; its state (producer ID,
epoch, phase, partitions) lives in etcd. "producers" shows, per partition, the producers
that wrote it and where their open transaction starts: a transaction open there long
after its transactional ID completed is a hanging one.`,
	}
	cmd.AddCommand(txnListCmd(), txnDescribeCmd(), txnProducersCmd())
	return cmd
}

func txnListCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List transactional IDs and the state of their transaction", Args: cobra.NoArgs,
		Example: "  shale txn list\n  shale txn list --state Ongoing"}
	addBootstrapFlag(cmd)
	states := cmd.Flags().StringSlice("state", nil, "only these states (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort)")
	cmd.RunE = adminRun(func(cmd *cobra.Command, adm *kadm.Client, _ []string) error {
		ls, err := adm.ListTransactions(cmd.Context(), nil, *states)
		if err != nil {
			return fmt.Errorf("list transactions: %w", err)
		}
		t := newTable(cmd.OutOrStdout(), "TRANSACTIONAL ID", "STATE", "PRODUCER ID", "COORDINATOR")
		for _, l := range ls.Sorted() {
			t.row(l.TxnID, l.State, l.ProducerID, l.Coordinator)
		}
		return t.flush()
	})
	return cmd
}

func txnDescribeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "describe TRANSACTIONAL_ID...", Short: "Show transactions: producer, epoch, state, age, partitions", Args: minArgs(1),
		Example: "  shale txn describe etl-1"}
	addBootstrapFlag(cmd)
	cmd.RunE = adminRun(func(cmd *cobra.Command, adm *kadm.Client, args []string) error {
		ds, err := adm.DescribeTransactions(cmd.Context(), args...)
		if err != nil {
			return fmt.Errorf("describe transactions: %w", err)
		}
		t := newTable(cmd.OutOrStdout(), "TRANSACTIONAL ID", "STATE", "PRODUCER ID", "EPOCH", "TIMEOUT", "STARTED", "COORDINATOR", "PARTITIONS")
		var failed []string
		for _, id := range args {
			d := ds[id]
			if d.Err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", id, d.Err))
				continue
			}
			started := "-"
			if d.StartTimestamp >= 0 {
				started = time.UnixMilli(d.StartTimestamp).UTC().Format(time.RFC3339)
			}
			var parts []string
			for topic, ps := range d.Topics {
				for p := range ps {
					parts = append(parts, fmt.Sprintf("%s/%d", topic, p))
				}
			}
			sort.Strings(parts)
			list := strings.Join(parts, ",")
			if list == "" {
				list = "-"
			}
			t.row(id, d.State, d.ProducerID, d.ProducerEpoch, time.Duration(d.TimeoutMillis)*time.Millisecond, started, d.Coordinator, list)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if len(failed) > 0 {
			return fmt.Errorf("describe transactions: %s (see `shale txn list`)", strings.Join(failed, "; "))
		}
		return nil
	})
	return cmd
}

func txnProducersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "producers TOPIC...", Short: "Show each partition's producers: epoch, last sequence, open transaction's first offset", Args: minArgs(1),
		Example: "  shale txn producers orders"}
	addBootstrapFlag(cmd)
	cmd.RunE = adminRun(func(cmd *cobra.Command, adm *kadm.Client, args []string) error {
		md, err := adm.Metadata(cmd.Context(), args...)
		if err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
		set := kadm.TopicsSet{}
		for _, topic := range args {
			td, ok := md.Topics[topic]
			if !ok || td.Err != nil {
				return fmt.Errorf("topic %s: %v (see `shale topic list`)", topic, td.Err)
			}
			for p := range td.Partitions {
				set.Add(topic, p)
			}
		}
		dp, err := adm.DescribeProducers(cmd.Context(), set)
		if err != nil {
			return fmt.Errorf("describe producers: %w", err)
		}
		t := newTable(cmd.OutOrStdout(), "TOPIC", "PARTITION", "PRODUCER ID", "EPOCH", "LAST SEQUENCE", "LAST WRITE", "TXN START OFFSET")
		var failed []string
		for _, p := range dp.SortedPartitions() {
			if p.Err != nil {
				failed = append(failed, fmt.Sprintf("%s/%d: %v", p.Topic, p.Partition, p.Err))
				continue
			}
			for _, pr := range p.ActiveProducers.Sorted() {
				last, start := "-", "-"
				if pr.LastTimestamp >= 0 {
					last = time.UnixMilli(pr.LastTimestamp).UTC().Format(time.RFC3339)
				}
				if pr.CurrentTxnStartOffset >= 0 {
					start = fmt.Sprint(pr.CurrentTxnStartOffset)
				}
				t.row(p.Topic, p.Partition, pr.ProducerID, pr.ProducerEpoch, pr.LastSequence, last, start)
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
		if len(failed) > 0 {
			return fmt.Errorf("describe producers: %s", strings.Join(failed, "; "))
		}
		return nil
	})
	return cmd
}
