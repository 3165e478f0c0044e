package icetable

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
)

// TopicStatus is a topic's table against its log (`shale table status`).
type TopicStatus struct {
	Topic    string
	Mode     Mode
	Location string // the table's location; "" before the first pass
	// Materialized and End sum, over partitions, the first offset not in
	// the table and the last stable offset: Lag = End - Materialized
	// offsets (records, transaction markers and aborted records) are not
	// in the table yet.
	Materialized, End, Lag int64
	// LagTime is how long ago the current snapshot was committed when
	// Lag > 0 (records since then wait for the next pass); 0 caught up;
	// -1 lagging with no snapshot yet.
	LagTime   time.Duration
	Rows      int64 // total-records of the current snapshot
	Files     int64 // total-data-files of the current snapshot
	Snapshots int   // snapshots in the metadata
	Skipped   int64 // offsets retention deleted before they were materialized
	// Raw counts json table rows whose value is in _raw (not a JSON
	// object, or a field whose type conflicts with its column).
	Raw int64
	// TableMode is the mode the table was created in ("" before the
	// first pass); when it is not Mode, the job fails the topic
	// (ErrModeChanged).
	TableMode Mode
}

// Status reads a topic's table status (read-only).
func Status(ctx context.Context, store s3tier.Store, meta *metastore.Store, t metastore.Topic, now time.Time) (TopicStatus, error) {
	st := TopicStatus{Topic: t.Name, Mode: ModeOf(t.Configs)}
	states, err := meta.PartitionStates(ctx, t.ID)
	if err != nil {
		return st, err
	}
	for p := range t.Partitions {
		st.End += states[p].LastStableOffset()
	}
	tbl, err := Load(ctx, store, meta, t)
	if errors.Is(err, ErrNoTable) {
		st.Lag = st.End
		if st.Lag > 0 {
			st.LagTime = -1 // never committed
		}
		return st, nil
	}
	if err != nil {
		return st, err
	}
	h := &handle{topic: t, tbl: tbl}
	prog, err := h.progress()
	if err != nil {
		return st, err
	}
	st.Location = tbl.Location()
	st.Snapshots = len(tbl.Metadata().Snapshots())
	st.Skipped = prog.Skipped
	st.Raw = prog.Raw
	st.TableMode = h.mode()
	for p := range t.Partitions {
		st.Materialized += max(prog.Offsets[p], states[p].LogStartOffset)
	}
	st.Lag = max(st.End-st.Materialized, 0)
	if snap := tbl.CurrentSnapshot(); snap != nil {
		if snap.Summary != nil {
			st.Rows, _ = strconv.ParseInt(snap.Summary.Properties["total-records"], 10, 64)
			st.Files, _ = strconv.ParseInt(snap.Summary.Properties["total-data-files"], 10, 64)
		}
		if st.Lag > 0 {
			st.LagTime = max(now.Sub(time.UnixMilli(snap.TimestampMs)), 0)
		}
	} else if st.Lag > 0 {
		st.LagTime = -1 // never committed
	}
	return st, nil
}
