package cost

import (
	"sort"
	"strings"
)

// gb is the billing GB: 2^30 bytes.
const gb = 1 << 30

// DaysPerMonth turns daily request counts into a month's.
const DaysPerMonth = 30

// Ref is one index entry's claim on an object: Bytes of topic Topic's
// data live in object Key.
type Ref struct {
	Topic string
	Key   string
	Bytes int64
}

// TopicIndex is what etcd says about one topic.
type TopicIndex struct {
	Name       string
	Partitions int32
	// Records is the offsets between log start and next offset.
	Records int64
	// LogicalBytes is the record batch bytes the index entries cover.
	LogicalBytes int64
	// IndexKeys counts index entries; Segments those that are compacted
	// segments.
	IndexKeys, Segments int
	// DroppedOffsets is the offsets below the log start (retention,
	// DeleteRecords).
	DroppedOffsets int64
}

// Object is one object of the bucket listing.
type Object struct {
	Key  string
	Size int64
}

// Requests are the cluster's object store requests per day; Known is
// false when no agent's metrics were read.
type Requests struct {
	Known             bool     `json:"known"`
	PutPerDay         float64  `json:"put_per_day"`
	GetPerDay         float64  `json:"get_per_day"`
	EgressPerDay      float64  `json:"egress_bytes_per_day,omitempty"`
	Source            string   `json:"source"`
	AgentsScraped     int      `json:"agents_scraped"`
	AgentsUnreachable []string `json:"agents_unreachable,omitempty"`
	// Lifecycle is the scraped agents' lifecycle counters, since each
	// started (zero when none was scraped).
	Lifecycle Lifecycle `json:"lifecycle"`
}

// Usage is one line of the report: a topic, the garbage or the total.
type Usage struct {
	Name         string  `json:"name"`
	LogicalBytes int64   `json:"logical_bytes"`
	BucketBytes  int64   `json:"bucket_bytes"`
	Objects      int     `json:"objects"`
	IndexKeys    int     `json:"index_keys"`
	Segments     int     `json:"compacted_segments"`
	Dropped      int64   `json:"offsets_dropped"`
	PutPerDay    float64 `json:"put_per_day"`
	GetPerDay    float64 `json:"get_per_day"`
	Cost         Monthly `json:"usd_per_month"`
}

// Monthly is an estimated bill in US dollars per month.
type Monthly struct {
	Storage  float64 `json:"storage"`
	Requests float64 `json:"requests"`
	Egress   float64 `json:"egress,omitempty"`
	Total    float64 `json:"total"`
}

// Report is the whole estimate.
type Report struct {
	Prices   Prices   `json:"prices"`
	Requests Requests `json:"requests"`
	Topics   []Usage  `json:"topics"`
	// Garbage is the listed objects no index entry references: uploads
	// never committed, data replaced by compaction or dropped by
	// retention, awaiting garbage collection.
	Garbage Usage `json:"garbage"`
	// Manifests is the recovery manifests (objects under MetaPrefix),
	// which no index entry references but `shale recover` needs.
	Manifests Usage `json:"manifests"`
	Total     Usage `json:"total"`
	// IndexKeysBeforeCompaction is the index keys there would be without
	// the compactions the scraped agents did since they started (0 when no
	// agent was scraped).
	IndexKeysBeforeCompaction int `json:"index_keys_before_compaction,omitempty"`
}

// MetaPrefix is where shale keeps objects that are not record data (the
// recovery manifests, package manifest).
const MetaPrefix = "meta/"

// Compute prices a bucket. Each listed object's size is split among the
// topics whose entries reference it, in proportion to the bytes they
// reference (so an object shared by topics counts once in the total and
// once in each topic's Objects); an object no Ref names is garbage; a Ref
// to an object the listing lacks (committed after the listing) adds
// nothing to bucket bytes. Request rates carry no topic: a topic gets the
// cluster's rate times its share of the referenced bucket bytes, and
// garbage none. Egress, when requested, is priced on the whole rate.
func Compute(topics []TopicIndex, refs []Ref, objects []Object, req Requests, p Prices) Report {
	perObj := map[string]map[string]int64{} // key -> topic -> referenced bytes
	for _, r := range refs {
		m := perObj[r.Key]
		if m == nil {
			m = map[string]int64{}
			perObj[r.Key] = m
		}
		m[r.Topic] += r.Bytes
	}
	bucket := map[string]float64{}
	objs := map[string]int{}
	var garbage Usage
	garbage.Name = "(unreferenced)"
	manifests := Usage{Name: "(manifests)"}
	var referenced int64
	for _, o := range objects {
		if strings.HasPrefix(o.Key, MetaPrefix) {
			manifests.Objects++
			manifests.BucketBytes += o.Size
			continue
		}
		m := perObj[o.Key]
		var sum int64
		for _, b := range m {
			sum += b
		}
		if len(m) == 0 {
			garbage.Objects++
			garbage.BucketBytes += o.Size
			continue
		}
		referenced += o.Size
		for t, b := range m {
			objs[t]++
			if sum > 0 {
				bucket[t] += float64(o.Size) * float64(b) / float64(sum)
			} else {
				bucket[t] += float64(o.Size) / float64(len(m))
			}
		}
	}
	rep := Report{Prices: p, Requests: req, Topics: []Usage{}}
	total := Usage{Name: "TOTAL", Objects: len(objects)}
	// Rounded shares; the largest takes the rounding error, so that the
	// topics' bytes add up to the referenced bytes.
	shares := make([]int64, len(topics))
	var tb int64
	largest := -1
	for i, t := range topics {
		shares[i] = int64(bucket[t.Name] + 0.5)
		tb += shares[i]
		if largest < 0 || shares[i] > shares[largest] {
			largest = i
		}
	}
	if largest >= 0 && shares[largest] > 0 {
		shares[largest] += referenced - tb
	}
	for i, t := range topics {
		u := Usage{Name: t.Name, LogicalBytes: t.LogicalBytes, Objects: objs[t.Name],
			IndexKeys: t.IndexKeys, Segments: t.Segments, Dropped: t.DroppedOffsets}
		u.BucketBytes = shares[i]
		if referenced > 0 && req.Known {
			share := float64(u.BucketBytes) / float64(referenced)
			u.PutPerDay, u.GetPerDay = req.PutPerDay*share, req.GetPerDay*share
		}
		u.Cost = price(u.BucketBytes, u.PutPerDay, u.GetPerDay, 0, p)
		total.LogicalBytes += u.LogicalBytes
		total.IndexKeys += u.IndexKeys
		total.Segments += u.Segments
		total.Dropped += u.Dropped
		rep.Topics = append(rep.Topics, u)
	}
	sort.Slice(rep.Topics, func(i, j int) bool { return rep.Topics[i].Name < rep.Topics[j].Name })
	garbage.Cost = price(garbage.BucketBytes, 0, 0, 0, p)
	rep.Garbage = garbage
	manifests.Cost = price(manifests.BucketBytes, 0, 0, 0, p)
	rep.Manifests = manifests
	total.BucketBytes = referenced + garbage.BucketBytes + manifests.BucketBytes
	if req.Known {
		total.PutPerDay, total.GetPerDay = req.PutPerDay, req.GetPerDay
	}
	total.Cost = price(total.BucketBytes, total.PutPerDay, total.GetPerDay, req.EgressPerDay, p)
	rep.Total = total
	if req.Known {
		rep.IndexKeysBeforeCompaction = req.Lifecycle.KeysBefore(total.IndexKeys)
	}
	return rep
}

// price is the monthly bill of storing bytes and serving the given daily
// requests and egress bytes.
func price(bytes int64, putPerDay, getPerDay, egressPerDay float64, p Prices) Monthly {
	m := Monthly{
		Storage:  float64(bytes) / gb * p.StorageGBMonth,
		Requests: (putPerDay*p.PutPer1000 + getPerDay*p.GetPer1000) / 1000 * DaysPerMonth,
		Egress:   egressPerDay * DaysPerMonth / gb * p.EgressGB,
	}
	m.Total = m.Storage + m.Requests + m.Egress
	return m
}
