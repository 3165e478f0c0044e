package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/shale-dev/shale/metastore"
)

// Status is what `shale status` reports, read from etcd alone (so it works
// with every agent stopped, and never shows a secret).
type Status struct {
	// Bucket is the cluster's bucket as its first agent recorded it in
	// etcd ("" when no agent has recorded one).
	Bucket string `json:"bucket,omitempty"`
	// Manifest is the newest recovery manifest (nil: none written yet).
	Manifest *ManifestStatus `json:"manifest,omitempty"`
	Agents   []AgentStatus   `json:"agents"`
	Topics   []TopicStatus   `json:"topics"`
	Groups   []GroupStatus   `json:"groups"`
}

// ManifestStatus is the newest recovery manifest: `shale recover` restores
// what etcd held at its time.
type ManifestStatus struct {
	Key        string  `json:"key"`
	Written    string  `json:"written"`
	AgeSeconds float64 `json:"age_seconds"`
	Keys       int64   `json:"keys"`
	Bytes      int64   `json:"bytes"`
}

// AgentStatus is one live agent.
type AgentStatus struct {
	NodeID  int32  `json:"node_id"`
	Address string `json:"address"`
	Rack    string `json:"rack,omitempty"`
	Started string `json:"started"`
}

// TopicStatus sums a topic's partitions.
type TopicStatus struct {
	Name         string `json:"name"`
	ID           string `json:"id"`
	Partitions   int32  `json:"partitions"`
	Records      int64  `json:"records"`
	BytesStored  int64  `json:"bytes_stored"`
	Objects      int    `json:"objects"`
	IndexEntries int    `json:"index_entries"`
	// OldestRecord is the first timestamp of the oldest stored entry (RFC
	// 3339), empty when the topic holds nothing.
	OldestRecord string `json:"oldest_record,omitempty"`
}

// GroupStatus is one consumer group's committed position.
type GroupStatus struct {
	Name        string `json:"name"`
	Coordinator int32  `json:"coordinator"`
	Partitions  int    `json:"partitions"`
	Lag         int64  `json:"lag"`
}

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster: agents, topics, storage, consumer group lag",
		Long: `Show the age of the newest recovery manifest (what shale recover would restore), live agents, topics with their partitions, records, bytes stored, objects, index
entries and oldest record, and consumer groups with their total lag. It reads etcd only, so it
works with every agent stopped.`,
		Args: cobra.NoArgs,
	}
	addEtcdReadFlags(cmd)
	cmd.Flags().StringP("output", "o", "table", "table or json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		out, err := outputFlag(v, "table", "json")
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
		defer cancel()
		meta, closeMeta, err := openMetaFlags(ctx, v)
		if err != nil {
			return err
		}
		defer closeMeta()
		st, err := ReadStatus(ctx, meta)
		if err != nil {
			return err
		}
		if out == "json" {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		return st.printTable(cmd.OutOrStdout())
	}
	return cmd
}

// ReadStatus gathers the cluster's status from etcd.
func ReadStatus(ctx context.Context, meta *metastore.Store) (Status, error) {
	st := Status{Agents: []AgentStatus{}, Topics: []TopicStatus{}, Groups: []GroupStatus{}}
	info, err := meta.Cluster(ctx)
	switch {
	case err == nil:
		st.Bucket = info.Bucket
	case !errors.Is(err, metastore.ErrNoClusterRecord):
		return st, err
	}
	mr, _, err := meta.LastManifest(ctx)
	if err != nil {
		return st, err
	}
	if mr.Key != "" {
		t := time.UnixMilli(mr.CreatedMs)
		st.Manifest = &ManifestStatus{Key: mr.Key, Written: t.UTC().Format(time.RFC3339), AgeSeconds: time.Since(t).Seconds(), Keys: mr.Keys, Bytes: mr.Bytes}
	}
	agents, err := meta.ListAgents(ctx)
	if err != nil {
		return st, err
	}
	for _, a := range agents {
		st.Agents = append(st.Agents, AgentStatus{NodeID: a.NodeID, Address: fmt.Sprintf("%s:%d", a.Host, a.Port), Rack: a.Rack,
			Started: time.UnixMilli(a.StartedMs).UTC().Format(time.RFC3339)})
	}
	topics, err := meta.ListTopics(ctx)
	if err != nil {
		return st, err
	}
	next := map[string]map[int32]int64{}
	for _, t := range topics {
		parts, err := scanStorage(ctx, meta, t)
		if err != nil {
			return st, fmt.Errorf("topic %s: %w", t.Name, err)
		}
		ts := TopicStatus{Name: t.Name, ID: kafkaTopicID(t.ID), Partitions: t.Partitions}
		oldest := int64(-1)
		next[t.Name] = map[int32]int64{}
		for p, ps := range parts {
			ts.Records += ps.next - ps.start
			ts.BytesStored += ps.bytes
			ts.Objects += ps.objects
			ts.IndexEntries += ps.entries
			if ps.oldest >= 0 && (oldest < 0 || ps.oldest < oldest) {
				oldest = ps.oldest
			}
			next[t.Name][p] = ps.next
		}
		if oldest >= 0 {
			ts.OldestRecord = time.UnixMilli(oldest).UTC().Format(time.RFC3339)
		}
		st.Topics = append(st.Topics, ts)
	}
	groups, err := meta.ListGroups(ctx)
	if err != nil {
		return st, err
	}
	for _, g := range groups {
		offs, err := meta.FetchGroupOffsets(ctx, g.Name)
		if err != nil {
			return st, fmt.Errorf("group %s: %w", g.Name, err)
		}
		gs := GroupStatus{Name: g.Name, Coordinator: g.Coordinator, Partitions: len(offs)}
		for _, o := range offs {
			if end, ok := next[o.Topic][o.Partition]; ok && end > o.Offset {
				gs.Lag += end - o.Offset
			}
		}
		st.Groups = append(st.Groups, gs)
	}
	return st, nil
}

func (st Status) printTable(w io.Writer) error {
	if st.Bucket != "" {
		fmt.Fprintf(w, "BUCKET %s\n", st.Bucket)
	}
	if m := st.Manifest; m != nil {
		fmt.Fprintf(w, "LAST MANIFEST %s ago (%s, %s, %d etcd keys): the recovery point of shale recover\n",
			(time.Duration(m.AgeSeconds) * time.Second).String(), m.Written, HumanBytes(m.Bytes), m.Keys)
	} else {
		fmt.Fprintln(w, "LAST MANIFEST none yet: shale recover has nothing to restore")
	}
	fmt.Fprintf(w, "\nAGENTS (%d)\n", len(st.Agents))
	t := newTable(w, "NODE", "ADDRESS", "STARTED")
	for _, a := range st.Agents {
		t.row(a.NodeID, a.Address, a.Started)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nTOPICS (%d)\n", len(st.Topics))
	t = newTable(w, "TOPIC", "PARTITIONS", "RECORDS", "STORED", "OBJECTS", "INDEX ENTRIES", "OLDEST RECORD")
	for _, tp := range st.Topics {
		oldest := tp.OldestRecord
		if oldest == "" {
			oldest = "-"
		}
		t.row(tp.Name, tp.Partitions, tp.Records, HumanBytes(tp.BytesStored), tp.Objects, tp.IndexEntries, oldest)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nCONSUMER GROUPS (%d)\n", len(st.Groups))
	t = newTable(w, "GROUP", "COORDINATOR", "PARTITIONS", "LAG")
	unclaimed := false
	for _, g := range st.Groups {
		coord := "none*"
		if g.Coordinator >= 0 {
			coord = fmt.Sprint(g.Coordinator)
		} else {
			unclaimed = true
		}
		t.row(g.Name, coord, g.Partitions, g.Lag)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if unclaimed {
		// etcd holds no coordinator for it (e.g. after a restart): the
		// group's next request (a consumer, `shale group describe`) elects one.
		_, err := fmt.Fprintln(w, "\n* no agent coordinates the group now; its next client request (a consumer, `shale group describe`) elects one")
		return err
	}
	return nil
}
