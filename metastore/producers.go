package metastore

import (
	"context"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// FirstProducerID is the smallest producer ID handed out; IDs below it
	// are left free for tools and tests.
	FirstProducerID = 1000
	// producerIDBlock is how many IDs one etcd round trip reserves.
	producerIDBlock = 100
)

// AllocateProducerID returns a producer ID (>= FirstProducerID) that no
// other caller of any Store on the same namespace ever receives. IDs are
// reserved from etcd in blocks; the unused rest of a block is lost when the
// process ends, so IDs are unique but not dense.
func (s *Store) AllocateProducerID(ctx context.Context) (int64, error) {
	s.pidMu.Lock()
	defer s.pidMu.Unlock()
	if s.pidNext >= s.pidEnd {
		start, err := s.reserveProducerIDs(ctx, producerIDBlock)
		if err != nil {
			return 0, err
		}
		s.pidNext, s.pidEnd = start, start+producerIDBlock
	}
	id := s.pidNext
	s.pidNext++
	return id, nil
}

// reserveProducerIDs advances the producer-id counter by n with a CAS loop
// and returns the first reserved ID. The key holds the next free ID in decimal.
func (s *Store) reserveProducerIDs(ctx context.Context, n int64) (int64, error) {
	key := s.keys.producerID()
	for range maxCASAttempts {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("allocate producer id: %w", err)
		}
		start, rev := int64(FirstProducerID), int64(0)
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			start, err = strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
			if err != nil || start < FirstProducerID || start > maxOffset-n {
				return 0, fmt.Errorf("%w: key %q: producer id counter %q", ErrCorruptValue, key, resp.Kvs[0].Value)
			}
		}
		txn, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(key), "=", rev),
		).Then(clientv3.OpPut(key, strconv.FormatInt(start+n, 10))).Commit()
		if err != nil {
			return 0, fmt.Errorf("allocate producer id: %w", err)
		}
		if txn.Succeeded {
			return start, nil
		}
	}
	return 0, fmt.Errorf("allocate producer id: %w (gave up after %d attempts)", ErrConflict, maxCASAttempts)
}
