package metastore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/auth"
)

// ErrUserNotFound means no credential is stored for the user and mechanism.
var ErrUserNotFound = errors.New("metastore: user not found")

// UserCredential is one stored SCRAM credential.
type UserCredential struct {
	User string
	auth.Credential
}

// PutCredential stores (creates or replaces) user's credential for its
// mechanism.
func (s *Store) PutCredential(ctx context.Context, user string, c auth.Credential) error {
	if user == "" || len(user) > auth.MaxUserBytes {
		return fmt.Errorf("put credential: %w: user name must be 1..%d bytes", ErrInvalid, auth.MaxUserBytes)
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("put credential of %q: %w: %v", user, ErrInvalid, err)
	}
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, s.keys.userCred(user, c.Mechanism), string(v)); err != nil {
		return fmt.Errorf("put credential of %q: %w", user, err)
	}
	return nil
}

// DeleteCredential removes user's credential for mech; ErrUserNotFound
// when there was none.
func (s *Store) DeleteCredential(ctx context.Context, user, mech string) error {
	resp, err := s.cli.Delete(ctx, s.keys.userCred(user, mech))
	if err != nil {
		return fmt.Errorf("delete credential of %q: %w", user, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("delete credential of %q (%s): %w", user, mech, ErrUserNotFound)
	}
	return nil
}

// GetCredential reads user's credential for mech (ErrUserNotFound when
// absent).
func (s *Store) GetCredential(ctx context.Context, user, mech string) (auth.Credential, error) {
	key := s.keys.userCred(user, mech)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return auth.Credential{}, fmt.Errorf("get credential of %q: %w", user, err)
	}
	if len(resp.Kvs) == 0 {
		return auth.Credential{}, fmt.Errorf("get credential of %q (%s): %w", user, mech, ErrUserNotFound)
	}
	return decodeCredential(key, resp.Kvs[0].Value)
}

func decodeCredential(key string, v []byte) (auth.Credential, error) {
	var c auth.Credential
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("%w: key %q: %v", ErrCorruptValue, key, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w: key %q: %v", ErrCorruptValue, key, err)
	}
	return c, nil
}

// ListCredentials returns every stored credential (of users, when any are
// named), sorted by user and mechanism.
func (s *Store) ListCredentials(ctx context.Context, users ...string) ([]UserCredential, error) {
	var kvs []*mvccKV
	get := func(prefix string) error {
		resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return fmt.Errorf("list credentials: %w", err)
		}
		for _, kv := range resp.Kvs {
			kvs = append(kvs, &mvccKV{key: string(kv.Key), value: kv.Value})
		}
		return nil
	}
	if len(users) == 0 {
		if err := get(s.keys.usersPrefix()); err != nil {
			return nil, err
		}
	}
	for _, u := range users {
		if err := get(s.keys.user(u)); err != nil {
			return nil, err
		}
	}
	out := make([]UserCredential, 0, len(kvs))
	for _, kv := range kvs {
		u, _, err := s.keys.parseUserKey(kv.key)
		if err != nil {
			return nil, err
		}
		c, err := decodeCredential(kv.key, kv.value)
		if err != nil {
			return nil, err
		}
		out = append(out, UserCredential{User: u, Credential: c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].User != out[j].User {
			return out[i].User < out[j].User
		}
		return out[i].Mechanism < out[j].Mechanism
	})
	return out, nil
}

type mvccKV struct {
	key   string
	value []byte
}

// aclID is the digest naming an ACL's key.
func aclID(a auth.ACL) string {
	b, _ := json.Marshal(a)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// CreateACL stores a binding (idempotent: the same binding is one key).
func (s *Store) CreateACL(ctx context.Context, a auth.ACL) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("create acl: %w: %v", ErrInvalid, err)
	}
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, s.keys.acl(aclID(a)), string(v)); err != nil {
		return fmt.Errorf("create acl: %w", err)
	}
	return nil
}

// DeleteACLs removes every binding matching f and returns them.
func (s *Store) DeleteACLs(ctx context.Context, f auth.Filter) ([]auth.ACL, error) {
	acls, _, err := s.ListACLs(ctx)
	if err != nil {
		return nil, err
	}
	var deleted []auth.ACL
	var ops []clientv3.Op
	for _, a := range acls {
		if f.Matches(a) {
			deleted = append(deleted, a)
			ops = append(ops, clientv3.OpDelete(s.keys.acl(aclID(a))))
		}
	}
	for len(ops) > 0 {
		n := min(len(ops), groupTxnOps)
		if _, err := s.cli.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			return nil, fmt.Errorf("delete acls: %w", err)
		}
		ops = ops[n:]
	}
	return deleted, nil
}

// ListACLs returns every binding and the etcd revision read at.
func (s *Store) ListACLs(ctx context.Context) ([]auth.ACL, int64, error) {
	resp, err := s.cli.Get(ctx, s.keys.aclsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list acls: %w", err)
	}
	out := make([]auth.ACL, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var a auth.ACL
		if err := json.Unmarshal(kv.Value, &a); err != nil || a.Validate() != nil {
			s.log.Error("metastore: skipping corrupt acl", "key", string(kv.Key))
			continue
		}
		out = append(out, a)
	}
	return out, resp.Header.Revision, nil
}

// WatchACLs sends a revision whenever a binding changes after afterRev
// (or a resync is needed); receivers re-read ListACLs. The channel closes
// when ctx ends.
func (s *Store) WatchACLs(ctx context.Context, afterRev int64) <-chan int64 {
	return s.watchChanges(ctx, s.keys.aclsPrefix(), afterRev)
}

// watchChanges sends the revision of every change under prefix after
// afterRev (or of a needed resync) until ctx ends, then closes.
func (s *Store) watchChanges(ctx context.Context, prefix string, afterRev int64) <-chan int64 {
	out := make(chan int64, watchBuffer)
	go func() {
		defer close(out)
		watchPrefix(ctx, s, prefix, afterRev, out,
			func(ev *clientv3.Event) (int64, error) { return ev.Kv.ModRevision, nil },
			func(rev int64) int64 { return rev })
	}()
	return out
}
