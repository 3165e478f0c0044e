package agent

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/metastore"
)

// topicCache keeps topics read from etcd for a short TTL, so produce and
// fetch do not read etcd per request. A miss, an expired entry or a
// partition beyond the cached count reads etcd again; a topic deleted in
// etcd disappears from the cache within the TTL (at once on this agent).
type topicCache struct {
	meta *metastore.Store
	ttl  time.Duration

	mu     sync.Mutex
	byName map[string]cachedTopic
	byID   map[metastore.TopicID]string
}

type cachedTopic struct {
	t  metastore.Topic
	at time.Time
}

func newTopicCache(meta *metastore.Store, ttl time.Duration) *topicCache {
	return &topicCache{meta: meta, ttl: ttl, byName: make(map[string]cachedTopic), byID: make(map[metastore.TopicID]string)}
}

// get returns the topic called name (metastore.ErrTopicNotFound if none).
func (c *topicCache) get(ctx context.Context, name string) (metastore.Topic, error) {
	c.mu.Lock()
	ct, ok := c.byName[name]
	c.mu.Unlock()
	if ok && time.Since(ct.at) < c.ttl {
		return ct.t, nil
	}
	return c.load(ctx, name)
}

// getPartition returns the topic if it has the partition, re-reading etcd
// once when the cached count is too small (partitions were just added).
func (c *topicCache) getPartition(ctx context.Context, name string, partition int32) (metastore.Topic, bool, error) {
	t, err := c.get(ctx, name)
	if err != nil {
		return t, false, err
	}
	if partition >= 0 && partition < t.Partitions {
		return t, true, nil
	}
	if partition < 0 {
		return t, false, nil
	}
	if t, err = c.load(ctx, name); err != nil {
		return t, false, err
	}
	return t, partition < t.Partitions, nil
}

// getByID returns the topic with the given ID.
func (c *topicCache) getByID(ctx context.Context, id metastore.TopicID) (metastore.Topic, error) {
	c.mu.Lock()
	name, ok := c.byID[id]
	var ct cachedTopic
	if ok {
		ct, ok = c.byName[name]
	}
	c.mu.Unlock()
	if ok && ct.t.ID == id && time.Since(ct.at) < c.ttl {
		return ct.t, nil
	}
	return c.loadByID(ctx, id)
}

// loadByID reads the topic with the given ID from etcd.
func (c *topicCache) loadByID(ctx context.Context, id metastore.TopicID) (metastore.Topic, error) {
	if t, ok := lookupInternalID(id); ok {
		return metastore.Topic{}, errInternalTopic(t.Name)
	}
	t, err := c.meta.GetTopicByID(ctx, id)
	if err != nil {
		if errors.Is(err, metastore.ErrTopicNotFound) {
			c.mu.Lock()
			delete(c.byID, id)
			c.mu.Unlock()
		}
		return t, err
	}
	c.put(t)
	return t, nil
}

// load reads the topic called name from etcd. An internal topic's name is
// errInternalTopic: the data APIs refuse it.
func (c *topicCache) load(ctx context.Context, name string) (metastore.Topic, error) {
	if _, ok := lookupInternal(name); ok {
		return metastore.Topic{}, errInternalTopic(name)
	}
	t, err := c.meta.GetTopic(ctx, name)
	if err != nil {
		if errors.Is(err, metastore.ErrTopicNotFound) || errors.Is(err, metastore.ErrInvalid) {
			c.forget(name)
		}
		return t, err
	}
	c.put(t)
	return t, nil
}

func (c *topicCache) put(t metastore.Topic) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byName[t.Name]; ok && old.t.ID != t.ID {
		delete(c.byID, old.t.ID)
	}
	c.byName[t.Name] = cachedTopic{t: t, at: time.Now()}
	c.byID[t.ID] = t.Name
}

func (c *topicCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byName[name]; ok {
		delete(c.byID, old.t.ID)
		delete(c.byName, name)
	}
}

// list returns every topic from etcd and refreshes the cache with them.
// Internal topics are not listed (and an etcd topic of an internal name is
// dropped).
func (c *topicCache) list(ctx context.Context) ([]metastore.Topic, error) {
	ts, err := c.meta.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	out := ts[:0]
	for _, t := range ts {
		if _, internal := lookupInternal(t.Name); internal {
			continue // hidden by the internal topic (internal_topics.go)
		}
		c.put(t)
		out = append(out, t)
	}
	return out, nil
}

// liveAgents returns the registered agents, always including this one (its
// registration may be briefly missing while it re-registers).
func (s *Server) liveAgents(ctx context.Context) []metastore.AgentInfo {
	agents, err := s.meta.ListAgents(ctx)
	if err != nil {
		s.log.Warn("list agents failed; reporting only this agent", "err", err)
		agents = nil
	}
	s.mu.Lock()
	self := metastore.AgentInfo{NodeID: s.nodeID, Host: s.host, Port: s.port, Rack: s.cfg.Rack}
	s.mu.Unlock()
	for _, a := range agents {
		if a.NodeID == self.NodeID {
			return agents
		}
	}
	// Keep the list sorted by node ID.
	out := make([]metastore.AgentInfo, 0, len(agents)+1)
	inserted := false
	for _, a := range agents {
		if !inserted && a.NodeID > self.NodeID {
			out = append(out, self)
			inserted = true
		}
		out = append(out, a)
	}
	if !inserted {
		out = append(out, self)
	}
	return out
}

// leaderFor picks the agent reported as a partition's leader. Any agent
// serves any partition; the choice only spreads client connections, so
// consecutive partitions of a topic go to consecutive agents.
func leaderFor(agents []metastore.AgentInfo, topic string, partition int32) int32 {
	if len(agents) == 0 {
		return -1
	}
	h := fnv.New32a()
	h.Write([]byte(topic))
	i := (uint64(h.Sum32()) + uint64(partition)) % uint64(len(agents))
	return agents[i].NodeID
}

// controllerID is the node reported as controller: the lowest live node ID,
// so every agent gives the same answer.
func controllerID(agents []metastore.AgentInfo) int32 {
	if len(agents) == 0 {
		return -1
	}
	return agents[0].NodeID
}

// requestTopic resolves the topic a Produce or Fetch request names: by ID
// in the topic-ID versions (v13+), else by name.
func (s *Server) requestTopic(ctx context.Context, op string, byID bool, id [16]byte, name string) (metastore.Topic, *kerr.Error) {
	var (
		t   metastore.Topic
		err error
	)
	if byID {
		t, err = s.topics.getByID(ctx, metastore.TopicID(id))
		if errors.Is(err, metastore.ErrTopicNotFound) {
			return t, kerr.UnknownTopicID
		}
	} else {
		t, err = s.topics.get(ctx, name)
		if errors.Is(err, metastore.ErrInvalid) {
			return t, kerr.UnknownTopicOrPartition
		}
	}
	if err != nil {
		return t, kerr.TypedErrorForCode(errCode(s.log, op+": get topic", err))
	}
	return t, nil
}
