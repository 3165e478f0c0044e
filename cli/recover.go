package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/manifest"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
)

func newRecoverCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Rebuild an empty etcd from the bucket's newest recovery manifest",
		Long: `Rebuild a cluster's etcd namespace from the bucket alone, after etcd was lost.

The agents' manifest job writes a snapshot of everything etcd holds that nothing else can
rebuild (topics and configs, partition states, the offset index, producer and transaction
state, group offsets, ACLs, SCRAM credentials as salted keys, the cluster record) to
meta/manifests/ in the bucket every --manifest-interval (1 min by default), and every agent
writes one when it stops gracefully. recover writes the newest one back. The recovery point is
that manifest: records acknowledged after it are not restored (their offsets will be given to
new records); a graceful shutdown of the last agent loses nothing.

Stop every agent first. recover refuses a namespace that holds keys unless --force (which
deletes them first); a recover killed midway may simply be run again. It never modifies an
object: before writing it checks each object the index references (its size, and its footer:
trailer, footer CRC, the chunks the index points at; --verify-data also every record byte's CRC),
and a corrupt or missing one is an error naming it, unless --skip-corrupt, which restores without
it and lists the offsets it held per partition (lost: a fetch skips them). While a restore is unfinished (running, or killed and not yet run again) etcd holds
<namespace>/recovering, and an agent refuses to start on it. Start the agents afterwards: they
serve every restored record at its offset.`,
		Example: `  # the dev layout: embedded etcd and bucket under ./data (rm -rf data/etcd lost it)
  shale recover --dev

  # a real cluster: a new, empty etcd and the cluster's bucket
  shale recover --etcd-endpoints 127.0.0.1:2379 --bucket s3://shale/prod --s3-endpoint http://127.0.0.1:9000

  # see what would be restored
  shale recover --dev --dry-run`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	addConfigFileFlag(cmd)
	f.Bool("dev", false, "the dev layout: etcd (started embedded) and the bucket under --data-dir")
	f.String("data-dir", DefaultDataDir, "with --dev: the agent's --data-dir")
	f.StringSlice("etcd-endpoints", nil, "etcd endpoints, comma-separated (required unless --dev)")
	f.String("etcd-namespace", metastore.DefaultNamespace, "key prefix of the cluster in etcd")
	addEtcdTLSFlags(cmd)
	addS3Flags(cmd, "the cluster's bucket: s3://bucket/prefix or a local directory (default with --dev: <data-dir>/bucket)")
	f.String("manifest", "", "the manifest to restore (a key under "+manifest.Prefix+"; default: the newest)")
	f.Bool("skip-corrupt", false, "restore past what is corrupt: a newest manifest that does not decode (the newest one that does is restored) and data objects that fail their check or are missing from the bucket (their offsets are lost, and listed per partition)")
	f.Bool("verify-data", false, "also read every record byte the index references and check its CRC (reads the whole bucket; by default recover reads each object's footer only)")
	f.Bool("new-bucket", false, "accept a manifest written for another bucket URL (the bucket was copied or moved); the cluster record gets this bucket")
	f.Bool("force", false, "delete the keys the etcd namespace holds before restoring (stop every agent first)")
	f.Bool("dry-run", false, "print what would be restored and change nothing")
	f.Int("max-txn-ops", metastore.DefaultMaxTxnOps, "keys written per etcd transaction (at most etcd's --max-txn-ops)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		o := StackOptions{
			Dev: v.GetBool("dev"), DataDir: v.GetString("data-dir"), DevEtcdListen: "127.0.0.1:0",
			EtcdEndpoints: splitList(v.GetStringSlice("etcd-endpoints")), EtcdNamespace: v.GetString("etcd-namespace"),
			Bucket: v.GetString("bucket"),
		}
		o.EtcdCertFile, o.EtcdKeyFile, o.EtcdCAFile = v.GetString("etcd-cert"), v.GetString("etcd-key"), v.GetString("etcd-ca")
		setS3Options(&o, v)
		ro := recoverOptions{Manifest: v.GetString("manifest"), SkipCorrupt: v.GetBool("skip-corrupt"), VerifyData: v.GetBool("verify-data"), NewBucket: v.GetBool("new-bucket"),
			Force: v.GetBool("force"), DryRun: v.GetBool("dry-run"), MaxTxnOps: v.GetInt("max-txn-ops")}
		return runRecover(cmd.Context(), o, ro, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	return cmd
}

type recoverOptions struct {
	Manifest               string
	SkipCorrupt, NewBucket bool
	VerifyData             bool
	Force, DryRun          bool
	MaxTxnOps              int
}

// recoveryPlan is a decoded manifest: what recover writes.
type recoveryPlan struct {
	key     string
	header  manifest.Header
	kvs     []metastore.KV
	objects []string
	kinds   map[string]int
	bytes   int64 // record bytes the index entries cover
	size    int64 // the manifest's size
	skipped []string
	// entries are the index entries, for checking the objects; lost the
	// offsets of objects skipped as corrupt.
	entries []planEntry
	lost    []lostRange
	// topics are the topics restored, by ID: offsets and bytes.
	topics map[metastore.TopicID]*planTopic
}

// planTopic is what a recover restores of one topic.
type planTopic struct {
	name       string
	partitions int32
	// records is the sum over partitions of end - start; end the
	// highest end offset (the next offset a partition hands out).
	records, end int64
	bytes        int64 // record bytes its index entries cover
}

// topic returns the plan's entry for id, made on first use.
func (p *recoveryPlan) topic(id metastore.TopicID) *planTopic {
	t := p.topics[id]
	if t == nil {
		t = &planTopic{name: "(id " + id.String() + ")"}
		p.topics[id] = t
	}
	return t
}

// relTopicID parses the topic ID of a relative partitions/<id>/... or
// index/<id>/... key.
func relTopicID(rel string) (metastore.TopicID, bool) {
	parts := strings.SplitN(rel, "/", 3)
	if len(parts) < 3 {
		return metastore.TopicID{}, false
	}
	id, err := metastore.ParseTopicID(parts[1])
	return id, err == nil
}

func runRecover(ctx context.Context, o StackOptions, ro recoverOptions, out, errw io.Writer) error {
	if o.Dev && o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	store, err := OpenStore(ctx, o)
	if err != nil {
		return err
	}
	if o.WrapStore != nil {
		store = o.WrapStore(store)
	}
	url, err := storeURL(o)
	if err != nil {
		return err
	}
	plan, err := loadPlan(ctx, store, ro, errw)
	if err != nil {
		return err
	}
	if plan.header.Bucket != "" && plan.header.Bucket != url && !ro.NewBucket {
		return fmt.Errorf("manifest %s was written for the bucket %s, not %s: pass the --bucket it names, or --new-bucket if the bucket was copied or moved here",
			plan.key, plan.header.Bucket, url)
	}
	missing, sizes, err := missingObjects(ctx, store, plan.objects)
	if err != nil {
		return err
	}
	if len(missing) > 0 && (!ro.SkipCorrupt || len(missing) == len(plan.objects)) {
		hint := "; pass --skip-corrupt to restore without them (the offsets they held are lost, and listed)"
		if len(missing) == len(plan.objects) {
			hint = "; none of them is: check --bucket and its prefix"
		}
		return fmt.Errorf("%d objects the manifest %s references are not in %s (first: %s): the bucket is not this cluster's, or objects were deleted%s",
			len(missing), plan.key, store, strings.Join(missing[:min(3, len(missing))], ", "), hint)
	}
	bad, err := verifyObjects(ctx, store, plan, sizes, ro.VerifyData, errw)
	if err != nil {
		return fmt.Errorf("check the objects of %s: %w", plan.key, err)
	}
	if len(bad) > 0 && !ro.SkipCorrupt {
		return corruptError(plan, bad)
	}
	for _, b := range bad {
		fmt.Fprintf(errw, "skipping %s: %v\n", b.key, b.err)
	}
	if plan.lost, err = plan.skipObjects(bad); err != nil {
		return err
	}
	cluster := metastore.ClusterInfo{Bucket: url, CreatedMs: time.Now().UnixMilli()}
	if strings.HasPrefix(url, "s3://") {
		cluster.S3Endpoint, cluster.S3Region, cluster.S3PathStyle = o.S3Endpoint, o.S3Region, o.S3PathStyle
	}
	if err := setClusterKV(plan, cluster); err != nil {
		return err
	}
	if ro.DryRun {
		plan.print(out, "would restore")
		return nil
	}
	meta, emb, ecli, err := OpenMeta(ctx, o, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer func() {
		ecli.Close()
		if emb != nil {
			emb.Close()
		}
	}()
	if err := checkEmpty(ctx, meta, plan.key, url, ro.Force); err != nil {
		return err
	}
	if err := meta.BeginRestore(ctx, plan.key); err != nil {
		return fmt.Errorf("recover from %s: %w (an agent or another recover started on etcd namespace %s meanwhile: stop every agent and run recover again)",
			plan.key, err, meta.Namespace())
	}
	prog := newProgress(errw, "restoring etcd keys", int64(len(plan.kvs)))
	err = meta.Restore(ctx, plan.key, plan.kvs, metastore.RestoreBatch{MaxOps: ro.MaxTxnOps}, func(done int) { prog.set(int64(done)) })
	prog.done()
	if err != nil {
		return fmt.Errorf("recover from %s: %w (run recover again: it resumes)", plan.key, err)
	}
	plan.print(out, "restored")
	return nil
}

// loadPlan reads and decodes the manifest to restore.
func loadPlan(ctx context.Context, store s3tier.Store, ro recoverOptions, errw io.Writer) (*recoveryPlan, error) {
	list, err := lifecycle.ListManifests(ctx, store)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, m := range list {
		keys = append(keys, m.Key)
	}
	if ro.Manifest != "" {
		if !slices.Contains(keys, ro.Manifest) {
			return nil, fmt.Errorf("no manifest %s in %s (there are: %s)", ro.Manifest, store, strings.Join(keys, ", "))
		}
		keys = []string{ro.Manifest}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no recovery manifest under %s in %s: is this the cluster's bucket, and did its agents run the manifest job (--manifest-interval)?", manifest.Prefix, store)
	}
	var skipped []string
	for i := len(keys) - 1; i >= 0; i-- {
		plan, err := readPlan(ctx, store, keys[i])
		if err == nil {
			plan.skipped = skipped
			return plan, nil
		}
		if !errors.Is(err, manifest.ErrCorrupt) && !s3tier.IsNotFound(err) {
			return nil, err
		}
		if !ro.SkipCorrupt || i == 0 {
			hint := "pass --skip-corrupt to restore the newest manifest that decodes"
			if i == 0 {
				hint = "no older manifest is left to fall back to"
			}
			return nil, fmt.Errorf("%w; %s", err, hint)
		}
		fmt.Fprintf(errw, "skipping %s: %v\n", keys[i], err)
		skipped = append(skipped, keys[i])
	}
	panic("unreachable")
}

func readPlan(ctx context.Context, store s3tier.Store, key string) (*recoveryPlan, error) {
	p := &recoveryPlan{key: key, kinds: map[string]int{}, topics: map[metastore.TopicID]*planTopic{}}
	h, _, err := lifecycle.ReadManifest(ctx, store, key, manifest.Visitor{
		Object: func(k string) error { p.objects = append(p.objects, k); return nil },
		KV: func(k string, v []byte) error {
			p.kvs = append(p.kvs, metastore.KV{Key: k, Value: v})
			kind := metastore.SnapshotKind(k)
			p.kinds[kind]++
			var err error
			switch kind {
			case metastore.KindIndex:
				var e metastore.IndexEntry
				if e, err = metastore.DecodeIndexEntry(k, v); err == nil {
					p.bytes += e.Bytes()
					id, ok := relTopicID(k)
					part, pok := relPartition(k)
					if !ok || !pok {
						err = fmt.Errorf("index key %q names no partition", k)
						break
					}
					p.topic(id).bytes += e.Bytes()
					p.entries = append(p.entries, planEntry{rel: k, kv: len(p.kvs) - 1, id: id, partition: part, e: e})
				}
			case metastore.KindTopic:
				var t metastore.Topic
				if t, err = metastore.DecodeTopic(k, v); err == nil {
					pt := p.topic(t.ID)
					pt.name, pt.partitions = t.Name, t.Partitions
				}
			case metastore.KindPartition:
				var st metastore.PartitionState
				if id, ok := relTopicID(k); ok && strings.Count(k, "/") == 2 {
					if st, err = metastore.DecodePartitionState(k, v); err == nil {
						pt := p.topic(id)
						pt.records += st.NextOffset - st.LogStartOffset
						pt.end = max(pt.end, st.NextOffset)
					}
				}
			}
			if err != nil {
				return fmt.Errorf("%w: %v", manifest.ErrCorrupt, err)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	p.header = h
	if info, err := store.Head(ctx, key); err == nil {
		p.size = info.Size
	}
	return p, nil
}

// setClusterKV makes the plan's cluster record the bucket recover reads.
func setClusterKV(p *recoveryPlan, info metastore.ClusterInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	for i, kv := range p.kvs {
		if kv.Key == metastore.ClusterKey {
			p.kvs[i].Value = b
			return nil
		}
	}
	p.kvs = append(p.kvs, metastore.KV{Key: metastore.ClusterKey, Value: b})
	return nil
}

// missingObjects returns the objects not in the bucket, and the sizes of
// those that are, from one listing.
func missingObjects(ctx context.Context, store s3tier.Store, objects []string) ([]string, map[string]int64, error) {
	have := map[string]int64{}
	for _, prefix := range lifecycle.DefaultGCPrefixes {
		l, err := store.List(ctx, prefix)
		if err != nil {
			return nil, nil, fmt.Errorf("list %s in %s: %w", prefix, store, err)
		}
		for _, o := range l {
			have[o.Key] = o.Size
		}
	}
	var missing []string
	for _, o := range objects {
		if _, ok := have[o]; !ok {
			missing = append(missing, o)
		}
	}
	return missing, have, nil
}

// checkEmpty refuses a namespace holding keys, unless it is a restore of
// the same manifest killed midway (resumed) or force (wiped first).
func checkEmpty(ctx context.Context, meta *metastore.Store, key, bucket string, force bool) error {
	marker, err := meta.RecoveringMarker(ctx)
	if err != nil {
		return err
	}
	if marker == key {
		return nil // resume
	}
	n, err := meta.CountKeys(ctx)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if !force {
		what := ""
		if marker != "" {
			what = fmt.Sprintf(", among them a restore of %s that did not finish", marker)
		} else if info, err := meta.Cluster(ctx); err == nil {
			what = fmt.Sprintf(" (the cluster of the bucket %s; recover reads the bucket %s)", info.Bucket, bucket)
		}
		return fmt.Errorf("etcd namespace %s holds %d keys%s: recover writes only into an empty namespace. Stop every agent and pass --force to delete them first, or pass another --etcd-namespace",
			meta.Namespace(), n, what)
	}
	return meta.WipeNamespace(ctx)
}

func (p *recoveryPlan) print(w io.Writer, verb string) {
	created := time.UnixMilli(p.header.CreatedMs).UTC()
	fmt.Fprintf(w, "%s %s (%s, etcd revision %d, written %s by %s)\n", verb, p.key, HumanBytes(p.size), p.header.Revision,
		created.Format(time.RFC3339), p.header.Writer)
	fmt.Fprintf(w, "recovery point: %s (records acknowledged after it are not restored)\n", created.Format(time.RFC3339))
	for _, s := range p.skipped {
		fmt.Fprintf(w, "skipped corrupt manifest %s: records acknowledged after %s and before it was written are lost;\n"+
			"  each partition resumes at the offsets below (the next records produced take the lost offsets)\n", s, created.Format(time.RFC3339))
	}
	if len(p.lost) > 0 {
		fmt.Fprintf(w, "skipped %d corrupt or missing objects; the offsets they held are lost (a fetch skips them; the offsets are not reused):\n", countObjects(p.lost))
		t := newTable(w, "  TOPIC", "PARTITION", "LOST OFFSETS", "RECORDS", "OBJECT")
		for _, r := range p.lost {
			t.row("  "+r.topic, r.partition, fmt.Sprintf("%d-%d", r.first, r.last), r.last-r.first+1, r.object)
		}
		_ = t.flush()
	}
	kt := newTable(w)
	row := func(name string, n any) { kt.row("  "+name, n) }
	row("topics", p.kinds[metastore.KindTopic])
	row("partitions", p.kinds[metastore.KindPartition])
	row("index entries", fmt.Sprintf("%d (%s of records in %s)", p.kinds[metastore.KindIndex], HumanBytes(p.bytes), plural(int64(len(p.objects)), "object")))
	row("group keys", p.kinds[metastore.KindGroup])
	row("group offsets", p.kinds[metastore.KindGroupOffset])
	row("transactions", p.kinds[metastore.KindTxn])
	row("ACLs", p.kinds[metastore.KindACL])
	row("SCRAM credentials", p.kinds[metastore.KindUser])
	row("other keys", p.kinds[metastore.KindOther])
	row("etcd keys in all", len(p.kvs))
	_ = kt.flush()
	if len(p.topics) == 0 {
		return
	}
	fmt.Fprintln(w)
	ts := make([]*planTopic, 0, len(p.topics))
	for _, t := range p.topics {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	t := newTable(w, "TOPIC", "PARTITIONS", "RECORDS", "HIGHEST END OFFSET", "BYTES")
	for _, pt := range ts {
		t.row(pt.name, pt.partitions, pt.records, pt.end, HumanBytes(pt.bytes))
	}
	_ = t.flush()
}
