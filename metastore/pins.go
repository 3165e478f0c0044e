package metastore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ManifestPin marks a manifest being written (<ns>/manifest-pins/<lease>,
// under a lease of its own with the pin's TTL and no keep-alive): garbage
// collection deletes nothing while a pin exists, since the manifest in
// flight may reference objects the index no longer does. A writer that
// dies leaves its pin for at most the TTL.
type ManifestPin struct {
	s     *Store
	lease clientv3.LeaseID
	key   string
}

// PinManifest creates a pin that lives at most ttl.
func (s *Store) PinManifest(ctx context.Context, ttl time.Duration) (*ManifestPin, error) {
	secs := int64(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	g, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("metastore: grant manifest pin lease: %w", err)
	}
	key := s.keys.pin(int64(g.ID))
	if _, err := s.cli.Put(ctx, key, time.Now().UTC().Format(time.RFC3339), clientv3.WithLease(g.ID)); err != nil {
		_, _ = s.cli.Revoke(context.WithoutCancel(ctx), g.ID)
		return nil, fmt.Errorf("metastore: write %s: %w", key, err)
	}
	return &ManifestPin{s: s, lease: g.ID, key: key}, nil
}

// Held reports whether the pin still exists: false once its lease expired
// (a GC pass may then have deleted what the manifest references).
func (p *ManifestPin) Held(ctx context.Context) (bool, error) {
	resp, err := p.s.cli.Get(ctx, p.key, clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("metastore: read %s: %w", p.key, err)
	}
	return resp.Count > 0, nil
}

// Release deletes the pin (revokes its lease).
func (p *ManifestPin) Release(ctx context.Context) error {
	if _, err := p.s.cli.Revoke(ctx, p.lease); err != nil {
		return fmt.Errorf("metastore: release %s: %w", p.key, err)
	}
	return nil
}

// ManifestPinned reports whether some manifest is being written.
func (s *Store) ManifestPinned(ctx context.Context) (bool, error) {
	resp, err := s.cli.Get(ctx, s.keys.pinsPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("metastore: read %s: %w", s.keys.pinsPrefix(), err)
	}
	return resp.Count > 0, nil
}

// ManifestRecord describes the newest manifest written (key
// <ns>/manifest-last), so that tools reading only etcd (`shale status`)
// show the recovery point's age. It is left out of snapshots.
type ManifestRecord struct {
	Key       string `json:"key"`
	Revision  int64  `json:"revision"`
	CreatedMs int64  `json:"created_ms"`
	Keys      int64  `json:"keys"`
	Objects   int64  `json:"objects"`
	Bytes     int64  `json:"bytes"`
}

// RecordManifest writes r as the newest manifest unless a newer one (a
// higher revision) is recorded.
func (s *Store) RecordManifest(ctx context.Context, r ManifestRecord) error {
	key := s.keys.manifestLast()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	for range 8 {
		old, rev, err := s.LastManifest(ctx)
		if err != nil {
			return err
		}
		if old.Revision >= r.Revision {
			return nil
		}
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return fmt.Errorf("metastore: write %s: %w", key, err)
		}
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("metastore: write %s: %w", key, ErrConflict)
}

// LastManifest returns the newest manifest recorded (zero if none) and
// its key's ModRevision.
func (s *Store) LastManifest(ctx context.Context) (ManifestRecord, int64, error) {
	key := s.keys.manifestLast()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return ManifestRecord{}, 0, fmt.Errorf("metastore: read %s: %w", key, err)
	}
	var r ManifestRecord
	if len(resp.Kvs) == 0 {
		return r, 0, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return r, 0, fmt.Errorf("%w: %s: %v", ErrCorruptValue, key, err)
	}
	return r, resp.Kvs[0].ModRevision, nil
}
