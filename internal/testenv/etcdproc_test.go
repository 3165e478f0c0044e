package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

func TestMain(m *testing.M) {
	RunEtcdIfAsked() // returns unless started as StartEtcdProcess's etcd
	os.Exit(m.Run())
}

// TestEtcdDefaultLimits proves the limits the etcd process runs with are
// etcd's own defaults (embed's, which a stock etcd server starts with), and
// that the process enforces them: a transaction of 128 operations and a
// request just under 1.5 MiB pass, 129 operations and a request over
// 1.5 MiB are refused with etcd's errors; its keys survive a SIGKILL.
func TestEtcdDefaultLimits(t *testing.T) {
	if EtcdDefaultMaxTxnOps != embed.DefaultMaxTxnOps {
		t.Fatalf("EtcdDefaultMaxTxnOps = %d, etcd's default is %d", EtcdDefaultMaxTxnOps, embed.DefaultMaxTxnOps)
	}
	if EtcdDefaultMaxRequestBytes != embed.DefaultMaxRequestBytes {
		t.Fatalf("EtcdDefaultMaxRequestBytes = %d, etcd's default is %d", EtcdDefaultMaxRequestBytes, int(embed.DefaultMaxRequestBytes))
	}
	e := StartEtcdProcess(t)
	cli := EtcdClient(t, e.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	txn := func(n int) error {
		ops := make([]clientv3.Op, n)
		for i := range ops {
			ops[i] = clientv3.OpPut(fmt.Sprintf("k/%d/%04d", n, i), "v")
		}
		_, err := cli.Txn(ctx).Then(ops...).Commit()
		return err
	}
	if err := txn(EtcdDefaultMaxTxnOps); err != nil {
		t.Fatalf("txn of %d ops: %v", EtcdDefaultMaxTxnOps, err)
	}
	if err := txn(EtcdDefaultMaxTxnOps + 1); !errors.Is(err, rpctypes.ErrTooManyOps) {
		t.Fatalf("txn of %d ops: got %v, want %v", EtcdDefaultMaxTxnOps+1, err, rpctypes.ErrTooManyOps)
	}
	if _, err := cli.Put(ctx, "small", strings.Repeat("x", EtcdDefaultMaxRequestBytes-4096)); err != nil {
		t.Fatalf("put just under %d bytes: %v", EtcdDefaultMaxRequestBytes, err)
	}
	if _, err := cli.Put(ctx, "big", strings.Repeat("x", EtcdDefaultMaxRequestBytes+1)); !errors.Is(err, rpctypes.ErrRequestTooLarge) {
		t.Fatalf("put over %d bytes: got %v, want %v", EtcdDefaultMaxRequestBytes, err, rpctypes.ErrRequestTooLarge)
	}

	e.Kill()
	e.Restart()
	resp, err := cli.Get(ctx, "k/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != EtcdDefaultMaxTxnOps {
		t.Fatalf("after SIGKILL and restart: %v keys, %v; want %d", resp, err, EtcdDefaultMaxTxnOps)
	}
}
