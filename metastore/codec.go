package metastore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Values are stored as JSON so that `etcdctl get --prefix /shale/` is
// readable. Decoding is strict: the value must be one JSON object with no
// unknown fields and nothing after it, and it must pass Validate. Unknown
// fields are refused rather than ignored because a read-modify-write by an
// older agent would silently drop them.

// Limits enforced on topics.
const (
	MaxTopicNameLen = 249
	MaxPartitions   = 100000
	// MaxProducerBatches is how many recent batches a ProducerState keeps.
	MaxProducerBatches = 5
)

// MarshalText encodes the ID as 32 lower-case hex characters, so JSON values
// show the same form as keys.
func (id TopicID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the form written by MarshalText.
func (id *TopicID) UnmarshalText(b []byte) error {
	v, err := ParseTopicID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ValidTopicName reports (as an ErrInvalid-wrapped error) whether name is a
// legal Kafka topic name: 1..249 characters of [a-zA-Z0-9._-], not "." or "..".
func ValidTopicName(name string) error {
	if name == "" || len(name) > MaxTopicNameLen {
		return fmt.Errorf("%w: topic name length %d not in 1..%d", ErrInvalid, len(name), MaxTopicNameLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: topic name %q is not allowed", ErrInvalid, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w: topic name %q: character %q not in [a-zA-Z0-9._-]", ErrInvalid, name, c)
		}
	}
	return nil
}

func validPartitionCount(n int32) error {
	if n < 1 || n > MaxPartitions {
		return fmt.Errorf("%w: partition count %d not in 1..%d", ErrInvalid, n, MaxPartitions)
	}
	return nil
}

func validConfigs(configs map[string]string) error {
	for k, v := range configs {
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: config %q=%q: empty name or not UTF-8", ErrInvalid, k, v)
		}
	}
	return nil
}

// Validate checks a topic's invariants. Errors wrap ErrInvalid.
func (t Topic) Validate() error {
	if t.ID.IsZero() {
		return fmt.Errorf("%w: topic %q has a zero id", ErrInvalid, t.Name)
	}
	if err := ValidTopicName(t.Name); err != nil {
		return err
	}
	if err := validPartitionCount(t.Partitions); err != nil {
		return fmt.Errorf("topic %q: %w", t.Name, err)
	}
	if err := validConfigs(t.Configs); err != nil {
		return fmt.Errorf("topic %q: %w", t.Name, err)
	}
	if t.CreatedMs < 0 {
		return fmt.Errorf("%w: topic %q: created_ms %d < 0", ErrInvalid, t.Name, t.CreatedMs)
	}
	return nil
}

// Validate checks an index entry's invariants. Errors wrap ErrInvalid.
func (e IndexEntry) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: index entry %d..%d: %s", ErrInvalid, e.BaseOffset, e.LastOffset, fmt.Sprintf(format, args...))
	}
	switch {
	case e.Kind != EntryChunk && e.Kind != EntrySegment:
		return bad("unknown kind %d", e.Kind)
	case e.Kind == EntryChunk && e.DataBytes != 0:
		return bad("chunk entry with data bytes %d", e.DataBytes)
	case e.Kind == EntrySegment && e.StoredBase != e.BaseOffset:
		return bad("segment entry stores offsets from %d, not at their absolute offset", e.StoredBase)
	case e.Kind == EntrySegment && (e.DataBytes <= 0 || e.DataBytes > e.Pos):
		return bad("segment entry data bytes %d not in 1..pos %d", e.DataBytes, e.Pos)
	case e.BaseOffset < 0:
		return bad("negative base offset")
	case e.LastOffset < e.BaseOffset:
		return bad("last offset before base offset")
	case e.ObjectKey == "" || !utf8.ValidString(e.ObjectKey):
		return bad("object key empty or not UTF-8")
	case e.Pos < 0:
		return bad("negative pos %d", e.Pos)
	case e.Size <= 0:
		return bad("size %d must be > 0", e.Size)
	case e.Pos > maxOffset-e.Size:
		return bad("pos %d + size %d overflows", e.Pos, e.Size)
	case e.StoredBase < 0:
		return bad("negative stored base %d", e.StoredBase)
	case e.StoredBase > maxOffset-(e.LastOffset-e.BaseOffset):
		return bad("stored base %d overflows", e.StoredBase)
	case e.Batches < 1:
		return bad("batches %d must be >= 1", e.Batches)
	case int64(e.Batches) > e.Records():
		return bad("%d batches cannot cover %d offsets", e.Batches, e.Records())
	case e.CommittedMs < 0:
		return bad("negative committed_ms")
	}
	return nil
}

// Validate checks a partition state's invariants. Errors wrap ErrInvalid.
func (s PartitionState) Validate() error {
	switch {
	case s.LogStartOffset < 0:
		return fmt.Errorf("%w: partition state: negative log start offset %d", ErrInvalid, s.LogStartOffset)
	case s.NextOffset < s.LogStartOffset:
		return fmt.Errorf("%w: partition state: next offset %d before log start offset %d", ErrInvalid, s.NextOffset, s.LogStartOffset)
	}
	for pid, first := range s.Txns {
		if pid < 0 || first < 0 || first >= s.NextOffset {
			return fmt.Errorf("%w: partition state: open transaction of producer %d at %d out of range (next offset %d)", ErrInvalid, pid, first, s.NextOffset)
		}
	}
	for pid, p := range s.Producers {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: partition state: producer %d: %s", ErrInvalid, pid, fmt.Sprintf(format, args...))
		}
		switch {
		case pid < 0:
			return bad("negative producer id")
		case p == nil:
			return bad("null state")
		case p.Epoch < 0:
			return bad("negative epoch %d", p.Epoch)
		case p.EndedTxn < 0:
			return bad("negative ended transaction %d", p.EndedTxn)
		case len(p.Batches) > MaxProducerBatches:
			return bad("%d batches, at most %d are kept", len(p.Batches), MaxProducerBatches)
		case p.LastMs < 0:
			return bad("negative last_ms")
		}
		for _, b := range p.Batches {
			if b.FirstSeq < 0 || b.LastSeq < 0 || b.BaseOffset < 0 || b.BaseOffset >= s.NextOffset {
				return bad("batch %+v out of range (next offset %d)", b, s.NextOffset)
			}
		}
	}
	return nil
}

// DecodeTopic decodes and validates the value of a topics/<name> key. Errors
// wrap ErrCorruptValue and name the key.
func DecodeTopic(key string, data []byte) (Topic, error) {
	var t Topic
	if err := decodeStrict(data, &t); err != nil {
		return Topic{}, corrupt(key, err)
	}
	if err := t.Validate(); err != nil {
		return Topic{}, corrupt(key, err)
	}
	return t, nil
}

// DecodeIndexEntry decodes and validates the value of an index key. Errors
// wrap ErrCorruptValue and name the key.
func DecodeIndexEntry(key string, data []byte) (IndexEntry, error) {
	var e IndexEntry
	if err := decodeStrict(data, &e); err != nil {
		return IndexEntry{}, corrupt(key, err)
	}
	if err := e.Validate(); err != nil {
		return IndexEntry{}, corrupt(key, err)
	}
	return e, nil
}

// DecodePartitionState decodes and validates the value of a partition state
// key. Errors wrap ErrCorruptValue and name the key. Revision is left 0; the
// caller sets it from the key's ModRevision.
func DecodePartitionState(key string, data []byte) (PartitionState, error) {
	var s PartitionState
	if err := decodeStrict(data, &s); err != nil {
		return PartitionState{}, corrupt(key, err)
	}
	if err := s.Validate(); err != nil {
		return PartitionState{}, corrupt(key, err)
	}
	return s, nil
}

func corrupt(key string, err error) error {
	return fmt.Errorf("%w: key %q: %v", ErrCorruptValue, key, err)
}

// decodeStrict decodes exactly one JSON object with only known fields.
func decodeStrict(data []byte, v any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

func encodeTopic(t Topic) ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

func encodeIndexEntry(e IndexEntry) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

func encodePartitionState(s PartitionState) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(s)
}
