package auth

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ACL is one Kafka ACL binding. Enums are Kafka's wire values (kmsg's
// types). PatternType is Literal or Prefixed; a Literal name "*" matches
// every resource of its type. Principal "User:*" matches every principal
// and Host "*" every host.
type ACL struct {
	ResourceType kmsg.ACLResourceType        `json:"resource_type"`
	ResourceName string                      `json:"resource_name"`
	PatternType  kmsg.ACLResourcePatternType `json:"pattern_type"`
	Principal    string                      `json:"principal"`
	Host         string                      `json:"host"`
	Operation    kmsg.ACLOperation           `json:"operation"`
	Permission   kmsg.ACLPermissionType      `json:"permission"`
}

// ClusterName is the resource name of the cluster ("kafka-cluster").
const ClusterName = "kafka-cluster"

// Anonymous is the principal of a connection that did not authenticate.
const Anonymous = "User:ANONYMOUS"

// Validate checks that a is a concrete binding that can be stored (no
// ANY/MATCH/UNKNOWN values).
func (a ACL) Validate() error {
	switch a.ResourceType {
	case kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup, kmsg.ACLResourceTypeCluster,
		kmsg.ACLResourceTypeTransactionalId, kmsg.ACLResourceTypeDelegationToken, kmsg.ACLResourceTypeUser:
	default:
		return fmt.Errorf("auth: bad resource type %d", a.ResourceType)
	}
	if a.PatternType != kmsg.ACLResourcePatternTypeLiteral && a.PatternType != kmsg.ACLResourcePatternTypePrefixed {
		return fmt.Errorf("auth: bad pattern type %d", a.PatternType)
	}
	if a.ResourceName == "" {
		return fmt.Errorf("auth: empty resource name")
	}
	if a.ResourceType == kmsg.ACLResourceTypeCluster && (a.ResourceName != ClusterName || a.PatternType != kmsg.ACLResourcePatternTypeLiteral) {
		return fmt.Errorf("auth: cluster ACLs must name the literal resource %q", ClusterName)
	}
	if !strings.Contains(a.Principal, ":") || strings.HasPrefix(a.Principal, ":") {
		return fmt.Errorf("auth: principal %q is not TYPE:NAME", a.Principal)
	}
	if a.Host == "" {
		return fmt.Errorf("auth: empty host (use *)")
	}
	if a.Operation < kmsg.ACLOperationAll || a.Operation > kmsg.ACLOperationDescribeTokens {
		return fmt.Errorf("auth: bad operation %d", a.Operation)
	}
	if a.Permission != kmsg.ACLPermissionTypeAllow && a.Permission != kmsg.ACLPermissionTypeDeny {
		return fmt.Errorf("auth: bad permission %d", a.Permission)
	}
	return nil
}

// matchesResource reports whether the binding's pattern covers name.
func (a ACL) matchesResource(rt kmsg.ACLResourceType, name string) bool {
	if a.ResourceType != rt {
		return false
	}
	switch a.PatternType {
	case kmsg.ACLResourcePatternTypeLiteral:
		return a.ResourceName == name || a.ResourceName == "*"
	case kmsg.ACLResourcePatternTypePrefixed:
		return strings.HasPrefix(name, a.ResourceName)
	}
	return false
}

// implied lists the operations an allowed op also allows, as in Kafka:
// READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
// DESCRIBE_CONFIGS.
func opCovers(granted, want kmsg.ACLOperation, allow bool) bool {
	if granted == kmsg.ACLOperationAll || granted == want {
		return true
	}
	if !allow {
		return false // a deny covers only its own operation (and ALL)
	}
	switch want {
	case kmsg.ACLOperationDescribe:
		switch granted {
		case kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationDelete, kmsg.ACLOperationAlter:
			return true
		}
	case kmsg.ACLOperationDescribeConfigs:
		return granted == kmsg.ACLOperationAlterConfigs
	}
	return false
}

// Authorizer decides requests against a fixed set of ACLs plus super
// users. It is immutable: build a new one when the ACLs change.
type Authorizer struct {
	byType     map[kmsg.ACLResourceType][]ACL
	superUsers map[string]bool
}

// NewAuthorizer indexes acls; superUsers are principals ("User:admin")
// allowed everything.
func NewAuthorizer(acls []ACL, superUsers []string) *Authorizer {
	z := &Authorizer{byType: map[kmsg.ACLResourceType][]ACL{}, superUsers: map[string]bool{}}
	for _, a := range acls {
		z.byType[a.ResourceType] = append(z.byType[a.ResourceType], a)
	}
	for _, u := range superUsers {
		z.superUsers[u] = true
	}
	return z
}

// Allowed reports whether principal, connecting from host, may perform op
// on the resource: a super user may do anything; otherwise some allow
// binding must match and no deny binding may (deny wins).
func (z *Authorizer) Allowed(principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	if z.superUsers[principal] {
		return true
	}
	allowed := false
	for _, a := range z.byType[rt] {
		if !a.matchesResource(rt, name) {
			continue
		}
		if a.Principal != principal && a.Principal != "User:*" {
			continue
		}
		if a.Host != "*" && a.Host != host {
			continue
		}
		isAllow := a.Permission == kmsg.ACLPermissionTypeAllow
		if !opCovers(a.Operation, op, isAllow) {
			continue
		}
		if !isAllow {
			return false
		}
		allowed = true
	}
	return allowed
}

// Filter is a DescribeAcls / DeleteAcls filter: nil strings and ANY enums
// match everything; PatternType MATCH matches the bindings that would
// apply to the named resource (literal equal or "*", prefixes of it).
type Filter struct {
	ResourceType kmsg.ACLResourceType
	ResourceName *string
	PatternType  kmsg.ACLResourcePatternType
	Principal    *string
	Host         *string
	Operation    kmsg.ACLOperation
	Permission   kmsg.ACLPermissionType
}

// Matches reports whether a binding matches the filter.
func (f Filter) Matches(a ACL) bool {
	if f.ResourceType != kmsg.ACLResourceTypeAny && f.ResourceType != a.ResourceType {
		return false
	}
	switch f.PatternType {
	case kmsg.ACLResourcePatternTypeAny:
		if f.ResourceName != nil && *f.ResourceName != a.ResourceName {
			return false
		}
	case kmsg.ACLResourcePatternTypeMatch:
		if f.ResourceName != nil && !a.matchesResource(a.ResourceType, *f.ResourceName) {
			return false
		}
	default:
		if f.PatternType != a.PatternType || (f.ResourceName != nil && *f.ResourceName != a.ResourceName) {
			return false
		}
	}
	if f.Principal != nil && *f.Principal != a.Principal {
		return false
	}
	if f.Host != nil && *f.Host != a.Host {
		return false
	}
	if f.Operation != kmsg.ACLOperationAny && f.Operation != a.Operation {
		return false
	}
	if f.Permission != kmsg.ACLPermissionTypeAny && f.Permission != a.Permission {
		return false
	}
	return true
}

// ValidateFilter rejects filters Kafka rejects (UNKNOWN values).
func (f Filter) Validate() error {
	if f.ResourceType == kmsg.ACLResourceTypeUnknown || f.PatternType == kmsg.ACLResourcePatternTypeUnknown ||
		f.Operation == kmsg.ACLOperationUnknown || f.Permission == kmsg.ACLPermissionTypeUnknown {
		return fmt.Errorf("auth: filter has an UNKNOWN value")
	}
	return nil
}

// AllowedAny reports whether principal holds an allow binding for op on
// any resource of type rt (Kafka lets an idempotent producer in when it
// may WRITE some topic).
func (z *Authorizer) AllowedAny(principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType) bool {
	if z.superUsers[principal] {
		return true
	}
	for _, a := range z.byType[rt] {
		if (a.Principal == principal || a.Principal == "User:*") && (a.Host == "*" || a.Host == host) &&
			a.Permission == kmsg.ACLPermissionTypeAllow && opCovers(a.Operation, op, true) {
			return true
		}
	}
	return false
}
