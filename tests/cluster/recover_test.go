package cluster

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
)

// TestRecoverFromBucket (and TestRecoverFromMinIO) proves `shale recover` rebuilds a lost etcd from
// the bucket alone, as of the last periodic manifest: two agents (etcd as a
// process, versitygw S3) take a plain topic, a compacted one and a
// transactional one, group offsets, an ACL and a SCRAM user; once a
// manifest covers it all, both agents are SIGKILLed (no final manifest)
// and etcd is replaced by an empty one. After recover and a restart, every
// acknowledged record reads back at its offset through each agent, each
// topic reads exactly as before, the group's offsets are back, the
// user logs in with SCRAM and reads under its ACL, and the next record
// takes the next offset (dense, none reused).
func TestRecoverFromBucket(t *testing.T) { testRecover(t, nil) }

// On versitygw, recover itself is first SIGKILLed midway (one key per
// etcd transaction, so it takes a while), then run again: it resumes and
// gives the same result.
//
// TestRecoverFromMinIO is TestRecoverFromBucket on MinIO.
func TestRecoverFromMinIO(t *testing.T) {
	srv := testenv.MinIO(t)
	testRecover(t, &srv)
}

func testRecover(t *testing.T, s3srv *testenv.S3Server) {
	etcd := testenv.StartEtcdProcess(t)
	sasl := make([]string, 2)
	for i := range sasl {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		sasl[i] = "127.0.0.1:" + strconv.Itoa(port)
	}
	c := Start(t, Options{Agents: 2, EtcdEndpoints: etcd.Endpoints(), S3: s3srv,
		Args: []string{"--manifest-interval", "1s", "--super-users", "User:ANONYMOUS"},
		AgentArgs: func(i int) []string {
			return []string{"--listener", "sasl=SASL_PLAINTEXT://" + sasl[i]}
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	etcdFlags := []string{"--etcd-endpoints", strings.Join(etcd.Endpoints(), ",")}

	// The state to recover.
	const n = 60
	c.CreateTopic(t, 0, "plain", 3)
	acked := produceNumbered(ctx, t, c, 0, "plain", n)
	adm := kadm.NewClient(c.Client(t, kgo.SeedBrokers(c.Addr(0)), kgo.Dialer(DialTo(c.Addr(0)))))
	if r, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": ptr("compact")}, "compacted"); err != nil || r.Err != nil {
		t.Fatalf("create compacted topic: %v %v", err, r.Err)
	}
	prod := c.Client(t, kgo.SeedBrokers(c.Addr(0)), kgo.Dialer(DialTo(c.Addr(0))))
	for k := range 20 {
		r := &kgo.Record{Topic: "compacted", Key: []byte(fmt.Sprint(k % 5)), Value: []byte(fmt.Sprint(k))}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c.CreateTopic(t, 0, "txn", 2)
	txp := c.Client(t, kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(DialTo(c.Addr(1))), kgo.TransactionalID("recover-tx"), kgo.DefaultProduceTopic("txn"))
	for round := range 2 {
		if err := txp.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for k := range 10 {
			if err := txp.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("tx%d-%d", round, k))}).FirstErr(); err != nil {
				t.Fatalf("transactional produce: %v", err)
			}
		}
		if err := txp.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("commit transaction: %v", err)
		}
	}
	offsets := kadm.Offsets{}
	for p := range int32(3) {
		offsets.Add(kadm.Offset{Topic: "plain", Partition: p, At: int64(p) + 1, LeaderEpoch: -1})
	}
	if r, err := adm.CommitOffsets(ctx, "recover-group", offsets); err != nil || r.Error() != nil {
		t.Fatalf("commit offsets: %v %v", err, r.Error())
	}
	runShale(t, "alice-pw\n", append([]string{"user", "create", "alice", "--password-stdin"}, etcdFlags...)...)
	runShale(t, "", append([]string{"acl", "add", "--principal", "User:alice", "--operation", "read,describe", "--topic", "plain"}, etcdFlags...)...)
	runShale(t, "", append([]string{"acl", "add", "--principal", "User:alice", "--operation", "read", "--group", "alice", "--prefixed"}, etcdFlags...)...)
	before := map[string]map[string]string{}
	for _, topic := range []string{"plain", "compacted", "txn"} {
		before[topic] = readAll(ctx, t, c, 0, topic)
	}
	ends := endOffsets(ctx, t, adm, "plain")

	// A manifest taken after all of it, then etcd is lost.
	meta := metastore.New(testenv.EtcdClient(t, etcd.Endpoints()), metastore.DefaultNamespace)
	rev, err := meta.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, _, err := meta.LastManifest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Revision > rev {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no manifest after revision %d (last: %+v)", rev, m)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.Kill(0)
	c.Kill(1)
	etcd.Wipe()
	s3 := c.S3()
	bucketFlags := []string{"--bucket", "s3://" + s3.Bucket + "/test", "--s3-endpoint", s3.Endpoint, "--s3-region", s3.Region,
		"--s3-access-key", s3.AccessKey, "--s3-secret-key", s3.SecretKey}
	recoverArgs := append(append([]string{"recover"}, etcdFlags...), bucketFlags...)
	if s3srv == nil {
		marker := killRecover(ctx, t, etcd, append(recoverArgs, "--max-txn-ops", "1"))
		// An agent started on the half-restored namespace refuses, naming
		// the restore, and writes nothing.
		actx, acancel := context.WithTimeout(ctx, 30*time.Second)
		agent := exec.CommandContext(actx, Binary(t), append(append([]string{"agent", "--listen", "127.0.0.1:0",
			"--data-dir", t.TempDir(), "--log-level", "error"}, etcdFlags...), bucketFlags...)...)
		agent.Env = hermeticEnv()
		aout, err := agent.CombinedOutput()
		acancel()
		if err == nil || !strings.Contains(string(aout), "is being restored from the bucket") || !strings.Contains(string(aout), marker) {
			t.Fatalf("an agent started during a recover: %v\n%s", err, aout)
		}
	}
	out := runShale(t, "", recoverArgs...)
	for _, want := range []string{"restored meta/manifests/", "topics             3", "ACLs               3", "SCRAM credentials  2"} {
		if !strings.Contains(out, want) {
			t.Errorf("recover output lacks %q:\n%s", want, out)
		}
	}
	c.Restart(0)
	c.Restart(1)

	for i := range 2 { // through both agents
		samePositions(t, acked, readPositions(ctx, t, c, i, "plain", n))
		for topic, want := range before {
			if got := readAll(ctx, t, c, i, topic); !maps.Equal(got, want) {
				t.Errorf("%s after recover reads %d records through agent %d %v, before %d %v", topic, len(got), i, got, len(want), want)
			}
		}
	}
	adm1 := kadm.NewClient(c.Client(t, kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(DialTo(c.Addr(1)))))
	got, err := adm1.FetchOffsets(ctx, "recover-group")
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		if o, ok := got.Lookup("plain", p); !ok || o.At != int64(p)+1 {
			t.Errorf("group offset of plain/%d after recover: %+v, want %d", p, o, p+1)
		}
	}
	alice := c.Client(t, kgo.SeedBrokers(sasl[1]), kgo.Dialer(DialTo(sasl[1])),
		kgo.SASL(scram.Auth{User: "alice", Pass: "alice-pw"}.AsSha512Mechanism()),
		kgo.ConsumeTopics("plain"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	read := 0
	for read < n && ctx.Err() == nil {
		fs := alice.PollFetches(ctx)
		for _, fe := range fs.Errors() {
			t.Fatalf("alice (SCRAM, ACL) after recover: %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		read += fs.NumRecords()
	}
	if read != n {
		t.Fatalf("alice read %d of %d records after recover", read, n)
	}
	for p := range int32(3) {
		r := &kgo.Record{Topic: "plain", Partition: p, Value: []byte("after")}
		pp := c.Client(t, kgo.SeedBrokers(c.Addr(0)), kgo.Dialer(DialTo(c.Addr(0))), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		res, err := pp.ProduceSync(ctx, r).First()
		if err != nil {
			t.Fatal(err)
		}
		if res.Offset != ends[p] {
			t.Errorf("plain/%d: the first record after recover took offset %d, want %d (the end before the loss)", p, res.Offset, ends[p])
		}
	}
}

func ptr[T any](v T) *T { return &v }

// runShale runs the shale binary and fails t unless it exits 0.
func runShale(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = hermeticEnv()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("shale %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// readAll reads a topic (read_committed) through agent i until a second
// passes without a record, and returns "partition/offset" -> "key=value".
func readAll(ctx context.Context, t *testing.T, c *Cluster, i int, topic string) map[string]string {
	t.Helper()
	cons := c.Client(t, kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(DialTo(c.Addr(i))), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cons.Close()
	got := map[string]string{}
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cons.PollFetches(pctx)
		cancel()
		for _, fe := range fs.Errors() {
			if fe.Err != context.DeadlineExceeded {
				t.Fatalf("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
			}
		}
		if fs.NumRecords() == 0 && len(got) > 0 {
			return got
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = string(r.Key) + "=" + string(r.Value)
		})
	}
	t.Fatalf("%s through agent %d: read %d records, then the test's time ran out", topic, i, len(got))
	return nil
}

// endOffsets returns each partition's end offset.
func endOffsets(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	l, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// killRecover SIGKILLs `shale recover` midway: it watches etcd and kills
// the process once the restore has written a random 2 to 31 keys, its
// marker first (with --max-txn-ops 1 each key is its own transaction, so
// the instant varies across the restore), then checks that the marker was left behind, and
// leaves the namespace half-restored for the next run to resume. A
// watch, not a timer: the instant does not depend on the machine's load.
func killRecover(ctx context.Context, t *testing.T, etcd *testenv.EtcdProcess, args []string) (marker string) {
	t.Helper()
	cli := testenv.EtcdClient(t, etcd.Endpoints())
	meta := metastore.New(cli, metastore.DefaultNamespace)
	for attempt := range 5 {
		wctx, wcancel := context.WithCancel(ctx)
		wch := cli.Watch(wctx, metastore.DefaultNamespace+"/", clientv3.WithPrefix())
		cmd := exec.Command(Binary(t), args...)
		cmd.Env = hermeticEnv()
		if err := cmd.Start(); err != nil {
			wcancel()
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		after := 2 + rand.IntN(30) // etcd events (keys written) before the kill
		seen := 0
	watch:
		for seen < after {
			select {
			case wr, ok := <-wch:
				if !ok {
					break watch
				}
				seen += len(wr.Events)
			case <-exited:
				break watch
			}
		}
		_ = cmd.Process.Kill()
		<-exited
		wcancel()
		marker, err := meta.RecoveringMarker(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := meta.CountKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if marker != "" {
			t.Logf("recover SIGKILLed midway at attempt %d, after %d etcd events (%d keys written, marker %s)", attempt, seen, n, marker)
			return marker
		}
		// Finished (or never started) before the kill: start over.
		if err := meta.WipeNamespace(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("no kill of recover landed midway in 5 attempts")
	return ""
}
