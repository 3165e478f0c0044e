package cli

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay"
)

func newTableCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "table",
		Short: "Iceberg tables materialized from topics (shale.iceberg.mode)",
	}
	cmd.AddCommand(newTableStatusCmd())
	return cmd
}

func newTableStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [TOPIC...]",
		Short: "Per topic with shale.iceberg.mode set: offsets in the table against the log, lag, files, snapshots",
		Long: `Reads etcd and the bucket (read-only, no agent needed) and prints, for each topic whose
shale.iceberg.mode is not disabled (or the topics named):

  MATERIALIZED  offsets in the table, summed over partitions (from the current snapshot's summary)
  END           the topic's last stable offsets, summed over partitions
  LAG           END - MATERIALIZED; LAG-TIME how long ago the current snapshot was committed
                while the lag is not 0 ("never": no snapshot yet)
  ROWS, FILES   rows and data files of the current snapshot; SNAPSHOTS in the metadata
  RAW           json mode: rows whose value is in the _raw column (not a JSON object, or a
                field whose type conflicts with its column's)
A MODE of "json (table: key_value)" is a topic switched after its table was created: the
job fails it until the mode is set back.`,
		Example: `  shale table status
  shale table status orders --etcd-endpoints etcd:2379`,
	}
	addEtcdReadFlags(cmd)
	addS3Flags(cmd, "object store: s3://bucket/prefix, or a local directory (default: the bucket the cluster recorded in etcd)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		meta, so, closeMeta, err := openReadOnly(ctx, v)
		if err != nil {
			return err
		}
		defer closeMeta()
		store, err := OpenStore(ctx, so)
		if err != nil {
			return err
		}
		store = replay.ReadOnlyStore(store)
		var topics []metastore.Topic
		if len(args) > 0 {
			for _, name := range args {
				t, err := meta.GetTopic(ctx, name)
				if err != nil {
					return err
				}
				topics = append(topics, t)
			}
		} else {
			all, err := meta.ListTopics(ctx)
			if err != nil {
				return err
			}
			for _, t := range all {
				if icetable.ModeOf(t.Configs) != icetable.ModeDisabled {
					topics = append(topics, t)
				}
			}
		}
		if len(topics) == 0 {
			return errors.New("no topic has shale.iceberg.mode set: `shale topic alter TOPIC --config shale.iceberg.mode=key_value`")
		}
		tw := newTable(cmd.OutOrStdout(), "TOPIC", "MODE", "MATERIALIZED", "END", "LAG", "LAG-TIME", "ROWS", "FILES", "SNAPSHOTS", "RAW")
		now := time.Now()
		for _, t := range topics {
			st, err := icetable.Status(ctx, store, meta, t, now)
			if err != nil {
				return err
			}
			lagTime := "0s"
			switch {
			case st.LagTime < 0:
				lagTime = "never"
			case st.LagTime > 0:
				lagTime = st.LagTime.Round(time.Second).String()
			}
			mode := string(st.Mode)
			if st.TableMode != "" && st.TableMode != st.Mode {
				mode += " (table: " + string(st.TableMode) + ")"
			}
			tw.row(st.Topic, mode, st.Materialized, st.End, st.Lag, lagTime, st.Rows, st.Files, st.Snapshots, st.Raw)
		}
		return tw.flush()
	}
	return cmd
}
