package replay_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/replay/replaytest"
	"github.com/shale-dev/shale/s3tier"
)

// TestReadOnly proves the decorators the command reads through refuse
// every kind of write while letting reads (and read-only transactions,
// which FindEntries uses) through.
func TestReadOnly(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	ctx := replaytest.Ctx(t)
	if _, err := cli.Put(ctx, "/k", "v"); err != nil {
		t.Fatal(err)
	}
	kv := replay.ReadOnlyKV(cli.KV)
	if _, err := kv.Get(ctx, "/k"); err != nil {
		t.Errorf("get: %v", err)
	}
	if _, err := kv.Txn(ctx).If(clientv3.Compare(clientv3.Version("/k"), ">", 0)).Then(clientv3.OpGet("/k")).Commit(); err != nil {
		t.Errorf("read-only txn: %v", err)
	}
	writes := map[string]func() error{
		"put":    func() error { _, err := kv.Put(ctx, "/k", "x"); return err },
		"delete": func() error { _, err := kv.Delete(ctx, "/k"); return err },
		"do put": func() error { _, err := kv.Do(ctx, clientv3.OpPut("/k", "x")); return err },
		"txn put": func() error {
			_, err := kv.Txn(ctx).Then(clientv3.OpGet("/k")).Else(clientv3.OpPut("/k", "x")).Commit()
			return err
		},
		"nested txn delete": func() error {
			_, err := kv.Txn(ctx).Then(clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpDelete("/k")}, nil)).Commit()
			return err
		},
	}
	for name, w := range writes {
		if err := w(); !errors.Is(err, replay.ErrReadOnly) {
			t.Errorf("%s: got %v, want ErrReadOnly", name, err)
		}
	}
	if r, err := cli.Get(ctx, "/k"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Errorf("/k changed: %v %v", r, err)
	}

	dir, err := s3tier.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := replay.ReadOnlyStore(dir)
	if err := st.Put(ctx, "a", strings.NewReader("x"), 1); !errors.Is(err, replay.ErrReadOnly) {
		t.Errorf("store put: %v", err)
	}
	if err := st.Delete(ctx, "a"); !errors.Is(err, replay.ErrReadOnly) {
		t.Errorf("store delete: %v", err)
	}
	if infos, err := st.List(ctx, ""); err != nil || len(infos) != 0 {
		t.Errorf("list: %v %v", infos, err)
	}
}

// TestProgressLine pins the progress bar's content.
func TestProgressLine(t *testing.T) {
	got := replay.ProgressLine(50<<20, 100<<20, 1234, 2*time.Second)
	for _, want := range []string{"50%", "50.0 MiB / 100.0 MiB", "1234 records", "25.0 MiB/s", "ETA 2s"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress line %q lacks %q", got, want)
		}
	}
}
