package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/share"
)

func newGroupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, delete consumer groups and reset their offsets",
		Long: `Manage consumer groups through any agent (the Kafka admin protocol).

Committed offsets live in etcd; the group's coordinator is whichever agent holds it.`,
	}
	cmd.AddCommand(groupListCmd(), groupDescribeCmd(), groupDeleteCmd(), groupResetCmd())
	return cmd
}

func groupListCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List consumer and share groups (PROTOCOL TYPE share)", Args: cobra.NoArgs}
	addBootstrapFlag(cmd)
	cmd.RunE = adminRun(func(cmd *cobra.Command, adm *kadm.Client, _ []string) error {
		gs, err := adm.ListGroups(cmd.Context())
		if err != nil {
			return fmt.Errorf("list groups: %w", err)
		}
		t := newTable(cmd.OutOrStdout(), "GROUP", "TYPE", "STATE", "PROTOCOL TYPE", "COORDINATOR")
		for _, g := range gs.Sorted() {
			typ := g.GroupType
			if typ == "" {
				typ = "classic"
			}
			t.row(g.Group, typ, g.State, g.ProtocolType, g.Coordinator)
		}
		return t.flush()
	})
	return cmd
}

func groupDescribeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "describe GROUP", Short: "Show a group's members, committed offsets (share groups: start offsets) and lag", Args: exactArgs(1),
		Long: `Show a group's type, state, members with their assignments, and per partition the
committed offset, log end and lag.

For a share group (KIP-932) each partition shows its share-partition start offset (records
below it are done), the log end, the lag, and, read from etcd (--etcd-endpoints, default the
dev agent's embedded etcd), the records acquired by consumers now, the deliveries of records
delivered before (redelivered) and the records archived without being accepted (rejected,
or past the delivery limit). When etcd is unreachable those three columns are left out with
a note.`}
	addBootstrapFlag(cmd)
	addEtcdReadFlags(cmd)
	cmd.RunE = adminRun(func(cmd *cobra.Command, adm *kadm.Client, args []string) error {
		ctx, name := cmd.Context(), args[0]
		if sgs, err := adm.DescribeShareGroups(ctx, name); err == nil && sgs[name].Err == nil {
			counts, cerr := shareCounts(cmd, name)
			return describeShareGroup(ctx, cmd.OutOrStdout(), adm, sgs[name], counts, cerr)
		}
		dgs, err := adm.DescribeGroups(ctx, name)
		if err != nil {
			return fmt.Errorf("describe group %s: %w", name, err)
		}
		dg := dgs[name]
		if dg.Err != nil {
			return fmt.Errorf("describe group %s: %w", name, dg.Err)
		}
		offs, err := adm.FetchOffsets(ctx, name)
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			return fmt.Errorf("committed offsets of %s: %w", name, err)
		}
		if len(dg.Members) == 0 && dg.ProtocolType == "" && len(offs) == 0 && (dg.State == "Dead" || dg.State == "Empty") {
			// Dead is Kafka's answer for an unknown group; the coordinator
			// the lookup elected may also describe it as a fresh Empty one.
			return fmt.Errorf("group %s not found: it has no members and no committed offsets (see `shale group list`)", name)
		}
		var topics []string
		offs.Each(func(o kadm.OffsetResponse) {
			if len(topics) == 0 || topics[len(topics)-1] != o.Topic {
				topics = append(topics, o.Topic)
			}
		})
		var ends kadm.ListedOffsets
		if len(topics) > 0 {
			if ends, err = adm.ListEndOffsets(ctx, topics...); err != nil {
				return fmt.Errorf("end offsets: %w", err)
			}
		}
		out := cmd.OutOrStdout()
		owner := map[string]string{}
		if cg, ok := describeConsumerGroup(ctx, adm, name); ok {
			// A KIP-848 consumer group: members with their epochs.
			if err := printConsumerGroup(out, cg, owner); err != nil {
				return err
			}
		} else {
			proto := "-"
			if dg.ProtocolType != "" {
				proto = dg.ProtocolType + "/" + dg.Protocol
			}
			fmt.Fprintf(out, "group %s  type classic  state %s  protocol %s  coordinator %d  members %d\n\n",
				name, dg.State, proto, dg.Coordinator.NodeID, len(dg.Members))
		}
		if len(dg.Members) > 0 && len(owner) == 0 {
			w := newTable(out, "MEMBER", "INSTANCE", "CLIENT", "HOST", "ASSIGNMENT")
			for _, m := range dg.Members {
				inst := "-"
				if m.InstanceID != nil {
					inst = *m.InstanceID
				}
				var parts []string
				if ca, ok := m.Assigned.AsConsumer(); ok {
					for _, t := range ca.Topics {
						for _, p := range t.Partitions {
							owner[t.Topic+"/"+strconv.Itoa(int(p))] = m.MemberID
							parts = append(parts, fmt.Sprintf("%s/%d", t.Topic, p))
						}
					}
				}
				w.row(m.MemberID, inst, m.ClientID, m.ClientHost, strings.Join(parts, ","))
			}
			if err := w.flush(); err != nil {
				return err
			}
			fmt.Fprintln(out)
		}
		w := newTable(out, "TOPIC", "PARTITION", "COMMITTED", "LOG END", "LAG", "MEMBER")
		for _, o := range offs.Sorted() {
			end, lag := "-", "-"
			if e, ok := ends.Lookup(o.Topic, o.Partition); ok && e.Err == nil {
				end, lag = strconv.FormatInt(e.Offset, 10), strconv.FormatInt(max(e.Offset-o.At, 0), 10)
			}
			m := owner[o.Topic+"/"+strconv.Itoa(int(o.Partition))]
			if m == "" {
				m = "-"
			}
			w.row(o.Topic, o.Partition, o.At, end, lag, m)
		}
		return w.flush()
	})
	return cmd
}

func groupDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "delete GROUP...", Short: "Delete groups without members, with their committed offsets", Args: minArgs(1)}
	addBootstrapFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		adm, done, err := cmdAdmin(cmd)
		if err != nil {
			return err
		}
		defer done()
		resps, err := adm.DeleteGroups(cmd.Context(), args...)
		if err != nil {
			return fmt.Errorf("delete groups: %w", err)
		}
		var errs []error
		for _, g := range args {
			if r := resps[g]; r.Err != nil {
				errs = append(errs, fmt.Errorf("delete group %s: %w", g, withMessage(r.Err, r.ErrMessage)))
				continue
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", g)
		}
		return errors.Join(errs...)
	}
	return cmd
}

func groupResetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP",
		Short: "Plan (or, with --execute, apply) new committed offsets for an empty group",
		Long: `Reset a group's committed offsets. Like Kafka's kafka-consumer-groups --reset-offsets,
the group must have no members, and by default only the plan is printed: pass --execute to commit it.

Topics: --topic NAME (every partition) or NAME:0,2,5 (repeatable), or --all-topics for the
topics the group has committed offsets for. Target: exactly one of --to-earliest, --to-latest,
--to-datetime (RFC 3339; the first record at or after it, the log end if none) or --to-offset N
(clamped to the partition's log start and end).`,
		Example: "  shale group reset-offsets billing --topic clicks --to-datetime 2024-05-01T00:00:00Z --execute",
		Args:    exactArgs(1),
	}
	addBootstrapFlag(cmd)
	cmd.Flags().StringArray("topic", nil, "topic, or topic:partition,partition (repeatable)")
	cmd.Flags().Bool("all-topics", false, "every topic the group has committed offsets for")
	cmd.Flags().Bool("to-earliest", false, "reset to each partition's log start")
	cmd.Flags().Bool("to-latest", false, "reset to each partition's log end")
	cmd.Flags().String("to-datetime", "", "reset to the first record at or after this time (RFC 3339)")
	cmd.Flags().Int64("to-offset", -1, "reset to this offset")
	cmd.Flags().Bool("execute", false, "apply the plan (default: print it only)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		adm, done, err := adminClient(cmd.Context(), v)
		if err != nil {
			return err
		}
		defer done()
		target := resetTarget{
			earliest: v.GetBool("to-earliest"), latest: v.GetBool("to-latest"),
			datetime: v.GetString("to-datetime"), offset: v.GetInt64("to-offset"),
		}
		if cmd.Flags().Changed("to-offset") && target.offset < 0 {
			return fmt.Errorf("--to-offset must be >= 0")
		}
		return resetOffsets(cmd.Context(), cmd.OutOrStdout(), adm, args[0], v.GetStringSlice("topic"), v.GetBool("all-topics"), target, cmd.Flags().Changed("to-offset"), v.GetBool("execute"))
	}
	return cmd
}

type resetTarget struct {
	earliest, latest bool
	datetime         string
	offset           int64
}

func resetOffsets(ctx context.Context, out io.Writer, adm *kadm.Client, group string, topicArgs []string, allTopics bool, target resetTarget, toOffset, execute bool) error {
	n := 0
	for _, b := range []bool{target.earliest, target.latest, target.datetime != "", toOffset} {
		if b {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset")
	}
	if (len(topicArgs) == 0) == !allTopics {
		return fmt.Errorf("give --topic (repeatable) or --all-topics")
	}
	dgs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("describe group %s: %w", group, err)
	}
	if dg := dgs[group]; dg.Err != nil {
		return fmt.Errorf("describe group %s: %w", group, dg.Err)
	} else if len(dg.Members) > 0 || (dg.State != "Empty" && dg.State != "Dead") {
		return fmt.Errorf("group %s is %s with %s: stop its consumers first (offsets can only be reset for an empty group)", group, dg.State, plural(int64(len(dg.Members)), "member"))
	}
	current, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = current.Error()
	}
	if err != nil {
		return fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	// Which partitions?
	want := map[string][]int32{} // nil slice: every partition
	if allTopics {
		current.Each(func(o kadm.OffsetResponse) { want[o.Topic] = append(want[o.Topic], o.Partition) })
	}
	for _, ta := range topicArgs {
		name, ps, hasParts := strings.Cut(ta, ":")
		if !hasParts {
			want[name] = nil
			continue
		}
		for _, p := range strings.Split(ps, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
			if err != nil || n < 0 {
				return fmt.Errorf("bad partition %q in --topic %s", p, ta)
			}
			want[name] = append(want[name], int32(n))
		}
	}
	topics := make([]string, 0, len(want))
	for t := range want {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	if len(topics) == 0 {
		return fmt.Errorf("group %s has no committed offsets to reset", group)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("end offsets: %w", err)
	}
	var at kadm.ListedOffsets
	if target.datetime != "" {
		ts, err := replay.ParseTime(target.datetime)
		if err != nil {
			return fmt.Errorf("bad --to-datetime %q: use RFC 3339 (e.g. 2024-05-01T00:00:00Z) or a date (2024-05-01, midnight UTC)", target.datetime)
		}
		if at, err = adm.ListOffsetsAfterMilli(ctx, ts.UnixMilli(), topics...); err != nil {
			return fmt.Errorf("offsets at %s: %w", target.datetime, err)
		}
	}
	var plan kadm.Offsets
	w := newTable(out, "TOPIC", "PARTITION", "CURRENT", "NEW")
	for _, t := range topics {
		parts := want[t]
		if parts == nil {
			ends.Each(func(o kadm.ListedOffset) {
				if o.Topic == t {
					parts = append(parts, o.Partition)
				}
			})
			if len(parts) == 0 {
				return fmt.Errorf("topic %s not found", t)
			}
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		for _, p := range parts {
			s, okS := starts.Lookup(t, p)
			e, okE := ends.Lookup(t, p)
			if !okS || !okE || s.Err != nil || e.Err != nil {
				return fmt.Errorf("partition %s/%d not found", t, p)
			}
			var next int64
			switch {
			case target.earliest:
				next = s.Offset
			case target.latest:
				next = e.Offset
			case target.datetime != "":
				next = e.Offset
				if a, ok := at.Lookup(t, p); ok && a.Err == nil && a.Offset >= 0 {
					next = a.Offset
				}
			default:
				next = min(max(target.offset, s.Offset), e.Offset)
			}
			cur := "-"
			if c, ok := current.Lookup(t, p); ok && c.At >= 0 {
				cur = strconv.FormatInt(c.At, 10)
			}
			w.row(t, p, cur, next)
			plan.Add(kadm.Offset{Topic: t, Partition: p, At: next, LeaderEpoch: -1})
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	if !execute {
		fmt.Fprintln(out, "\ndry run: nothing changed (pass --execute to commit these offsets)")
		return nil
	}
	resp, err := adm.CommitOffsets(ctx, group, plan)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("commit new offsets for %s: %w", group, err)
	}
	fmt.Fprintf(out, "\ncommitted new offsets for %s of group %s\n", plural(int64(len(resp.Sorted())), "partition"), group)
	return nil
}

// shareCount is what etcd holds of one share-partition beyond what the
// Kafka API shows.
type shareCount struct {
	acquired              int
	redelivered, archived int64
}

// shareCounts reads the state of every share-partition of group from
// etcd, by topic name and partition.
func shareCounts(cmd *cobra.Command, group string) (map[string]map[int32]shareCount, error) {
	v, err := newViper(cmd)
	if err != nil {
		return nil, err
	}
	ctx := cmd.Context()
	meta, closeMeta, err := openMetaFlags(ctx, v)
	if err != nil {
		return nil, err
	}
	defer closeMeta()
	states, err := meta.ShareStates(ctx, group)
	if err != nil {
		return nil, err
	}
	out := map[string]map[int32]shareCount{}
	for _, st := range states {
		t, err := meta.GetTopicByID(ctx, st.TopicID)
		if err != nil {
			continue // a deleted topic's leftover state
		}
		p, err := share.Unmarshal(st.Data)
		if err != nil {
			return nil, fmt.Errorf("share state of %s/%d: %w", t.Name, st.Partition, err)
		}
		if out[t.Name] == nil {
			out[t.Name] = map[int32]shareCount{}
		}
		out[t.Name][st.Partition] = shareCount{acquired: p.Count().Acquired, redelivered: p.Redelivered, archived: p.ArchivedTotal}
	}
	return out, nil
}

// describeShareGroup prints a share group (KIP-932): its members and
// assignments, and per partition its start offset (records below it are
// done), the log end and the lag (records from the start offset on not
// yet acknowledged or archived), and from etcd (counts; left out with a
// note when cerr is set) its acquired, redelivered and archived records.
func describeShareGroup(ctx context.Context, out io.Writer, adm *kadm.Client, g kadm.DescribedShareGroup, counts map[string]map[int32]shareCount, cerr error) error {
	offs, err := adm.DescribeShareGroupOffsets(ctx, g.GroupID)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		return fmt.Errorf("start offsets of %s: %w", g.GroupID, err)
	}
	fmt.Fprintf(out, "group %s  type share  state %s  epoch %d  coordinator %d  members %d\n\n",
		g.GroupID, g.GroupState, g.GroupEpoch, g.Coordinator.NodeID, len(g.Members))
	if len(g.Members) > 0 {
		w := newTable(out, "MEMBER", "CLIENT", "HOST", "ASSIGNMENT")
		for _, m := range g.Members {
			var parts []string
			for _, tp := range m.Assignment.Sorted() {
				for _, p := range tp.Partitions {
					parts = append(parts, fmt.Sprintf("%s/%d", tp.Topic, p))
				}
			}
			w.row(m.MemberID, m.ClientID, m.ClientHost, strings.Join(parts, ","))
		}
		if err := w.flush(); err != nil {
			return err
		}
		fmt.Fprintln(out)
	}
	so := offs[g.GroupID].Offsets
	var topics []string
	for t := range so {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	var ends kadm.ListedOffsets
	if len(topics) > 0 {
		if ends, err = adm.ListEndOffsets(ctx, topics...); err != nil {
			return fmt.Errorf("end offsets: %w", err)
		}
	}
	header := []string{"TOPIC", "PARTITION", "START OFFSET", "LOG END", "LAG"}
	if cerr == nil {
		header = append(header, "ACQUIRED", "REDELIVERED", "ARCHIVED")
	}
	w := newTable(out, header...)
	for _, t := range topics {
		ps := make([]int32, 0, len(so[t]))
		for p := range so[t] {
			ps = append(ps, p)
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		for _, p := range ps {
			o := so[t][p]
			end, lag := "-", "-"
			if e, ok := ends.Lookup(t, p); ok && e.Err == nil {
				end = strconv.FormatInt(e.Offset, 10)
			}
			if o.Lag >= 0 {
				lag = strconv.FormatInt(o.Lag, 10)
			}
			if cerr != nil {
				w.row(t, p, o.StartOffset, end, lag)
				continue
			}
			c := counts[t][p]
			w.row(t, p, o.StartOffset, end, lag, c.acquired, c.redelivered, c.archived)
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	if cerr != nil {
		fmt.Fprintf(out, "\n(acquired, redelivered and archived records are read from etcd, which did not answer: %v)\n", cerr)
	}
	return nil
}

// describeConsumerGroup describes name with ConsumerGroupDescribe; ok is
// false when it is not a KIP-848 consumer group (or the agent does not
// serve the API).
func describeConsumerGroup(ctx context.Context, adm *kadm.Client, name string) (kadm.DescribedConsumerGroup, bool) {
	ds, err := adm.DescribeConsumerGroups(ctx, name)
	if err != nil {
		return kadm.DescribedConsumerGroup{}, false
	}
	d, ok := ds[name]
	return d, ok && d.Err == nil
}

// printConsumerGroup prints a KIP-848 group's header and members (epoch,
// current and target assignment), and records who owns each partition.
func printConsumerGroup(out io.Writer, cg kadm.DescribedConsumerGroup, owner map[string]string) error {
	fmt.Fprintf(out, "group %s  type consumer  state %s  epoch %d  assignment epoch %d  assignor %s  coordinator %d  members %d\n\n",
		cg.Group, cg.State, cg.Epoch, cg.AssignmentEpoch, cg.AssignorName, cg.Coordinator.NodeID, len(cg.Members))
	if len(cg.Members) == 0 {
		return nil
	}
	list := func(s kadm.TopicsSet, member string) string {
		var parts []string
		for _, tp := range s.Sorted() {
			for _, p := range tp.Partitions {
				if member != "" {
					owner[tp.Topic+"/"+strconv.Itoa(int(p))] = member
				}
				parts = append(parts, fmt.Sprintf("%s/%d", tp.Topic, p))
			}
		}
		if len(parts) == 0 {
			return "-"
		}
		return strings.Join(parts, ",")
	}
	w := newTable(out, "MEMBER", "INSTANCE", "CLIENT", "HOST", "EPOCH", "ASSIGNMENT", "TARGET")
	for _, m := range cg.Members {
		inst := "-"
		if m.InstanceID != nil {
			inst = *m.InstanceID
		}
		w.row(m.MemberID, inst, m.ClientID, m.ClientHost, m.MemberEpoch, list(m.Assignment, m.MemberID), list(m.TargetAssignment, ""))
	}
	if err := w.flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	return nil
}
