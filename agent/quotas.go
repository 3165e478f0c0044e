package agent

// Client quotas (KIP-546 configuration, KIP-13/KIP-219 enforcement).
//
// Quotas live in etcd (metastore: client-quotas/), set by
// AlterClientQuotas and read by DescribeClientQuotas on any agent; every
// agent keeps them in memory, fed by a watch (and reloaded at once after
// an AlterClientQuotas it served).
//
// Enforced: producer_byte_rate and consumer_byte_rate, per agent, as Kafka
// enforces them per broker: each agent measures the bytes it takes from
// and gives to a client, so a client spreading its partitions over N
// agents may move up to N x the rate (Kafka's own semantics with N
// brokers; dividing the rate by the live agents would starve a client that
// talks to one agent). The quota that applies to a connection is Kafka's
// first match in this order: (user, client-id), (user, default
// client-id), (user), (default user, client-id), (default user, default
// client-id), (default user), (client-id), (default client-id). The user
// is the SASL principal's name, "ANONYMOUS" without authentication. Bytes
// are counted per matched entity with the client's own names in place of
// defaults (a default quota is every client's own, as in Kafka).
//
// The rate is Kafka's: bytes over 11 samples of one second, over at least
// 10 s. A request that takes it above the quota gets
// throttle_time_ms = (rate - quota) / quota x window (at most 11 s) in its
// answer, and the connection is muted for that long: the agent reads no
// further request from it (KIP-219: answered at once, then muted). A
// Produce is appended all the same; a throttled Fetch answers no records
// (its bytes are not counted, as Kafka unrecords them) and no new fetch
// session, and the consumer fetches again once the throttle ends.
//
// request_percentage, controller_mutation_rate (user, client-id) and
// connection_creation_rate (ip) are stored and described, not enforced.

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shale-dev/shale/metastore"
)

// Quota keys, as Kafka's QuotaConfig names them.
const (
	quotaProducerByteRate       = "producer_byte_rate"
	quotaConsumerByteRate       = "consumer_byte_rate"
	quotaRequestPercentage      = "request_percentage"
	quotaControllerMutationRate = "controller_mutation_rate"
	quotaConnectionCreationRate = "connection_creation_rate"
)

// Entity types.
const (
	quotaUser     = "user"
	quotaClientID = "client-id"
	quotaIP       = "ip"
)

// Kafka's quota.window.num and quota.window.size.seconds.
const (
	quotaSamples = 11
	quotaSample  = time.Second
)

// quotas is an agent's copy of the client quotas and its byte rates.
type quotas struct {
	mu     sync.Mutex
	rev    int64
	values map[string]map[string]float64 // by metastore.QuotaEntityKey
	rates  map[string]*byteRate          // by quota key + metric entity
	reload chan struct{}
	// any is whether values holds a quota: without one, every Produce
	// and Fetch skips the lock shared by all connections.
	any atomic.Bool
}

func newQuotas() *quotas {
	return &quotas{values: map[string]map[string]float64{}, rates: map[string]*byteRate{}, reload: make(chan struct{}, 1)}
}

// store installs quotas read at revision rev unless newer ones are in.
func (q *quotas) store(list []metastore.ClientQuota, rev int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if rev < q.rev {
		return
	}
	q.rev = rev
	q.values = make(map[string]map[string]float64, len(list))
	for _, c := range list {
		q.values[metastore.QuotaEntityKey(c.Entity)] = c.Values
	}
	if len(q.values) == 0 {
		q.rates = map[string]*byteRate{} // nothing to enforce: drop the meters
	}
	q.any.Store(len(q.values) > 0)
}

// startQuotas loads the quotas and keeps them fresh until the server closes.
func (s *Server) startQuotas(ctx context.Context) error {
	list, rev, err := s.meta.ListQuotas(ctx)
	if err != nil {
		return err
	}
	s.quotas.store(list, rev)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ch := s.meta.WatchQuotas(s.ctx, rev)
		for {
			select {
			case <-s.ctx.Done():
				return
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-s.quotas.reload:
			}
			for len(ch) > 0 {
				<-ch
			}
			s.loadQuotas(s.ctx)
		}
	}()
	return nil
}

// loadQuotas reads the quotas from etcd once and installs them; on failure
// the watcher retries.
func (s *Server) loadQuotas(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, rev, err := s.meta.ListQuotas(rctx)
	if err != nil {
		s.log.Warn("reload client quotas failed; retrying on the next change", "err", err)
		select {
		case s.quotas.reload <- struct{}{}:
		default:
		}
		return
	}
	s.quotas.store(list, rev)
}

// quotaUserOf is the user a connection's quotas are looked up by: the
// principal's name, "ANONYMOUS" without authentication.
func quotaUserOf(rc *reqCtx) string {
	if rc == nil || rc.conn == nil || rc.conn.auth.principal == "" {
		return "ANONYMOUS"
	}
	p := rc.conn.auth.principal
	if i := strings.IndexByte(p, ':'); i >= 0 {
		p = p[i+1:]
	}
	return p
}

// resolve returns the quota (bytes/s) of key that applies to (user,
// clientID) and the meter name its bytes count under; ok is false when no
// quota applies. q.mu must be held.
func (q *quotas) resolveLocked(key, user, clientID string) (bound float64, meter string, ok bool) {
	if len(q.values) == 0 {
		return 0, "", false
	}
	u, c := &user, &clientID
	var dflt *string // the type's default entity
	for _, l := range []struct {
		user, client *string
		hasU, hasC   bool
	}{
		{u, c, true, true}, {u, dflt, true, true}, {u, nil, true, false},
		{dflt, c, true, true}, {dflt, dflt, true, true}, {dflt, nil, true, false},
		{nil, c, false, true}, {nil, dflt, false, true},
	} {
		var entity []metastore.QuotaEntityPart
		meter := key
		if l.hasU {
			entity = append(entity, metastore.QuotaEntityPart{Type: quotaUser, Name: l.user})
			meter += "|u=" + user
		}
		if l.hasC {
			entity = append(entity, metastore.QuotaEntityPart{Type: quotaClientID, Name: l.client})
			meter += "|c=" + clientID
		}
		if v, found := q.values[metastore.QuotaEntityKey(entity)][key]; found {
			return v, meter, true
		}
	}
	return 0, "", false
}

// throttle records n bytes of key (producer_byte_rate or
// consumer_byte_rate) for a connection and returns how long it is
// throttled (0: within its quota). With unrecord, bytes that cause a
// throttle are not counted (a throttled fetch answers none of them).
func (q *quotas) throttle(rc *reqCtx, key string, n int, now time.Time, unrecord bool) time.Duration {
	if q == nil || n <= 0 || !q.any.Load() {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	bound, meter, ok := q.resolveLocked(key, quotaUserOf(rc), rc.clientID)
	if !ok || bound <= 0 {
		return 0
	}
	r := q.rates[meter]
	if r == nil {
		if len(q.rates) >= quotaSweepEvery && len(q.rates)%quotaSweepEvery == 0 {
			q.sweepLocked(now)
		}
		r = &byteRate{}
		q.rates[meter] = r
	}
	r.add(now, float64(n))
	rate, window := r.rate(now)
	if rate <= bound {
		return 0
	}
	d := time.Duration((rate - bound) / bound * float64(window))
	if unrecord {
		r.add(now, -float64(n))
	}
	return min(d, quotaSamples*quotaSample)
}

// byteRate is Kafka's Rate over quotaSamples samples of quotaSample.
// quotaSweepEvery: each time the meters reach a multiple of it, those
// idle for a whole window are dropped (Kafka expires a client's quota
// sensors once inactive), so a stream of new client IDs under a default
// quota cannot grow the agent's memory without bound.
const quotaSweepEvery = 1024

// sweepLocked drops the meters with no sample in the window. q.mu must be
// held.
func (q *quotas) sweepLocked(now time.Time) {
	for m, r := range q.rates {
		if r.idle(now) {
			delete(q.rates, m)
		}
	}
}

type byteRate struct {
	start [quotaSamples]int64 // sample start, Unix ns (0: unused)
	bytes [quotaSamples]float64
}

func (r *byteRate) add(now time.Time, n float64) {
	t := now.UnixNano()
	slot := int((t / int64(quotaSample)) % quotaSamples)
	s := t - t%int64(quotaSample)
	if r.start[slot] != s {
		r.start[slot], r.bytes[slot] = s, 0
	}
	r.bytes[slot] += n
}

// idle reports whether r has no sample in the window.
func (r *byteRate) idle(now time.Time) bool {
	t := now.UnixNano()
	for _, s := range r.start {
		if s != 0 && s > t-quotaSamples*int64(quotaSample) {
			return false
		}
	}
	return true
}

// rate returns bytes per second over the live samples and the window it
// measured over: from the oldest sample's start, at least
// quotaSamples-1 samples long (Kafka's Rate.windowSize).
func (r *byteRate) rate(now time.Time) (float64, time.Duration) {
	t := now.UnixNano()
	oldest := t
	var sum float64
	for i := range r.start {
		if r.start[i] != 0 && r.start[i] > t-quotaSamples*int64(quotaSample) {
			sum += r.bytes[i]
			oldest = min(oldest, r.start[i])
		}
	}
	window := max(time.Duration(t-oldest), (quotaSamples-1)*quotaSample)
	return sum / window.Seconds(), window
}
