package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent"
)

// Resources the permission walk names.
const (
	permTopic    = "perm-t"
	permDelTopic = "perm-del" // DeleteTopics deletes it when allowed
	permGroup    = "perm-g"
	permTxnID    = "perm-x"
)

// permEnv is what a request of the walk may need to name.
type permEnv struct {
	topicID [16]byte
}

// permCase builds a request naming the walk's resources and reads its
// error code for them (0 when served).
type permCase struct {
	topic string // topic the request names when not permTopic
	req   func(e permEnv) kmsg.Request
	code  func(resp kmsg.Response) int16
}

// publicAPIs are the APIs allowed to need no permission.
var publicAPIs = map[int16]bool{
	kmsg.ApiVersions.Int16(): true, kmsg.SASLHandshake.Int16(): true, kmsg.SASLAuthenticate.Int16(): true,
}

// TestEveryAPIDeclaresItsPermission proves that every registered API is
// authorized as it declares at registration: a principal without ACLs gets
// the API's authorization error, a principal granted exactly the declared
// ACLs gets through (whatever else it is answered). An API registered
// without a case here fails the test, so none goes unchecked.
func TestEveryAPIDeclaresItsPermission(t *testing.T) {
	e := startSecure(t, 1)
	adm := e.admin(t, 0)
	mustCreateTopic(t, adm, permTopic)
	mustCreateTopic(t, adm, permDelTopic)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: permTopic, Partition: 0, At: 0})
	if res, err := adm.CommitOffsets(testCtx(t, 10*time.Second), permGroup, offs); err != nil || res.Error() != nil {
		t.Fatalf("commit offsets of %s: %v %v", permGroup, err, res.Error())
	}
	// permTxnID gets a state, so the transaction listings have it to show.
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.TransactionalID, ip.TransactionTimeoutMillis = kmsg.StringPtr(permTxnID), 60000
	if resp, err := ip.RequestWith(testCtx(t, 10*time.Second), e.client(t, 0, scram256("admin", "admin-secret"))); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("init producer id of %s: %v %v", permTxnID, err, resp)
	}
	md, err := adm.Metadata(testCtx(t, 10*time.Second), permTopic)
	if err != nil {
		t.Fatal(err)
	}
	env := permEnv{topicID: md.Topics[permTopic].ID}
	e.putUser(t, "nobody", "nobody-pw")
	nobody := e.client(t, 0, scram256("nobody", "nobody-pw"))

	for _, p := range agent.RegisteredPermissions() {
		name := kmsg.NameForKey(p.Key)
		if p.Public {
			if !publicAPIs[p.Key] {
				t.Errorf("%s needs no permission: only ApiVersions and the SASL exchange may", name)
			}
			continue
		}
		c, ok := permCases[p.Key]
		if !ok {
			t.Errorf("%s is registered but has no case in permCases", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			topic := c.topic
			if topic == "" {
				topic = permTopic
			}
			want := authCode(p.Needs[0].Resource)
			if got := permRequest(t, nobody, c, env); got != want {
				t.Fatalf("without ACLs: error %v, want %v", kerr.ErrorForCode(got), kerr.ErrorForCode(want))
			}
			user := fmt.Sprintf("perm-%d", p.Key)
			e.putUser(t, user, user+"-pw")
			for _, n := range p.Needs {
				b := kadm.NewACLs().Allow("User:" + user).Operations(kadm.ACLOperation(n.Op))
				switch n.Resource {
				case kmsg.ACLResourceTypeTopic:
					b = b.Topics(topic)
				case kmsg.ACLResourceTypeGroup:
					b = b.Groups(permGroup)
				case kmsg.ACLResourceTypeTransactionalId:
					b = b.TransactionalIDs(permTxnID)
				default:
					b = b.Clusters()
				}
				mustACL(t, adm, b)
			}
			granted := e.client(t, 0, scram256(user, user+"-pw"))
			if got := permRequest(t, granted, c, env); isAuthCode(got) {
				t.Fatalf("with %+v: error %v", p.Needs, kerr.ErrorForCode(got))
			}
		})
	}
	// A refused item is answered under its own name: clients match answers
	// to what they asked by name.
	t.Run("refused items are named", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		br := nobody.SeedBrokers()[0]
		dg := kmsg.NewPtrDescribeGroupsRequest()
		dg.Groups = []string{permGroup}
		dgr, err := br.Request(ctx, dg)
		if err != nil || len(dgr.(*kmsg.DescribeGroupsResponse).Groups) != 1 || dgr.(*kmsg.DescribeGroupsResponse).Groups[0].Group != permGroup {
			t.Errorf("DescribeGroups refused: %v %+v, want group %s named", err, dgr, permGroup)
		}
		del := kmsg.NewPtrDeleteGroupsRequest()
		del.Groups = []string{permGroup}
		delr, err := br.Request(ctx, del)
		if err != nil || len(delr.(*kmsg.DeleteGroupsResponse).Groups) != 1 || delr.(*kmsg.DeleteGroupsResponse).Groups[0].Group != permGroup {
			t.Errorf("DeleteGroups refused: %v %+v, want group %s named", err, delr, permGroup)
		}
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.CoordinatorKey, fc.CoordinatorKeys = permGroup, []string{permGroup}
		fcr, err := br.Request(ctx, fc)
		if r, ok := fcr.(*kmsg.FindCoordinatorResponse); err != nil || !ok || (r.Version >= 4 && (len(r.Coordinators) != 1 || r.Coordinators[0].Key != permGroup)) {
			t.Errorf("FindCoordinator refused: %v %+v, want key %s named", err, fcr, permGroup)
		}
	})
}

func authCode(rt kmsg.ACLResourceType) int16 {
	switch rt {
	case kmsg.ACLResourceTypeTopic:
		return kerr.TopicAuthorizationFailed.Code
	case kmsg.ACLResourceTypeGroup:
		return kerr.GroupAuthorizationFailed.Code
	case kmsg.ACLResourceTypeTransactionalId:
		return kerr.TransactionalIDAuthorizationFailed.Code
	}
	return kerr.ClusterAuthorizationFailed.Code
}

func isAuthCode(c int16) bool {
	switch c {
	case kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code,
		kerr.TransactionalIDAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Code:
		return true
	}
	return false
}

// permRequest sends c's request straight to the agent (no client routing,
// which would first ask FindCoordinator or Metadata) and returns its code.
func permRequest(t *testing.T, cl *kgo.Client, c permCase, env permEnv) int16 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := cl.SeedBrokers()[0].Request(ctx, c.req(env))
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	return c.code(resp)
}

// firstCode returns the first non-zero code.
func firstCode(codes ...int16) int16 {
	for _, c := range codes {
		if c != 0 {
			return c
		}
	}
	return 0
}
