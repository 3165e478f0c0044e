package metastore_test

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/shale-dev/shale/metastore"
)

// TestCreateTopicValidation proves names and partition counts follow Kafka's
// rules and nothing is written for a rejected topic.
func TestCreateTopicValidation(t *testing.T) {
	s, cli, _ := newStore(t)
	ctx := testCtx(t)
	tests := []struct {
		name       string
		topic      string
		partitions int32
		wantErr    error
	}{
		{"simple", "orders", 3, nil},
		{"all legal characters", "a.B_c-9", 1, nil},
		{"249 characters", strings.Repeat("x", 249), 1, nil},
		{"max partitions", "big", metastore.MaxPartitions, nil},
		{"empty", "", 1, metastore.ErrInvalid},
		{"dot", ".", 1, metastore.ErrInvalid},
		{"dot dot", "..", 1, metastore.ErrInvalid},
		{"slash", "a/b", 1, metastore.ErrInvalid},
		{"space", "a b", 1, metastore.ErrInvalid},
		{"non-ascii", "caf\u00e9", 1, metastore.ErrInvalid},
		{"250 characters", strings.Repeat("x", 250), 1, metastore.ErrInvalid},
		{"zero partitions", "zero", 0, metastore.ErrInvalid},
		{"negative partitions", "neg", -1, metastore.ErrInvalid},
		{"too many partitions", "huge", metastore.MaxPartitions + 1, metastore.ErrInvalid},
	}
	wantTopics := int64(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := s.CreateTopic(ctx, tt.topic, tt.partitions, map[string]string{"retention.ms": "-1"})
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("CreateTopic(%q, %d) err = %v, want %v", tt.topic, tt.partitions, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			wantTopics++
			if tp.ID.IsZero() || tp.Name != tt.topic || tp.Partitions != tt.partitions || tp.Revision == 0 {
				t.Fatalf("CreateTopic returned %+v", tp)
			}
		})
	}
	if got := countKeys(t, cli, testNS+"/topics/"); got != wantTopics {
		t.Fatalf("%d topic keys, want %d", got, wantTopics)
	}
	if got := countKeys(t, cli, testNS+"/topic-ids/"); got != wantTopics {
		t.Fatalf("%d topic-id keys, want %d", got, wantTopics)
	}
}

// TestTopicCRUD proves create, duplicate create, get by name and ID, list
// order, and the not-found errors.
func TestTopicCRUD(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := testCtx(t)
	b, err := s.CreateTopic(ctx, "b", 2, map[string]string{"cleanup.policy": "delete"})
	if err != nil {
		t.Fatal(err)
	}
	a := mustCreateTopic(t, s, "a", 1)
	if a.ID == b.ID {
		t.Fatal("two topics share an ID")
	}
	_, err = s.CreateTopic(ctx, "b", 5, nil)
	wantErr(t, err, metastore.ErrTopicExists)

	got, err := s.GetTopic(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != b.ID || got.Partitions != 2 || got.Configs["cleanup.policy"] != "delete" || got.Revision != b.Revision || got.CreatedMs != b.CreatedMs {
		t.Fatalf("GetTopic = %+v, want %+v", got, b)
	}
	byID, err := s.GetTopicByID(ctx, b.ID)
	if err != nil || byID.Name != "b" {
		t.Fatalf("GetTopicByID = %+v, %v", byID, err)
	}
	list, err := s.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
		t.Fatalf("ListTopics = %+v, want a, b", list)
	}
	_, err = s.GetTopic(ctx, "nope")
	wantErr(t, err, metastore.ErrTopicNotFound)
	_, err = s.GetTopicByID(ctx, metastore.TopicID{1})
	wantErr(t, err, metastore.ErrTopicNotFound)
	_, err = s.DeleteTopic(ctx, "nope")
	wantErr(t, err, metastore.ErrTopicNotFound)
}

// TestUpdateTopic proves the allowed and refused changes.
func TestUpdateTopic(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := testCtx(t)
	orig := mustCreateTopic(t, s, "t", 2)
	tests := []struct {
		name    string
		fn      func(*metastore.Topic) error
		wantErr error
	}{
		{"add config", func(tp *metastore.Topic) error { tp.Configs = map[string]string{"retention.ms": "1000"}; return nil }, nil},
		{"add partitions", func(tp *metastore.Topic) error { tp.Partitions = 4; return nil }, nil},
		{"remove partitions", func(tp *metastore.Topic) error { tp.Partitions = 1; return nil }, metastore.ErrInvalid},
		{"rename", func(tp *metastore.Topic) error { tp.Name = "u"; return nil }, metastore.ErrInvalid},
		{"new id", func(tp *metastore.Topic) error { tp.ID[0]++; return nil }, metastore.ErrInvalid},
		{"too many partitions", func(tp *metastore.Topic) error { tp.Partitions = metastore.MaxPartitions + 1; return nil }, metastore.ErrInvalid},
		{"fn error", func(tp *metastore.Topic) error { return metastore.ErrPartitionMissing }, metastore.ErrPartitionMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.UpdateTopic(ctx, "t", tt.fn)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	got, err := s.GetTopic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != orig.ID || got.Partitions != 4 || got.Configs["retention.ms"] != "1000" {
		t.Fatalf("after updates: %+v", got)
	}
	_, err = s.UpdateTopic(ctx, "missing", func(*metastore.Topic) error { return nil })
	wantErr(t, err, metastore.ErrTopicNotFound)
}

// TestUpdateTopicConcurrent proves the CAS loop loses no update: two
// goroutines with their own clients increment one config 25 times each.
func TestUpdateTopicConcurrent(t *testing.T) {
	s, _, eps := newStore(t)
	ctx := testCtx(t)
	mustCreateTopic(t, s, "t", 1)
	const perWriter = 25
	stores := []*metastore.Store{s, metastore.New(testenvClient(t, eps), testNS)}
	var wg sync.WaitGroup
	errs := make(chan error, len(stores))
	for _, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWriter {
				_, err := st.UpdateTopic(ctx, "t", func(tp *metastore.Topic) error {
					n, _ := strconv.Atoi(tp.Configs["n"])
					if tp.Configs == nil {
						tp.Configs = map[string]string{}
					}
					tp.Configs["n"] = strconv.Itoa(n + 1)
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := s.GetTopic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(perWriter * len(stores)); got.Configs["n"] != want {
		t.Fatalf("n = %s, want %s", got.Configs["n"], want)
	}
}

// TestDeleteTopic proves DeleteTopic removes the topic, its ID key and every
// state and index key of its ID, leaves other topics alone, and that a
// re-created topic starts empty with a new ID.
func TestDeleteTopic(t *testing.T) {
	s, cli, _ := newStore(t)
	ctx := testCtx(t)
	doomed := mustCreateTopic(t, s, "doomed", 3)
	other := mustCreateTopic(t, s, "other", 1)
	for p := range int32(3) {
		mustCommit(t, s, doomed.ID, p, 5, 5)
	}
	mustCommit(t, s, other.ID, 0, 7)
	idHex := doomed.ID.String()
	if n := countKeys(t, cli, testNS+"/index/"+idHex+"/"); n != 6 {
		t.Fatalf("%d index keys before delete, want 6", n)
	}
	if n := countKeys(t, cli, testNS+"/partitions/"+idHex+"/"); n != 3 {
		t.Fatalf("%d state keys before delete, want 3", n)
	}

	got, err := s.DeleteTopic(ctx, "doomed")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != doomed.ID {
		t.Fatalf("DeleteTopic returned %+v", got)
	}
	for _, prefix := range []string{"/index/" + idHex + "/", "/partitions/" + idHex + "/", "/topic-ids/" + idHex, "/topics/doomed"} {
		if n := countKeys(t, cli, testNS+prefix); n != 0 {
			t.Fatalf("%d keys left under %s", n, prefix)
		}
	}
	if n := countKeys(t, cli, testNS+"/index/"+other.ID.String()+"/"); n != 1 {
		t.Fatalf("other topic has %d index keys, want 1", n)
	}
	_, err = s.GetTopic(ctx, "doomed")
	wantErr(t, err, metastore.ErrTopicNotFound)
	_, err = s.GetTopicByID(ctx, doomed.ID)
	wantErr(t, err, metastore.ErrTopicNotFound)

	again := mustCreateTopic(t, s, "doomed", 3)
	if again.ID == doomed.ID {
		t.Fatal("re-created topic reuses the old ID")
	}
	st, err := s.PartitionState(ctx, again.ID, 0)
	if err != nil || st.NextOffset != 0 || st.Revision != 0 {
		t.Fatalf("re-created topic state = %+v, %v", st, err)
	}
	_, err = s.GetTopicByID(ctx, doomed.ID)
	wantErr(t, err, metastore.ErrTopicNotFound)
}
