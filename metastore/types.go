package metastore

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// TopicID identifies a topic for its whole life. Object keys and index keys use
// it, never the name, so a deleted and re-created topic never sees old data.
type TopicID [16]byte

// String is the 32-character lower-case hex form used in keys.
func (id TopicID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID (no topic).
func (id TopicID) IsZero() bool { return id == TopicID{} }

// ParseTopicID parses the 32-character hex form.
func ParseTopicID(s string) (TopicID, error) {
	var id TopicID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("metastore: bad topic id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// Topic is a topic's durable description.
type Topic struct {
	ID         TopicID           `json:"id"`
	Name       string            `json:"name"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
	CreatedMs  int64             `json:"created_ms"`
	// Revision is the etcd ModRevision of the topic key when read; it is not stored.
	Revision int64 `json:"-"`
}

// BatchMeta remembers one committed idempotent batch of a producer, so a retry of
// it is answered with its original offset instead of being written twice.
type BatchMeta struct {
	FirstSeq   int32 `json:"f"`
	LastSeq    int32 `json:"l"`
	BaseOffset int64 `json:"o"`
}

// ProducerState is the idempotence state of one producer ID in one partition.
type ProducerState struct {
	Epoch int16 `json:"e"`
	// Batches holds the last (at most 5) committed batches, oldest first.
	Batches []BatchMeta `json:"b,omitempty"`
	// LastMs is the wall-clock time of the producer's last commit (for expiry).
	LastMs int64 `json:"t"`
	// EndedTxn is the TxnState.StartRevision of the producer's last
	// transaction whose marker reached the partition (written there or
	// not: a marker finding nothing to close still records it). A
	// transactional batch verified against that transaction or an older
	// one is refused at commit: it was in flight when the transaction
	// ended (KIP-890 part 1's check at append).
	EndedTxn int64 `json:"ended,omitempty"`
}

// PartitionState is the sequencing state of one partition. Offsets in
// [LogStartOffset, NextOffset) are readable.
type PartitionState struct {
	NextOffset     int64                    `json:"next"`
	LogStartOffset int64                    `json:"start"`
	Producers      map[int64]*ProducerState `json:"producers,omitempty"`
	// Txns holds the open transactions in this partition: producer ID to
	// the offset of the producer's first batch in its ongoing
	// transaction. A transactional batch opens one; the producer's
	// commit or abort marker closes it. The smallest first offset is the
	// last stable offset (LastStableOffset).
	Txns map[int64]int64 `json:"txns,omitempty"`
	// Revision is the etcd ModRevision of the state key when read (0: key absent).
	// CommitChunks compares it. Not stored.
	Revision int64 `json:"-"`
}

// Clone returns a deep copy, so callers can compute a new state without
// touching a cached one.
func (s PartitionState) Clone() PartitionState {
	c := s
	if s.Producers != nil {
		c.Producers = make(map[int64]*ProducerState, len(s.Producers))
		for id, p := range s.Producers {
			cp := *p
			cp.Batches = append([]BatchMeta(nil), p.Batches...)
			c.Producers[id] = &cp
		}
	}
	if s.Txns != nil {
		c.Txns = make(map[int64]int64, len(s.Txns))
		for id, o := range s.Txns {
			c.Txns[id] = o
		}
	}
	return c
}

// LastStableOffset is the offset below which every transaction is
// decided (Kafka's LSO): the first offset of the oldest open transaction,
// or NextOffset when none is open. read_committed consumers read up to it.
func (s PartitionState) LastStableOffset() int64 {
	lso := s.NextOffset
	for _, first := range s.Txns {
		lso = min(lso, first)
	}
	return lso
}

// AbortedTxn is one aborted transaction of a partition, kept in the
// partition's aborted-transaction index for read_committed fetches:
// producer ProducerID's batches from FirstOffset up to its abort marker at
// LastOffset are to be skipped.
type AbortedTxn struct {
	ProducerID  int64 `json:"pid"`
	FirstOffset int64 `json:"first"`
	LastOffset  int64 `json:"last"`
}

// EntryKind says how an index entry's bytes are laid out.
type EntryKind uint8

const (
	// EntryChunk is a byte range of record batches inside an object; the
	// batches store offsets starting at StoredBase.
	EntryChunk EntryKind = 0
	// EntrySegment is a whole compacted segment object holding only this
	// partition, its batches stored at their absolute offsets (StoredBase ==
	// BaseOffset) and cut into chunks. Pos and Size locate the segment's
	// footer and trailer (Pos + Size is the object's size): the footer is
	// the segment's own offset index, so a reader fetches [Pos, Pos+Size)
	// once, caches it, and then reads one chunk per ranged GET.
	EntrySegment EntryKind = 1
)

// IndexEntry maps a dense range of offsets of one partition to bytes in an
// object. For EntryChunk, offsets BaseOffset..LastOffset (inclusive) live in
// ObjectKey[Pos:Pos+Size]. The first batch in that range stores base offset
// StoredBase; a batch storing offset x has absolute offset
// BaseOffset + (x - StoredBase). For EntrySegment, see that kind.
//
// CRC has one meaning for every kind: the CRC-32C of exactly the bytes
// [Pos, Pos+Size) of the object. For a chunk entry those are the record
// batches; for a segment entry they are the footer and trailer, whose
// footer entries in turn carry each chunk's CRC-32C. So every byte a reader
// uses is covered by a checksum rooted in etcd.
type IndexEntry struct {
	Kind           EntryKind `json:"k,omitempty"`
	BaseOffset     int64     `json:"base"`
	LastOffset     int64     `json:"last"`
	ObjectKey      string    `json:"obj"`
	Pos            int64     `json:"pos"`
	Size           int64     `json:"size"`
	StoredBase     int64     `json:"sbase"`
	Batches        int32     `json:"batches"`
	FirstTimestamp int64     `json:"fts"`
	MaxTimestamp   int64     `json:"mts"`
	// CRC is the CRC-32C (Castagnoli) of exactly the bytes [Pos, Pos+Size).
	CRC uint32 `json:"crc"`
	// DataBytes is, for a segment entry, the bytes of its chunks (the object
	// minus header, footer and trailer); 0 for a chunk entry, whose data is
	// Size. Use Bytes.
	DataBytes int64 `json:"data,omitempty"`
	// CommittedMs is the wall-clock time of the commit (retention by time uses
	// MaxTimestamp; this is for operators and GC grace).
	CommittedMs int64 `json:"cms"`
}

// Records is the number of records (offsets) the entry covers.
func (e IndexEntry) Records() int64 { return e.LastOffset - e.BaseOffset + 1 }

// Bytes is the record batch bytes the entry covers (what retention.bytes
// and `shale topic describe` count).
func (e IndexEntry) Bytes() int64 {
	if e.Kind == EntrySegment {
		return e.DataBytes
	}
	return e.Size
}

// ChunkCommit is one partition's part of a commit: the entries to add and the
// state to install, valid only if the partition state is still at
// Expected.Revision.
type ChunkCommit struct {
	TopicID   TopicID
	Partition int32
	// ExpectedRevision is the ModRevision of the partition state the new state
	// was computed from.
	ExpectedRevision int64
	Entries          []IndexEntry
	New              PartitionState
	// Aborted are the transactions whose abort markers this commit
	// writes; each is added to the partition's aborted-transaction index
	// in the same etcd transaction.
	Aborted []AbortedTxn
}

// AgentInfo is what a live agent advertises (stored under a lease).
type AgentInfo struct {
	NodeID    int32  `json:"node_id"`
	Host      string `json:"host"`
	Port      int32  `json:"port"`
	Rack      string `json:"rack,omitempty"`
	AdminAddr string `json:"admin,omitempty"`
	StartedMs int64  `json:"started_ms"`
	Version   string `json:"version,omitempty"`
	// Listeners are the agent's extra listeners (beyond Host:Port, the
	// default one), by name, so Metadata can answer with the addresses of
	// the listener a client uses.
	Listeners []ListenerAddr `json:"listeners,omitempty"`
}

// ListenerAddr is one named listener's advertised address.
type ListenerAddr struct {
	Name string `json:"name"`
	Host string `json:"host"`
	Port int32  `json:"port"`
}

// Sentinel errors. Check with errors.Is.
var (
	ErrTopicExists      = errors.New("metastore: topic exists")
	ErrTopicNotFound    = errors.New("metastore: topic not found")
	ErrPartitionMissing = errors.New("metastore: partition not found")
	ErrConflict         = errors.New("metastore: concurrent update, re-read and retry")
	ErrInvalid          = errors.New("metastore: invalid argument")
	ErrCorruptValue     = errors.New("metastore: corrupt value")
)
