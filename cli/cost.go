package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/shale-dev/shale/cost"
	"github.com/shale-dev/shale/internal/units"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/s3tier"
)

func newCostCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cost",
		Short: "Estimate what each topic costs in the bucket: bytes, objects, requests, $/month",
		Long: `Estimate the monthly object store bill, per topic and in total, from etcd's offset index, a
listing of the bucket and, where reachable, the agents' /metrics (s3_requests_total).

Columns: LOGICAL is the record batch bytes the index covers; BUCKET the bytes of the listed
objects (an object shared by topics is split among them by the bytes each references); OBJECTS
the objects holding the topic's data; INDEX KEYS the offset index entries in etcd (SEGMENTS of
them are compacted segments); DROPPED the offsets below the log start (retention, DeleteRecords);
PUT/DAY and GET/DAY the object store requests (PUT-class: put and list; GET-class: get and head);
$/MONTH storage + requests. Objects no index entry references (awaiting garbage collection, or
uploads still in flight) are the (unreferenced) line. Below the table: what compaction and
retention did, from etcd (segments, dropped offsets) and, since each agent started, from its
counters (entries compaction replaced, hence the index keys without it; objects and bytes garbage
collection deleted).

Requests come from the agents' admin servers: --metrics-url, else the admin address each live
agent recorded in etcd. The rate is the average since each agent started (counter / uptime), or
with --sample 30s the increase over a 30 s window. Request rates carry no topic: a topic gets
the cluster's rate times its share of the bucket bytes. With no metrics reachable, request costs
are left out and the output says so.

Prices default to Amazon S3 Standard us-east-1 list prices (see 'shale cost --help' defaults and
the README; check https://aws.amazon.com/s3/pricing/). Override them with flags or --prices FILE
(YAML or JSON: name, storage_gb_month, put_per_1000, get_per_1000, egress_gb); flags win over the
file. A GB is 2^30 bytes, a month 30 days. --egress also prices the bytes agents returned to
consumers as internet egress (when consumers or agents sit outside the bucket's region).

Nothing is written to etcd or the bucket.`,
		Example: `  shale cost                                   # dev agent, or the etcd at 127.0.0.1:2379
  shale cost --etcd-endpoints etcd:2379 --metrics-url http://agent1:9644/metrics -o json
  shale cost --sample 30s --egress
  shale cost --prices minio.yaml               # e.g. storage_gb_month: 0.004, put_per_1000: 0, get_per_1000: 0`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringP("output", "o", "table", "table or json")
	f.StringSlice("metrics-url", nil, "an agent's admin /metrics URL, repeatable (default: the admin addresses agents recorded in etcd)")
	f.Duration("sample", 0, "measure request rates over this window (e.g. 30s) instead of averaging since each agent started")
	f.Bool("egress", false, "also price the bytes agents returned to consumers as internet egress")
	f.String("prices", "", "price table file, YAML or JSON (keys: name, storage_gb_month, put_per_1000, get_per_1000, egress_gb)")
	f.Float64("price-storage-gb-month", cost.DefaultPrices.StorageGBMonth, "$ per GB (2^30 bytes) stored for a month")
	f.Float64("price-put-per-1000", cost.DefaultPrices.PutPer1000, "$ per 1,000 PUT, COPY, POST or LIST requests")
	f.Float64("price-get-per-1000", cost.DefaultPrices.GetPer1000, "$ per 1,000 GET or HEAD requests")
	f.Float64("price-egress-gb", cost.DefaultPrices.EgressGB, "$ per GB transferred out (with --egress)")
	addEtcdReadFlags(cmd)
	addS3Flags(cmd, "object store: s3://bucket/prefix, or a local directory (default: the bucket the cluster recorded in etcd)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		out, err := outputFlag(v, "table", "json")
		if err != nil {
			return err
		}
		prices, err := costPrices(v)
		if err != nil {
			return err
		}
		sample := v.GetDuration("sample")
		if sample < 0 {
			return fmt.Errorf("bad --sample %v: use a positive duration such as 30s, or 0 for since start", sample)
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute+sample)
		defer cancel()
		meta, so, closeMeta, err := openReadOnly(ctx, v) // cost never writes to etcd
		if err != nil {
			return err
		}
		defer closeMeta()
		store, err := OpenStore(ctx, so)
		if err != nil {
			return err
		}
		store = replay.ReadOnlyStore(store)
		urls := splitList(v.GetStringSlice("metrics-url"))
		req, err := costRequests(ctx, meta, urls, sample, v.GetBool("egress"))
		if err != nil {
			return err
		}
		rep, err := ReadCost(ctx, meta, store, req, prices)
		if err != nil {
			return err
		}
		if out == "json" {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}
		return printCost(cmd.OutOrStdout(), rep)
	}
	return cmd
}

// costPrices is the defaults, then --prices, then the price flags set.
func costPrices(v *viper.Viper) (cost.Prices, error) {
	p := cost.DefaultPrices
	if file := v.GetString("prices"); file != "" {
		var err error
		if p, err = cost.LoadPrices(file, p); err != nil {
			return p, err
		}
	}
	custom := false
	for flag, dst := range map[string]*float64{
		"price-storage-gb-month": &p.StorageGBMonth, "price-put-per-1000": &p.PutPer1000,
		"price-get-per-1000": &p.GetPer1000, "price-egress-gb": &p.EgressGB,
	} {
		if v.IsSet(flag) {
			*dst = v.GetFloat64(flag)
			custom = true
		}
	}
	if custom {
		p.Name += ", with --price flags"
	}
	return p, p.Validate()
}

// costRequests scrapes every agent's /metrics (urls, else the admin
// addresses recorded in etcd) and sums their daily rates. Unreachable
// agents are listed, not fatal.
func costRequests(ctx context.Context, meta *metastore.Store, urls []string, sample time.Duration, egress bool) (cost.Requests, error) {
	req := cost.Requests{Source: "none: no agent's /metrics reachable (pass --metrics-url)"}
	if len(urls) == 0 {
		agents, err := meta.ListAgents(ctx)
		if err != nil {
			return req, err
		}
		for _, a := range agents {
			if a.AdminAddr != "" {
				urls = append(urls, "http://"+a.AdminAddr+"/metrics")
			}
		}
		if len(agents) > 0 && len(urls) == 0 {
			req.Source = "none: the live agents recorded no admin address (pass --metrics-url)"
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	first := make([]*cost.Counters, len(urls))
	for i, u := range urls {
		if !strings.Contains(u, "://") {
			u = "http://" + u
			urls[i] = u
		}
		c, err := cost.Scrape(ctx, client, u)
		if err != nil {
			req.AgentsUnreachable = append(req.AgentsUnreachable, fmt.Sprintf("%s: %v", u, err))
			continue
		}
		first[i] = &c
	}
	if sample > 0 {
		select {
		case <-time.After(sample):
		case <-ctx.Done():
			return req, ctx.Err()
		}
	}
	now := time.Now()
	for i, c := range first {
		if c == nil {
			continue
		}
		var later *cost.Counters
		if sample > 0 {
			l, err := cost.Scrape(ctx, client, urls[i])
			if err != nil {
				req.AgentsUnreachable = append(req.AgentsUnreachable, fmt.Sprintf("%s: %v", urls[i], err))
				continue
			}
			later = &l
		}
		put, get, outBytes, ok := cost.PerDay(*c, later, sample, now)
		if !ok {
			req.AgentsUnreachable = append(req.AgentsUnreachable, urls[i]+": no process_start_time_seconds: use --sample 30s")
			continue
		}
		req.Known = true
		req.AgentsScraped++
		if later != nil {
			c = later
		}
		req.Lifecycle = req.Lifecycle.Add(c.Lifecycle)
		req.PutPerDay += put
		req.GetPerDay += get
		if egress {
			req.EgressPerDay += outBytes
		}
	}
	if req.Known {
		req.Source = "average since each agent's process started (counters / uptime)"
		if sample > 0 {
			req.Source = fmt.Sprintf("rate over a %v sample", sample)
		}
	}
	return req, nil
}

// ReadCost lists the bucket, then reads every topic's index from etcd
// (in that order: an object committed after the listing is referenced,
// never mistaken for garbage), and prices the lot.
func ReadCost(ctx context.Context, meta *metastore.Store, store s3tier.Store, req cost.Requests, p cost.Prices) (cost.Report, error) {
	listed, err := store.List(ctx, "")
	if err != nil {
		return cost.Report{}, fmt.Errorf("list the bucket: %w (check --bucket and the S3 credentials)", err)
	}
	objects := make([]cost.Object, len(listed))
	for i, o := range listed {
		objects[i] = cost.Object{Key: o.Key, Size: o.Size}
	}
	topics, err := meta.ListTopics(ctx)
	if err != nil {
		return cost.Report{}, err
	}
	var idx []cost.TopicIndex
	var refs []cost.Ref
	for _, t := range topics {
		ti := cost.TopicIndex{Name: t.Name, Partitions: t.Partitions}
		for part := int32(0); part < t.Partitions; part++ {
			st, _, err := meta.ScanIndex(ctx, t.ID, part, func(e metastore.IndexEntry) bool {
				ti.IndexKeys++
				if e.Kind == metastore.EntrySegment {
					ti.Segments++
				}
				ti.LogicalBytes += e.Bytes()
				refs = append(refs, cost.Ref{Topic: t.Name, Key: e.ObjectKey, Bytes: e.Bytes()})
				return true
			})
			if err != nil {
				return cost.Report{}, fmt.Errorf("topic %s partition %d: %w", t.Name, part, err)
			}
			ti.Records += st.NextOffset - st.LogStartOffset
			ti.DroppedOffsets += st.LogStartOffset
		}
		idx = append(idx, ti)
	}
	return cost.Compute(idx, refs, objects, req, p), nil
}

func printCost(w io.Writer, r cost.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TOPIC\tLOGICAL\tBUCKET\tOBJECTS\tINDEX KEYS\tSEGMENTS\tDROPPED\tPUT/DAY\tGET/DAY\tSTORAGE $/MO\tREQUESTS $/MO\tTOTAL $/MO\t")
	line := func(u cost.Usage, logical bool) {
		lg, keys, seg, drop := units.HumanBytes(u.LogicalBytes), fmt.Sprint(u.IndexKeys), fmt.Sprint(u.Segments), fmt.Sprint(u.Dropped)
		if !logical {
			lg, keys, seg, drop = "-", "-", "-", "-"
		}
		put, get, reqs := "-", "-", "-"
		if r.Requests.Known {
			put, get, reqs = fmt.Sprintf("%.0f", u.PutPerDay), fmt.Sprintf("%.0f", u.GetPerDay), dollars(u.Cost.Requests)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", u.Name, lg, units.HumanBytes(u.BucketBytes), u.Objects,
			keys, seg, drop, put, get, dollars(u.Cost.Storage), reqs, dollars(u.Cost.Total))
	}
	for _, u := range r.Topics {
		line(u, true)
	}
	line(r.Garbage, false)
	if r.Manifests.Objects > 0 {
		line(r.Manifests, false)
	}
	line(r.Total, true)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if r.Total.Cost.Egress > 0 || r.Requests.EgressPerDay > 0 {
		fmt.Fprintf(w, "Egress: %s/day to consumers, %s/month (included in the total)\n", units.HumanBytes(int64(r.Requests.EgressPerDay)), dollars(r.Total.Cost.Egress))
	}
	fmt.Fprintf(w, "Requests: %s", r.Requests.Source)
	if r.Requests.Known {
		fmt.Fprintf(w, ", %d agent(s)", r.Requests.AgentsScraped)
	}
	fmt.Fprintln(w)
	for _, u := range r.Requests.AgentsUnreachable {
		fmt.Fprintf(w, "  not counted: %s\n", u)
	}
	pr := r.Prices
	fmt.Fprintf(w, "Prices: %s: $%g/GB-month, $%g per 1,000 PUT/LIST, $%g per 1,000 GET/HEAD, $%g/GB egress (GB = 2^30 bytes, month = 30 days)\n",
		pr.Name, pr.StorageGBMonth, pr.PutPer1000, pr.GetPer1000, pr.EgressGB)
	t := r.Total
	fmt.Fprintf(w, "Compaction and retention, in etcd now: %d index keys, %d of them compacted segments; %d offsets below the log starts (DROPPED).\n", t.IndexKeys, t.Segments, t.Dropped)
	if r.Requests.Known {
		l := r.Requests.Lifecycle
		fmt.Fprintf(w, "  Since the agents started: compaction replaced %.0f index entries by %.0f segments (%d keys without it);\n", l.EntriesReplaced, l.Segments, r.IndexKeysBeforeCompaction)
		fmt.Fprintf(w, "  retention dropped %.0f offsets; garbage collection deleted %.0f objects, %s.\n", l.RetentionOffsets, l.GCObjects, units.HumanBytes(int64(l.GCBytes)))
	} else {
		fmt.Fprintln(w, "  etcd records neither the index keys before compaction nor the bytes retention dropped; the agents' /metrics count them since they started.")
	}
	return nil
}

// dollars formats an amount in cents; "<$0.01" for less than a cent.
func dollars(x float64) string {
	if x > 0 && x < 0.005 {
		return "<$0.01"
	}
	return fmt.Sprintf("$%.2f", x)
}
