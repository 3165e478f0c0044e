package metastore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shale-dev/shale/metastore"
)

// Example_commit shows the write path's use of the metastore: read the
// partition state, build the commit for a chunk that was uploaded, commit it,
// and retry from a fresh read on ErrConflict.
func Example_commit() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "shale-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	etcd, err := metastore.StartEmbedded(ctx, metastore.EmbedConfig{Dir: dir, Fast: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer etcd.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), Logger: zap.NewNop()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()

	store := metastore.New(cli, "/shale")
	topic, err := store.CreateTopic(ctx, "orders", 3, map[string]string{"retention.ms": "-1"})
	if err != nil {
		fmt.Println(err)
		return
	}

	// A chunk of 5 records for partition 2 sits in an uploaded object at
	// bytes [0, 512). Offsets are assigned here, at commit.
	for attempt := 0; attempt < 10; attempt++ {
		st, err := store.PartitionState(ctx, topic.ID, 2)
		if err != nil {
			fmt.Println(err)
			return
		}
		entry := metastore.IndexEntry{
			BaseOffset: st.NextOffset,
			LastOffset: st.NextOffset + 4,
			ObjectKey:  "objects/" + topic.ID.String() + "/0001.obj",
			Size:       512,
			Batches:    1,
		}
		next := st.Clone()
		next.NextOffset = entry.LastOffset + 1
		_, err = store.CommitChunks(ctx, []metastore.ChunkCommit{{
			TopicID:          topic.ID,
			Partition:        2,
			ExpectedRevision: st.Revision,
			Entries:          []metastore.IndexEntry{entry},
			New:              next,
		}})
		if errors.Is(err, metastore.ErrConflict) && !errors.Is(err, metastore.ErrTopicNotFound) {
			continue // another agent committed first: re-read and recompute
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("committed offsets %d..%d\n", entry.BaseOffset, entry.LastOffset)
		break
	}

	found, err := store.FindEntries(ctx, topic.ID, 2, 3, 10)
	if err != nil {
		fmt.Println(err)
		return
	}
	st, _ := store.PartitionState(ctx, topic.ID, 2)
	fmt.Printf("offset 3 is in %d..%d; next offset %d\n", found[0].BaseOffset, found[0].LastOffset, st.NextOffset)
	// Output:
	// committed offsets 0..4
	// offset 3 is in 0..4; next offset 5
}
