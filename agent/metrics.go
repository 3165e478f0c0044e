package agent

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// groupLagCollector reports, at scrape time, the lag of every partition
// committed by the groups this agent coordinates: the partition's end
// offset minus the committed offset. Committed offsets are read from etcd
// (bounded by a short timeout); end offsets from the engine's cached view.
type groupLagCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func newGroupLagCollector(s *Server) *groupLagCollector {
	return &groupLagCollector{s: s, desc: prometheus.NewDesc("shale_group_lag",
		"Records a consumer group has not committed yet, per partition (groups coordinated by this agent).",
		[]string{"group", "topic", "partition"}, nil)}
}

func (c *groupLagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *groupLagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, g := range c.s.groups().names() {
		offs, err := c.s.meta.FetchGroupOffsets(ctx, g)
		if err != nil {
			continue
		}
		for _, o := range offs {
			t, err := c.s.topics.get(ctx, o.Topic)
			if err != nil || t.ID != o.TopicID {
				continue
			}
			_, next, err := c.s.eng.CachedOffsets(ctx, t.ID, o.Partition)
			if err != nil {
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(max(next-o.Offset, 0)),
				g, o.Topic, strconv.Itoa(int(o.Partition)))
		}
	}
}

// names returns the groups this agent coordinates.
func (c *coordinator) names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.groups))
	for n := range c.groups {
		out = append(out, n)
	}
	return out
}

// Ready reports whether the agent serves: it listens, is registered in etcd
// under a live lease, and etcd answers.
func (s *Server) Ready(ctx context.Context) error {
	sess := s.currentSession()
	if sess == nil {
		return errNotRegistered
	}
	select {
	case <-sess.Done():
		return errNotRegistered
	default:
	}
	if _, err := s.meta.Revision(ctx); err != nil {
		return err
	}
	return nil
}

var errNotRegistered = errors.New("agent: not registered in etcd (starting, or its lease was lost)")
