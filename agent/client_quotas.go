package agent

// DescribeClientQuotas (key 48) and AlterClientQuotas (key 49): v0-v1
// (KIP-546), checked as Kafka's controller checks them
// (ClientQuotaControlManager): entity types user, client-id and ip, a
// null name for the type's default, ip alone (a valid address or
// resolvable host, or the default); keys producer_byte_rate and
// consumer_byte_rate (whole numbers), request_percentage and
// controller_mutation_rate for user and client-id entities,
// connection_creation_rate (a whole number) for ip; every value above 0.
// A bad entry is INVALID_REQUEST with Kafka's message and changes
// nothing; the other entries of the request still apply. Describe's
// filter: per component, match type 0 (exact: the named entity), 1 (the
// type's default) or 2 (any entity of the type, default included, as
// Kafka's controller matches it); strict keeps entities with no other
// type. Alter needs ALTER_CONFIGS on the cluster, Describe
// DESCRIBE_CONFIGS. Quotas are stored in etcd (every agent answers the
// same) and enforced as quotas.go says.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.DescribeClientQuotas, 0, 1, (*Server).handleDescribeClientQuotas,
		custom(func(g *gate, req *kmsg.DescribeClientQuotasRequest, run func() (reply, error)) (reply, error) {
			if g.w.canCluster(kmsg.ACLOperationDescribeConfigs) {
				return run()
			}
			resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
			resp.ErrorCode = codeCluster
			return now(resp)
		}, need{kmsg.ACLOperationDescribeConfigs, kmsg.ACLResourceTypeCluster}))
	register(kmsg.AlterClientQuotas, 0, 1, (*Server).handleAlterClientQuotas,
		custom(func(g *gate, req *kmsg.AlterClientQuotasRequest, run func() (reply, error)) (reply, error) {
			if g.w.canCluster(kmsg.ACLOperationAlterConfigs) {
				return run()
			}
			resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
			for _, e := range req.Entries {
				resp.Entries = append(resp.Entries, alterQuotaEntry(e.Entity, codeCluster, ""))
			}
			return now(resp)
		}, need{kmsg.ACLOperationAlterConfigs, kmsg.ACLResourceTypeCluster}))
}

// quotaKeyIntegral says, for each key an entity kind accepts, whether its
// value must be a whole number (Kafka's LONG and INT quota configs).
var (
	userClientQuotaKeys = map[string]bool{
		quotaProducerByteRate: true, quotaConsumerByteRate: true,
		quotaRequestPercentage: false, quotaControllerMutationRate: false,
	}
	ipQuotaKeys = map[string]bool{quotaConnectionCreationRate: true}
)

func alterQuotaEntry(entity []kmsg.AlterClientQuotasRequestEntryEntity, code int16, msg string) kmsg.AlterClientQuotasResponseEntry {
	re := kmsg.NewAlterClientQuotasResponseEntry()
	re.ErrorCode = code
	if msg != "" {
		re.ErrorMessage = kmsg.StringPtr(msg)
	}
	for _, e := range entity {
		ee := kmsg.NewAlterClientQuotasResponseEntryEntity()
		ee.Type, ee.Name = e.Type, e.Name
		re.Entity = append(re.Entity, ee)
	}
	return re
}

// validateQuotaEntity checks an entity as Kafka's validateEntity and
// configKeysForEntityType do, returning the keys it accepts.
func validateQuotaEntity(entity []metastore.QuotaEntityPart) (map[string]bool, error) {
	if len(entity) == 0 {
		return nil, errors.New("Invalid empty client quota entity")
	}
	seen := map[string]*string{}
	for _, p := range entity {
		if _, dup := seen[p.Type]; dup {
			return nil, fmt.Errorf("Invalid client quota entity, duplicate entity entry %s", p.Type)
		}
		switch p.Type {
		case quotaUser, quotaClientID, quotaIP:
		default:
			return nil, fmt.Errorf("Unhandled client quota entity type: %s", p.Type)
		}
		if p.Name != nil && *p.Name == "" {
			return nil, fmt.Errorf("Empty %s not supported", p.Type)
		}
		seen[p.Type] = p.Name
	}
	ip, hasIP := seen[quotaIP]
	if !hasIP {
		return userClientQuotaKeys, nil
	}
	if len(seen) > 1 {
		return nil, errors.New("Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId")
	}
	if ip != nil && net.ParseIP(*ip) == nil {
		if _, err := net.LookupHost(*ip); err != nil {
			return nil, fmt.Errorf("%s is not a valid IP or resolvable host.", *ip)
		}
	}
	return ipQuotaKeys, nil
}

// validateQuotaValue is Kafka's validateQuotaKeyValue.
func validateQuotaValue(keys map[string]bool, key string, v float64) error {
	integral, ok := keys[key]
	switch {
	case !ok:
		return fmt.Errorf("Invalid configuration key %s", key)
	case v <= 0 || math.IsNaN(v):
		return fmt.Errorf("Quota %s must be greater than 0", key)
	case integral && key == quotaConnectionCreationRate && v > math.MaxInt32:
		return fmt.Errorf("Proposed value for %s is too large for an INT.", key)
	case integral && v > math.MaxInt64:
		return fmt.Errorf("Proposed value for %s is too large for a LONG.", key)
	case integral && math.Abs(math.Mod(v, 1)) > 1e-6:
		return fmt.Errorf("%s cannot be a fractional value.", key)
	}
	return nil
}

func (s *Server) handleAlterClientQuotas(ctx context.Context, rc *reqCtx, req *kmsg.AlterClientQuotasRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	resp.Entries = make([]kmsg.AlterClientQuotasResponseEntry, len(req.Entries))
	var alts []metastore.QuotaAlteration
	var at []int // response index of each alteration
	count := map[string]int{}
	for _, e := range req.Entries {
		count[metastore.QuotaEntityKey(quotaEntity(e.Entity))]++
	}
	for i, e := range req.Entries {
		entity := quotaEntity(e.Entity)
		alt, err := quotaAlteration(entity, e.Ops)
		if err == nil && count[metastore.QuotaEntityKey(entity)] > 1 {
			err = fmt.Errorf("Ignoring duplicate entity %s", metastore.QuotaEntityKey(entity))
		}
		if err != nil {
			resp.Entries[i] = alterQuotaEntry(e.Entity, kerr.InvalidRequest.Code, err.Error())
			continue
		}
		resp.Entries[i] = alterQuotaEntry(e.Entity, 0, "")
		alts = append(alts, alt)
		at = append(at, i)
	}
	if req.ValidateOnly || len(alts) == 0 {
		return now(resp)
	}
	var err error
	for range 5 { // a concurrent alteration of the same entities: re-read
		if err = s.meta.AlterQuotas(ctx, alts); !errors.Is(err, metastore.ErrConflict) {
			break
		}
	}
	if err != nil {
		code := errCode(s.log, "alter client quotas", err)
		for _, i := range at {
			resp.Entries[i].ErrorCode = code
			resp.Entries[i].ErrorMessage = kmsg.StringPtr(err.Error())
		}
		return now(resp)
	}
	// In force here before the answer; other agents follow their watch.
	s.loadQuotas(ctx)
	return now(resp)
}

func quotaEntity(es []kmsg.AlterClientQuotasRequestEntryEntity) []metastore.QuotaEntityPart {
	out := make([]metastore.QuotaEntityPart, len(es))
	for i, e := range es {
		out[i] = metastore.QuotaEntityPart{Type: e.Type, Name: e.Name}
	}
	return out
}

// quotaAlteration checks one entry (entity, then each op) and returns it
// as an alteration.
func quotaAlteration(entity []metastore.QuotaEntityPart, ops []kmsg.AlterClientQuotasRequestEntryOp) (metastore.QuotaAlteration, error) {
	keys, err := validateQuotaEntity(entity)
	if err != nil {
		return metastore.QuotaAlteration{}, err
	}
	alt := metastore.QuotaAlteration{Entity: entity, Set: map[string]float64{}}
	seen := map[string]bool{}
	for _, op := range ops {
		if seen[op.Key] {
			return alt, fmt.Errorf("Duplicate quota key %s not updating quota for this entity %s", op.Key, metastore.QuotaEntityKey(entity))
		}
		seen[op.Key] = true
		if op.Remove {
			alt.Remove = append(alt.Remove, op.Key)
			continue
		}
		if err := validateQuotaValue(keys, op.Key, op.Value); err != nil {
			return alt, err
		}
		alt.Set[op.Key] = op.Value
	}
	return alt, nil
}

func (s *Server) handleDescribeClientQuotas(ctx context.Context, rc *reqCtx, req *kmsg.DescribeClientQuotasRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	match, err := quotaFilter(req.Components)
	if err != nil {
		resp.ErrorCode = kerr.InvalidRequest.Code
		var uv unsupportedType
		if errors.As(err, &uv) {
			resp.ErrorCode = kerr.UnsupportedVersion.Code
		}
		resp.ErrorMessage = kmsg.StringPtr(err.Error())
		return now(resp)
	}
	list, _, err := s.meta.ListQuotas(ctx)
	if err != nil {
		resp.ErrorCode = errCode(s.log, "describe client quotas", err)
		resp.ErrorMessage = kmsg.StringPtr(err.Error())
		return now(resp)
	}
	for _, q := range list {
		if !match(q.Entity, req.Strict) {
			continue
		}
		e := kmsg.NewDescribeClientQuotasResponseEntry()
		for _, p := range q.Entity {
			ee := kmsg.NewDescribeClientQuotasResponseEntryEntity()
			ee.Type, ee.Name = p.Type, p.Name
			e.Entity = append(e.Entity, ee)
		}
		keys := make([]string, 0, len(q.Values))
		for k := range q.Values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := kmsg.NewDescribeClientQuotasResponseEntryValue()
			v.Key, v.Value = k, q.Values[k]
			e.Values = append(e.Values, v)
		}
		resp.Entries = append(resp.Entries, e)
	}
	return now(resp)
}

// unsupportedType is a filter naming an entity type Kafka does not know
// (UNSUPPORTED_VERSION, as Kafka's controller answers).
type unsupportedType string

func (u unsupportedType) Error() string { return "Unsupported entity type " + string(u) }

// quotaFilter turns Describe's components into a matcher, refusing what
// Kafka refuses (DescribeClientQuotasRequest's filter and the
// controller's validate).
func quotaFilter(cs []kmsg.DescribeClientQuotasRequestComponent) (func([]metastore.QuotaEntityPart, bool) bool, error) {
	exact := map[string]*string{} // type -> name (nil: the default)
	anyOf := map[string]bool{}
	for _, c := range cs {
		if c.EntityType == "" {
			return nil, errors.New("Invalid empty entity type.")
		}
		if _, dup := exact[c.EntityType]; dup || anyOf[c.EntityType] {
			return nil, fmt.Errorf("Entity type %s cannot appear more than once in the filter.", c.EntityType)
		}
		switch c.MatchType {
		case 0:
			if c.Match == nil {
				return nil, errors.New("Request specified MATCH_TYPE_EXACT, but set match string to null")
			}
			exact[c.EntityType] = c.Match
		case 1:
			if c.Match != nil {
				return nil, errors.New("Request specified MATCH_TYPE_DEFAULT, but also specified a match string")
			}
			exact[c.EntityType] = nil
		case 2:
			if c.Match != nil {
				return nil, errors.New("Request specified MATCH_TYPE_SPECIFIED, but also specified a match string")
			}
			anyOf[c.EntityType] = true
		default:
			return nil, fmt.Errorf("Unexpected match type %d", c.MatchType)
		}
		switch c.EntityType {
		case quotaUser, quotaClientID, quotaIP:
		default:
			return nil, unsupportedType(c.EntityType)
		}
	}
	_, ipExact := exact[quotaIP]
	if ipExact || anyOf[quotaIP] {
		for _, t := range []string{quotaUser, quotaClientID} {
			if _, ok := exact[t]; ok || anyOf[t] {
				return nil, errors.New("Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.")
			}
		}
	}
	return func(entity []metastore.QuotaEntityPart, strict bool) bool {
		if strict && len(entity) != len(exact)+len(anyOf) {
			return false
		}
		has := map[string]*string{}
		for _, p := range entity {
			has[p.Type] = p.Name
		}
		for t, name := range exact {
			got, ok := has[t]
			if !ok || (got == nil) != (name == nil) || (got != nil && *got != *name) {
				return false
			}
		}
		for t := range anyOf {
			if _, ok := has[t]; !ok {
				return false
			}
		}
		return true
	}, nil
}
