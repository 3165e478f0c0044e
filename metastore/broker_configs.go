package metastore

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BrokerConfigs returns the dynamic broker configs of node (a decimal node
// ID), or with node "" the cluster-wide defaults; nil if none is set.
func (s *Store) BrokerConfigs(ctx context.Context, node string) (map[string]string, error) {
	resp, err := s.cli.Get(ctx, s.keys.brokerConfigs(node))
	if err != nil {
		return nil, fmt.Errorf("read broker configs %q: %w", node, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return DecodeConfigMap("broker configs "+node, resp.Kvs[0].Value)
}

// UpdateBrokerConfigs replaces node's dynamic broker configs (node "": the
// cluster-wide defaults) with what update returns for the current ones, by
// compare-and-swap on the key's revision (ErrConflict after a few lost
// races). The caller validates; an empty result deletes the key.
func (s *Store) UpdateBrokerConfigs(ctx context.Context, node string, update func(map[string]string) (map[string]string, error)) error {
	k := s.keys.brokerConfigs(node)
	for range 5 {
		resp, err := s.cli.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("read broker configs %q: %w", node, err)
		}
		var cur map[string]string
		rev := int64(0)
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			if cur, err = DecodeConfigMap("broker configs "+node, resp.Kvs[0].Value); err != nil {
				return err
			}
		}
		next, err := update(maps.Clone(cur))
		if err != nil {
			return err
		}
		op := clientv3.OpDelete(k)
		if len(next) > 0 {
			v, err := encodeConfigMap(next)
			if err != nil {
				return fmt.Errorf("write broker configs %q: %w", node, err)
			}
			op = clientv3.OpPut(k, string(v))
		}
		tr, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).Then(op).Commit()
		if err != nil {
			return fmt.Errorf("write broker configs %q: %w", node, err)
		}
		if tr.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("write broker configs %q: %w", node, ErrConflict)
}

// DecodeConfigMap decodes a stored config set: a JSON object of non-empty
// names to string values. Anything else wraps ErrCorruptValue.
func DecodeConfigMap(what string, b []byte) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptValue, what, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: %s: not an object", ErrCorruptValue, what)
	}
	if _, ok := m[""]; ok {
		return nil, fmt.Errorf("%w: %s: empty config name", ErrCorruptValue, what)
	}
	return m, nil
}

// encodeConfigMap is DecodeConfigMap's inverse.
func encodeConfigMap(m map[string]string) ([]byte, error) {
	if _, ok := m[""]; ok {
		return nil, fmt.Errorf("%w: empty config name", ErrInvalid)
	}
	return json.Marshal(m)
}
