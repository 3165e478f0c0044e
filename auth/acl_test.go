package auth_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/auth"
)

func acl(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, principal string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) auth.ACL {
	return auth.ACL{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: principal, Host: "*", Operation: op, Permission: perm}
}

// TestAuthorizer proves Kafka's rules: literal, "*" and prefixed patterns,
// implied DESCRIBE, deny wins, super users, wildcard principal.
func TestAuthorizer(t *testing.T) {
	const (
		topic   = kmsg.ACLResourceTypeTopic
		group   = kmsg.ACLResourceTypeGroup
		lit     = kmsg.ACLResourcePatternTypeLiteral
		pre     = kmsg.ACLResourcePatternTypePrefixed
		allow   = kmsg.ACLPermissionTypeAllow
		deny    = kmsg.ACLPermissionTypeDeny
		read    = kmsg.ACLOperationRead
		write   = kmsg.ACLOperationWrite
		desc    = kmsg.ACLOperationDescribe
		all     = kmsg.ACLOperationAll
		alterC  = kmsg.ACLOperationAlterConfigs
		descC   = kmsg.ACLOperationDescribeConfigs
		created = kmsg.ACLOperationCreate
	)
	z := auth.NewAuthorizer([]auth.ACL{
		acl(topic, "orders", lit, "User:alice", read, allow),
		acl(topic, "logs-", pre, "User:alice", write, allow),
		acl(topic, "logs-secret", lit, "User:alice", write, deny),
		acl(topic, "*", lit, "User:bob", all, allow),
		acl(topic, "pay", pre, "User:bob", all, deny),
		acl(topic, "cfg", lit, "User:*", alterC, allow),
		acl(group, "g", lit, "User:alice", read, allow),
	}, []string{"User:admin"})
	for _, tc := range []struct {
		principal string
		op        kmsg.ACLOperation
		rt        kmsg.ACLResourceType
		name      string
		want      bool
	}{
		{"User:alice", read, topic, "orders", true},
		{"User:alice", desc, topic, "orders", true}, // implied by READ
		{"User:alice", write, topic, "orders", false},
		{"User:alice", read, topic, "orders2", false},  // literal is exact
		{"User:alice", write, topic, "logs-app", true}, // prefixed
		{"User:alice", write, topic, "logs", false},
		{"User:alice", write, topic, "logs-secret", false}, // deny wins
		{"User:alice", desc, topic, "logs-secret", true},   // deny WRITE does not deny DESCRIBE
		{"User:bob", created, topic, "anything", true},
		{"User:bob", read, topic, "payments", false},
		{"User:carol", descC, topic, "cfg", true}, // implied by ALTER_CONFIGS, wildcard principal
		{"User:carol", read, topic, "cfg", false},
		{"User:alice", read, group, "g", true},
		{"User:alice", read, group, "g2", false},
		{"User:admin", all, topic, "payments", true},
		{auth.Anonymous, desc, topic, "orders", false},
	} {
		if got := z.Allowed(tc.principal, "10.0.0.1", tc.op, tc.rt, tc.name); got != tc.want {
			t.Errorf("%s %v %v %s: got %v, want %v", tc.principal, tc.op, tc.rt, tc.name, got, tc.want)
		}
	}
}

// TestFilter proves DescribeAcls/DeleteAcls filter matching, MATCH included.
func TestFilter(t *testing.T) {
	p := acl(kmsg.ACLResourceTypeTopic, "logs-", kmsg.ACLResourcePatternTypePrefixed, "User:a", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)
	name := "logs-x"
	other := "metrics"
	anyF := auth.Filter{ResourceType: kmsg.ACLResourceTypeAny, PatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	if !anyF.Matches(p) {
		t.Error("ANY filter does not match")
	}
	m := anyF
	m.PatternType, m.ResourceName = kmsg.ACLResourcePatternTypeMatch, &name
	if !m.Matches(p) {
		t.Error("MATCH logs-x does not match prefixed logs-")
	}
	m.ResourceName = &other
	if m.Matches(p) {
		t.Error("MATCH metrics matches prefixed logs-")
	}
	lit := anyF
	lit.PatternType = kmsg.ACLResourcePatternTypeLiteral
	if lit.Matches(p) {
		t.Error("LITERAL filter matches a prefixed binding")
	}
	if err := (auth.ACL{}).Validate(); err == nil {
		t.Error("zero ACL validates")
	}
}
