package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/s3tier"
)

// The cluster record: the first agent of a cluster writes its bucket URL to
// etcd (metastore.ClusterInfo). Every later agent compares its own and
// refuses another bucket, and tools that read etcd (replay, status, topic
// describe) find the bucket there, so they need only --etcd-endpoints.

// storeURL is the URL of the bucket o names, as the cluster record holds
// it: s3://bucket[/prefix], or file:// and the absolute directory.
func storeURL(o StackOptions) (string, error) {
	b := o.Bucket
	if b == "" {
		if !o.Dev {
			return "", errors.New("no bucket: pass --bucket s3://bucket/prefix (or --dev for a local directory)")
		}
		b = filepath.Join(o.DataDir, "bucket")
	}
	if strings.HasPrefix(b, "s3://") {
		bucket, prefix, err := s3tier.ParseS3URL(b)
		if err != nil {
			return "", err
		}
		if prefix != "" {
			return "s3://" + bucket + "/" + prefix, nil
		}
		return "s3://" + bucket, nil
	}
	abs, err := filepath.Abs(strings.TrimPrefix(b, "file://"))
	if err != nil {
		return "", fmt.Errorf("bucket directory %s: %w", b, err)
	}
	return "file://" + abs, nil
}

// checkCluster records this agent's bucket as the cluster's, or, when the
// cluster already has one, refuses a different bucket: two buckets behind
// one index would leave each agent unable to read the other's objects, and
// garbage collection would delete what it cannot see.
func checkCluster(ctx context.Context, meta *metastore.Store, o StackOptions) error {
	url, err := storeURL(o)
	if err != nil {
		return err
	}
	info := metastore.ClusterInfo{Bucket: url, CreatedMs: time.Now().UnixMilli()}
	if strings.HasPrefix(url, "s3://") {
		info.S3Endpoint, info.S3Region, info.S3PathStyle = o.S3Endpoint, o.S3Region, o.S3PathStyle
	}
	got, err := meta.RecordCluster(ctx, info)
	if errors.Is(err, metastore.ErrRecovering) {
		return fmt.Errorf("etcd namespace %s is being restored from the bucket (%v): shale recover is running, or was killed midway; "+
			"run shale recover again until it finishes, then start the agents", meta.Namespace(), err)
	}
	if err != nil {
		return fmt.Errorf("record the cluster's bucket in etcd: %w", err)
	}
	if got.Bucket != url {
		return fmt.Errorf("this agent's bucket %s is not the cluster's bucket %s (recorded in etcd under %s/cluster by its first agent): "+
			"pass --bucket %s to join this cluster, or another --etcd-namespace for a new cluster", url, got.Bucket, meta.Namespace(), got.Bucket)
	}
	return nil
}

// addEtcdReadFlags adds the flags of commands that read a cluster's state
// from etcd (status, topic describe, replay).
func addEtcdReadFlags(cmd *cobra.Command) {
	cmd.Flags().StringSlice("etcd-endpoints", []string{DevEtcdListen}, "etcd endpoints (default: the dev agent's embedded etcd)")
	addEtcdTLSFlags(cmd)
	cmd.Flags().String("etcd-namespace", metastore.DefaultNamespace, "key prefix of the cluster in etcd")
	cmd.Flags().String("data-dir", DefaultDataDir, "a dev agent's --data-dir: when no etcd answers, its etcd files are read from here (the agent must be stopped)")
}

// openMetaFlags connects to the etcd named by --etcd-endpoints and
// --etcd-namespace, for commands that read or change the cluster's state
// directly. When no etcd answers and the command has --data-dir holding a
// dev agent's etcd (<data-dir>/etcd/member), it starts that etcd on free
// local ports instead: in dev mode etcd lives inside the agent, so this is
// how tools work with the agent stopped. close releases what was opened.
func openMetaFlags(ctx context.Context, v *viper.Viper) (meta *metastore.Store, close func(), err error) {
	o := StackOptions{
		EtcdEndpoints:   splitList(v.GetStringSlice("etcd-endpoints")),
		EtcdNamespace:   v.GetString("etcd-namespace"),
		EtcdDialTimeout: 3 * time.Second,
		EtcdCertFile:    v.GetString("etcd-cert"),
		EtcdKeyFile:     v.GetString("etcd-key"),
		EtcdCAFile:      v.GetString("etcd-ca"),
	}
	quiet := slog.New(slog.DiscardHandler)
	dir := v.GetString("data-dir")
	if dir != "" && nothingListens(o.EtcdEndpoints) {
		// Skip the client's dial timeout: the dev layout is checked below.
		err = fmt.Errorf("no etcd listens at %v", o.EtcdEndpoints)
	} else {
		var cli *clientv3.Client
		if meta, _, cli, err = OpenMeta(ctx, o, quiet); err == nil {
			return meta, func() { cli.Close() }, nil
		}
	}
	if dir == "" {
		return nil, nil, err
	}
	if _, serr := os.Stat(filepath.Join(dir, "etcd", "member")); serr != nil {
		return nil, nil, fmt.Errorf("%w\n(no dev agent's etcd under --data-dir %s either: start the agent, `shale agent --dev` or `make run`, or pass the --etcd-endpoints of your etcd)", err, dir)
	}
	dev := StackOptions{Dev: true, DataDir: dir, DevEtcdListen: "127.0.0.1:0", EtcdNamespace: o.EtcdNamespace}
	meta, emb, cli, derr := OpenMeta(ctx, dev, quiet)
	if derr != nil {
		return nil, nil, fmt.Errorf("%w\nand the dev agent's etcd in %s could not be opened (%v): is its agent still running on another --dev-etcd-listen? Then pass that address as --etcd-endpoints",
			err, filepath.Join(dir, "etcd"), derr)
	}
	return meta, func() { cli.Close(); emb.Close() }, nil
}

// openReadOnly opens etcd from the flags through a client that refuses
// every write (cost and replay only read the cluster), and returns the
// store options of the bucket: --bucket and the S3 flags, or the bucket the
// cluster recorded (clusterBucket). close closes the etcd client.
func openReadOnly(ctx context.Context, v *viper.Viper) (meta *metastore.Store, so StackOptions, close func(), err error) {
	meta, close, err = openMetaFlags(ctx, v)
	if err != nil {
		return nil, so, nil, err
	}
	ecli := meta.Client()
	ecli.KV = replay.ReadOnlyKV(ecli.KV)
	meta = metastore.New(ecli, meta.Namespace())
	so = StackOptions{Bucket: v.GetString("bucket")}
	setS3Options(&so, v)
	if err := clusterBucket(ctx, meta, &so, v); err != nil {
		close()
		return nil, so, nil, err
	}
	return meta, so, close, nil
}

// clusterBucket fills o's bucket from the cluster record when --bucket is
// not given, with the S3 endpoint, region and path style the first agent
// used unless their flags are set.
func clusterBucket(ctx context.Context, meta *metastore.Store, o *StackOptions, v *viper.Viper) error {
	if o.Bucket != "" {
		return nil
	}
	info, err := meta.Cluster(ctx)
	if errors.Is(err, metastore.ErrNoClusterRecord) {
		return fmt.Errorf("--bucket is required: etcd (namespace %s) records no bucket for this cluster; its agents predate the record, or none has started", meta.Namespace())
	}
	if err != nil {
		return err
	}
	o.Bucket = info.Bucket
	if !v.IsSet("s3-endpoint") {
		o.S3Endpoint = info.S3Endpoint
	}
	if !v.IsSet("s3-region") {
		o.S3Region = info.S3Region
	}
	if !v.IsSet("s3-path-style") {
		o.S3PathStyle = info.S3PathStyle
	}
	return nil
}

// checkBucket refuses to start on an S3 bucket that does not exist (every
// upload would fail after the agent said it was ready), or creates it when
// asked (--create-bucket). Other failures of
// the check are logged: the server may be briefly unreachable, and uploads
// retry.
func checkBucket(ctx context.Context, st s3tier.Store, create bool, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := s3tier.CheckBucket(cctx, st)
	if errors.Is(err, s3tier.ErrNoBucket) && create {
		if err := s3tier.CreateBucket(cctx, st); err != nil {
			return err
		}
		log.Info("created the bucket", "bucket", st.String())
		return nil
	}
	if errors.Is(err, s3tier.ErrNoBucket) {
		return fmt.Errorf("%w: the bucket must exist before the agent starts; create it (e.g. `mc mb local/BUCKET` for MinIO, `aws s3 mb s3://BUCKET`) or pass --create-bucket", err)
	}
	if err != nil {
		log.Warn("could not check that the bucket exists; uploads will retry", "err", err)
	}
	return nil
}

// nothingListens reports whether every endpoint refuses a TCP connection at
// once (a host that does not answer is not refused, and is left to etcd's
// client to time out).
func nothingListens(endpoints []string) bool {
	for _, ep := range endpoints {
		hostport := ep
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			hostport = u.Host
		}
		c, err := net.DialTimeout("tcp", hostport, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return false
		}
	}
	return len(endpoints) > 0
}
