package conformance

import "fmt"

// pendingTest is a peer-suite test that cannot pass until an open issue
// lands. When it starts passing the run fails until it is removed here.
type pendingTest struct {
	issue int    // the open issue that makes it pass (0: none filed yet)
	why   string // what it needs, in a few words
}

// kgoPending: franz-go kgo integration tests waiting on an open issue.
// Every other kgo integration test must pass on both topologies.
var kgoPending = map[string]pendingTest{
	// KIP-848 and KIP-932 share groups: they skip themselves while the
	// broker does not advertise ConsumerGroupHeartbeat v1 / ShareFetch v2.
	"Test848RegexBrokerResolves":         {18, "KIP-848 consumer groups"},
	"TestConsumeRegexShareSkipsInternal": {18, "share groups"},
	"TestShareGroup":                     {18, "share groups"},
	"TestShareGroupAckOnClose":           {18, "share groups"},
	"TestShareGroupETL":                  {18, "share groups"},
	"TestShareGroupOffsetsAdmin":         {18, "share groups"},

	// OAUTHBEARER: it skips itself without KGO_TEST_OAUTH_SEEDS, a listener
	// that accepts Kafka's unsecured-JWS default validator.
	"TestOAuthAuth": {0, "SASL/OAUTHBEARER is not served"},
}

func (p pendingTest) ref() string {
	if p.issue == 0 {
		return "(no issue)"
	}
	return fmt.Sprintf("#%d", p.issue)
}
