package agent

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shale-dev/shale/metrics"
	"github.com/shale-dev/shale/share"
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

// countShareAcks counts acknowledgements applied, by type.
func (s *Server) countShareAcks(batches []share.AckBatch) {
	for t, n := range share.CountAcks(batches) {
		s.cfg.Metrics.ShareAcknowledged(t.String(), n)
	}
}

// groupsCollector reports, at scrape time, the groups this agent
// coordinates and their members, by type (classic, consumer, share).
type groupsCollector struct {
	s              *Server
	groups, member *prometheus.Desc
}

func newGroupsCollector(s *Server) *groupsCollector {
	return &groupsCollector{s: s,
		groups: prometheus.NewDesc("shale_groups", "Groups this agent coordinates, by type (classic, consumer: KIP-848, share: KIP-932).", []string{"type"}, nil),
		member: prometheus.NewDesc("shale_group_members", "Members of the groups this agent coordinates, by group type.", []string{"type"}, nil)}
}

func (c *groupsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.groups; ch <- c.member }

func (c *groupsCollector) Collect(ch chan<- prometheus.Metric) {
	types := []string{metrics.GroupClassic, metrics.GroupConsumer, metrics.GroupShare}
	groups, members := map[string]int{}, map[string]int{}
	for _, g := range c.s.groups().all() {
		typ, n := g.typeAndMembers()
		groups[typ]++
		members[typ] += n
	}
	for _, t := range types {
		ch <- prometheus.MustNewConstMetric(c.groups, prometheus.GaugeValue, float64(groups[t]), t)
		ch <- prometheus.MustNewConstMetric(c.member, prometheus.GaugeValue, float64(members[t]), t)
	}
}

// all returns the groups this agent coordinates.
func (c *coordinator) all() []*group {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		out = append(out, g)
	}
	return out
}

// typeAndMembers returns the group's type, as the metrics name it, and
// its member count.
func (g *group) typeAndMembers() (string, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.share != nil:
		return metrics.GroupShare, len(g.share.members)
	case g.cg != nil:
		return metrics.GroupConsumer, len(g.cg.members)
	}
	return metrics.GroupClassic, len(g.members)
}
