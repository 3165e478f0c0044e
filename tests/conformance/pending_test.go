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
var kgoPending = map[string]pendingTest{}

func (p pendingTest) ref() string {
	if p.issue == 0 {
		return "(no issue)"
	}
	return fmt.Sprintf("#%d", p.issue)
}

// kafkaGoPending: segmentio/kafka-go integration tests that do not pass
// yet, each with the open issue that will make it pass or, where none is
// filed, what is missing. Every other one must pass.
var kafkaGoPending = map[string]pendingTest{}

// librdkafkaPending: librdkafka test-suite tests (tests/, by name) that do
// not pass yet, each with the open issue that will make it pass or, where
// none is filed, what is missing. Every other broker test must pass.
var librdkafkaPending = map[string]pendingTest{}
