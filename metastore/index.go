package metastore

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// scanPage is how many entries ScanEntries reads per etcd request.
const scanPage = 500

// FindEntries returns up to limit index entries of one partition, ordered by
// BaseOffset, starting with the entry covering offset from (BaseOffset <=
// from <= LastOffset) or, when no entry covers it, with the first entry whose
// BaseOffset > from. It reads one consistent revision.
func (s *Store) FindEntries(ctx context.Context, id TopicID, partition int32, from int64, limit int) ([]IndexEntry, error) {
	entries, _, err := s.findEntries(ctx, id, partition, from, limit)
	return entries, err
}

// findEntries is FindEntries that also returns the revision it read at.
func (s *Store) findEntries(ctx context.Context, id TopicID, partition int32, from int64, limit int) ([]IndexEntry, int64, error) {
	if partition < 0 || from < 0 || limit < 1 {
		return nil, 0, fmt.Errorf("find entries %s/%d from %d limit %d: %w", id, partition, from, limit, ErrInvalid)
	}
	split := s.keys.entryRangeEnd(id, partition, from) // first key with BaseOffset > from
	end := prefixEnd(s.keys.partitionIndex(id, partition))
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.keys.entry(id, partition, 0), clientv3.WithRange(split),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1)),
		clientv3.OpGet(split, clientv3.WithRange(end),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(int64(limit))),
	).Commit()
	if err != nil {
		return nil, 0, fmt.Errorf("find entries %s/%d from %d: %w", id, partition, from, err)
	}
	out := make([]IndexEntry, 0, min(limit, 64))
	if before := resp.Responses[0].GetResponseRange().Kvs; len(before) > 0 {
		e, err := s.decodeEntryKV(before[0], id, partition)
		if err != nil {
			return nil, 0, err
		}
		if e.LastOffset >= from {
			out = append(out, e)
		}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if len(out) == limit {
			break
		}
		e, err := s.decodeEntryKV(kv, id, partition)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, e)
	}
	return out, resp.Header.Revision, nil
}

// ScanEntries calls fn for each entry of the partition, in BaseOffset order,
// starting like FindEntries (the entry covering from, else the first after
// it), until fn returns false or the entries end. It reads pages of 500
// entries, all at the revision of the first page, so it sees one consistent
// index even while commits continue; a scan outliving etcd's compaction of
// that revision fails with etcd's ErrCompacted.
func (s *Store) ScanEntries(ctx context.Context, id TopicID, partition int32, from int64, fn func(IndexEntry) bool) error {
	page, rev, err := s.findEntries(ctx, id, partition, from, scanPage)
	if err != nil {
		return err
	}
	end := prefixEnd(s.keys.partitionIndex(id, partition))
	for {
		for _, e := range page {
			if !fn(e) {
				return nil
			}
		}
		if len(page) < scanPage {
			return nil
		}
		last := page[len(page)-1].LastOffset
		if last == maxOffset {
			return nil
		}
		resp, err := s.cli.Get(ctx, s.keys.entry(id, partition, page[len(page)-1].BaseOffset+1),
			clientv3.WithRange(end), clientv3.WithLimit(scanPage), clientv3.WithRev(rev))
		if err != nil {
			return fmt.Errorf("scan entries %s/%d at revision %d: %w", id, partition, rev, err)
		}
		page = page[:0]
		for _, kv := range resp.Kvs {
			e, err := s.decodeEntryKV(kv, id, partition)
			if err != nil {
				return err
			}
			page = append(page, e)
		}
	}
}

// CountEntries returns how many index entries the partition has.
func (s *Store) CountEntries(ctx context.Context, id TopicID, partition int32) (int64, error) {
	resp, err := s.cli.Get(ctx, s.keys.partitionIndex(id, partition), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count entries %s/%d: %w", id, partition, err)
	}
	return resp.Count, nil
}

// decodeEntryKV decodes an index key-value and checks that the key agrees
// with the value.
func (s *Store) decodeEntryKV(kv *mvccpb.KeyValue, wantID TopicID, wantPartition int32) (IndexEntry, error) {
	key := string(kv.Key)
	id, p, base, err := s.keys.parseIndexKey(key)
	if err != nil {
		return IndexEntry{}, err
	}
	e, err := DecodeIndexEntry(key, kv.Value)
	if err != nil {
		return IndexEntry{}, err
	}
	if id != wantID || p != wantPartition || base != e.BaseOffset {
		return IndexEntry{}, fmt.Errorf("%w: key %q holds entry with base offset %d", ErrCorruptValue, key, e.BaseOffset)
	}
	return e, nil
}
