package metastore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Client quotas (Kafka's KIP-546: DescribeClientQuotas, AlterClientQuotas):
// one key per quota entity, holding the entity and its values.

// QuotaEntityPart is one component of a quota entity: an entity type
// ("user", "client-id", "ip") and a name, nil for the type's default.
type QuotaEntityPart struct {
	Type string  `json:"type"`
	Name *string `json:"name,omitempty"`
}

// ClientQuota is a quota entity and its values (e.g. producer_byte_rate).
type ClientQuota struct {
	Entity []QuotaEntityPart  `json:"entity"`
	Values map[string]float64 `json:"values"`
}

// QuotaAlteration changes one entity's values: Set values are written,
// Remove keys deleted. An entity left without values is deleted.
type QuotaAlteration struct {
	Entity []QuotaEntityPart
	Set    map[string]float64
	Remove []string
}

// QuotaEntityKey names an entity canonically: its parts sorted by type,
// each "type=" followed by the query-escaped name (nothing for the
// default; Kafka refuses empty names), joined by ",".
func QuotaEntityKey(entity []QuotaEntityPart) string {
	parts := make([]string, 0, len(entity))
	for _, p := range entity {
		s := url.QueryEscape(p.Type) + "="
		if p.Name != nil {
			s += url.QueryEscape(*p.Name)
		}
		parts = append(parts, s)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (k keys) quotasPrefix() string          { return k.p + dirQuotas }
func (k keys) quota(entityKey string) string { return k.p + dirQuotas + entityKey }

// ListQuotas returns every stored client quota and the etcd revision read
// at.
func (s *Store) ListQuotas(ctx context.Context) ([]ClientQuota, int64, error) {
	resp, err := s.cli.Get(ctx, s.keys.quotasPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list client quotas: %w", err)
	}
	out := make([]ClientQuota, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var q ClientQuota
		if err := json.Unmarshal(kv.Value, &q); err != nil || len(q.Entity) == 0 {
			s.log.Error("metastore: skipping corrupt client quota", "key", string(kv.Key))
			continue
		}
		out = append(out, q)
	}
	return out, resp.Header.Revision, nil
}

// AlterQuotas applies alterations (validated by the caller; entities
// distinct) in one etcd transaction, each read and rewritten against the
// revision it was read at; a concurrent change to one of them is
// ErrConflict (nothing applied).
func (s *Store) AlterQuotas(ctx context.Context, alts []QuotaAlteration) error {
	if len(alts) == 0 {
		return nil
	}
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, a := range alts {
		key := s.keys.quota(QuotaEntityKey(a.Entity))
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("alter client quotas: %w", err)
		}
		q := ClientQuota{Entity: a.Entity, Values: map[string]float64{}}
		var rev int64
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			var old ClientQuota
			if err := json.Unmarshal(resp.Kvs[0].Value, &old); err == nil {
				for k, v := range old.Values {
					q.Values[k] = v
				}
			}
		}
		for _, k := range a.Remove {
			delete(q.Values, k)
		}
		for k, v := range a.Set {
			q.Values[k] = v
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
		if len(q.Values) == 0 {
			ops = append(ops, clientv3.OpDelete(key))
			continue
		}
		v, err := json.Marshal(q)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(key, string(v)))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("alter client quotas: %w", err)
	}
	if !resp.Succeeded {
		return ErrConflict
	}
	return nil
}

// WatchQuotas sends a revision whenever a client quota changes after
// afterRev (or a resync is needed); receivers re-read ListQuotas. The
// channel closes when ctx ends.
func (s *Store) WatchQuotas(ctx context.Context, afterRev int64) <-chan int64 {
	return s.watchChanges(ctx, s.keys.quotasPrefix(), afterRev)
}
