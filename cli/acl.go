package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/auth"
	"github.com/shale-dev/shale/metastore"
)

var aclOps = map[string]kmsg.ACLOperation{
	"all": kmsg.ACLOperationAll, "read": kmsg.ACLOperationRead, "write": kmsg.ACLOperationWrite,
	"create": kmsg.ACLOperationCreate, "delete": kmsg.ACLOperationDelete, "alter": kmsg.ACLOperationAlter,
	"describe": kmsg.ACLOperationDescribe, "cluster-action": kmsg.ACLOperationClusterAction,
	"describe-configs": kmsg.ACLOperationDescribeConfigs, "alter-configs": kmsg.ACLOperationAlterConfigs,
	"idempotent-write": kmsg.ACLOperationIdempotentWrite,
}

func opName(op kmsg.ACLOperation) string {
	for n, o := range aclOps {
		if o == op {
			return n
		}
	}
	return op.String()
}

func addACLFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	addEtcdFlags(cmd)
	f.String("principal", "", "principal, e.g. User:alice (User:* for everyone)")
	f.StringSlice("operation", nil, "operations: read, write, describe, create, delete, alter, describe-configs, alter-configs, idempotent-write, all")
	f.String("topic", "", "topic name (or prefix with --prefixed; * for every topic)")
	f.String("group", "", "consumer group name (or prefix with --prefixed; * for every group)")
	f.Bool("cluster", false, "the cluster resource")
	f.Bool("prefixed", false, "the name is a prefix (PREFIXED pattern) instead of a literal")
	f.Bool("deny", false, "a DENY binding (deny wins over allow)")
	f.String("host", "*", "client host (IP) the binding applies to")
}

// aclFilter builds a filter from the flags; for add, every field must be set.
func aclFilter(v *viper.Viper, forAdd bool) (auth.Filter, error) {
	f := auth.Filter{ResourceType: kmsg.ACLResourceTypeAny, PatternType: kmsg.ACLResourcePatternTypeAny,
		Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	n := 0
	if t := v.GetString("topic"); t != "" {
		f.ResourceType, f.ResourceName = kmsg.ACLResourceTypeTopic, &t
		n++
	}
	if g := v.GetString("group"); g != "" {
		f.ResourceType, f.ResourceName = kmsg.ACLResourceTypeGroup, &g
		n++
	}
	if v.GetBool("cluster") {
		name := auth.ClusterName
		f.ResourceType, f.ResourceName = kmsg.ACLResourceTypeCluster, &name
		n++
	}
	if n > 1 || (forAdd && n == 0) {
		return f, fmt.Errorf("name exactly one of --topic, --group, --cluster")
	}
	if f.ResourceName != nil || forAdd {
		f.PatternType = kmsg.ACLResourcePatternTypeLiteral
		if v.GetBool("prefixed") {
			f.PatternType = kmsg.ACLResourcePatternTypePrefixed
		}
	}
	if p := v.GetString("principal"); p != "" {
		if !strings.Contains(p, ":") {
			p = "User:" + p
		}
		f.Principal = &p
	} else if forAdd {
		return f, fmt.Errorf("--principal is required")
	}
	if h := v.GetString("host"); h != "" && (forAdd || v.IsSet("host")) {
		f.Host = &h
	}
	if forAdd || v.IsSet("deny") {
		f.Permission = kmsg.ACLPermissionTypeAllow
		if v.GetBool("deny") {
			f.Permission = kmsg.ACLPermissionTypeDeny
		}
	}
	return f, nil
}

func aclOperations(v *viper.Viper, required bool) ([]kmsg.ACLOperation, error) {
	names := splitList(v.GetStringSlice("operation"))
	if len(names) == 0 {
		if required {
			return nil, fmt.Errorf("--operation is required")
		}
		return []kmsg.ACLOperation{kmsg.ACLOperationAny}, nil
	}
	var out []kmsg.ACLOperation
	for _, n := range names {
		op, ok := aclOps[strings.ToLower(n)]
		if !ok {
			return nil, fmt.Errorf("unknown --operation %q", n)
		}
		out = append(out, op)
	}
	return out, nil
}

func newACLCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Manage ACLs (kept in etcd; every agent applies changes within a moment)",
		Long: `Manage the ACLs agents enforce when authorization is on (shale agent --authorizer, or
any SASL or mTLS listener). Semantics are Kafka's: a request is allowed when an ALLOW binding
matches its principal, host, operation and resource, and no DENY binding does; READ, WRITE,
DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS; super users
(--super-users) may do anything. These commands write etcd directly; Kafka clients can use
CreateAcls/DescribeAcls/DeleteAcls too.`,
		Example: `  shale acl add --principal User:alice --operation read,write --topic orders- --prefixed
  shale acl add --principal User:alice --operation read --group orders-app
  shale acl list --principal User:alice
  shale acl remove --principal User:alice --topic orders- --prefixed`,
	}
	add := &cobra.Command{Use: "add", Short: "Add ACL bindings (one per operation)", Args: cobra.NoArgs}
	addACLFlags(add)
	add.RunE = func(cmd *cobra.Command, _ []string) error {
		return withMeta(cmd, func(ctx context.Context, v *viper.Viper, meta *metastore.Store) error {
			f, err := aclFilter(v, true)
			if err != nil {
				return err
			}
			ops, err := aclOperations(v, true)
			if err != nil {
				return err
			}
			for _, op := range ops {
				a := auth.ACL{ResourceType: f.ResourceType, ResourceName: *f.ResourceName, PatternType: f.PatternType,
					Principal: *f.Principal, Host: *f.Host, Operation: op, Permission: f.Permission}
				if err := meta.CreateACL(ctx, a); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "added:", describeACL(a))
			}
			return nil
		})
	}
	list := &cobra.Command{Use: "list", Short: "List ACL bindings (filtered by the flags given)", Args: cobra.NoArgs}
	addACLFlags(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		return withMeta(cmd, func(ctx context.Context, v *viper.Viper, meta *metastore.Store) error {
			f, err := aclFilter(v, false)
			if err != nil {
				return err
			}
			ops, err := aclOperations(v, false)
			if err != nil {
				return err
			}
			acls, _, err := meta.ListACLs(ctx)
			if err != nil {
				return err
			}
			var rows []auth.ACL
			for _, a := range acls {
				for _, op := range ops {
					g := f
					g.Operation = op
					if g.Matches(a) {
						rows = append(rows, a)
						break
					}
				}
			}
			sort.Slice(rows, func(i, j int) bool { return describeACL(rows[i]) < describeACL(rows[j]) })
			tw := newTable(cmd.OutOrStdout(), "PRINCIPAL", "PERMISSION", "OPERATION", "RESOURCE", "PATTERN", "NAME", "HOST")
			for _, a := range rows {
				tw.row(a.Principal, strings.ToLower(a.Permission.String()), opName(a.Operation),
					strings.ToLower(a.ResourceType.String()), strings.ToLower(a.PatternType.String()), a.ResourceName, a.Host)
			}
			return tw.flush()
		})
	}
	remove := &cobra.Command{Use: "remove", Short: "Remove the ACL bindings matching the flags given", Args: cobra.NoArgs}
	addACLFlags(remove)
	remove.RunE = func(cmd *cobra.Command, _ []string) error {
		return withMeta(cmd, func(ctx context.Context, v *viper.Viper, meta *metastore.Store) error {
			f, err := aclFilter(v, false)
			if err != nil {
				return err
			}
			if f.Principal == nil && f.ResourceName == nil {
				return fmt.Errorf("name a --principal or a resource (refusing to remove every ACL)")
			}
			ops, err := aclOperations(v, false)
			if err != nil {
				return err
			}
			for _, op := range ops {
				g := f
				g.Operation = op
				deleted, err := meta.DeleteACLs(ctx, g)
				if err != nil {
					return err
				}
				for _, a := range deleted {
					fmt.Fprintln(cmd.OutOrStdout(), "removed:", describeACL(a))
				}
			}
			return nil
		})
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}

func describeACL(a auth.ACL) string {
	return fmt.Sprintf("%s %s %s on %s %s %q from %s", a.Principal, strings.ToLower(a.Permission.String()), opName(a.Operation),
		strings.ToLower(a.PatternType.String()), strings.ToLower(a.ResourceType.String()), a.ResourceName, a.Host)
}
