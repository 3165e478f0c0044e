package conformance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shale-dev/shale/internal/testenv"
)

// librdkafkaTestTimeout bounds one librdkafka test process (its tests set
// their own timeouts, scaled by the runner; this kills a hung process).
const librdkafkaTestTimeout = 4 * time.Minute

// librdkafkaBrokerVersion is the broker version librdkafka's tests gate
// features on (TEST_KAFKA_VERSION): shale serves the APIs of Kafka 3.x.
const librdkafkaBrokerVersion = "3.7.0"

// librdkafkaTest is one broker test of librdkafka's suite, as its test.c
// declares it.
type librdkafkaTest struct {
	name     string // e.g. 0001_multiobj
	num      string // its four digits: what TESTS selects, shared by siblings
	scenario string // the scenario it needs, "" for the default one
	known    bool   // TEST_F_KNOWN_ISSUE: its authors do not run it by default
	extra    string // its .extra (a known issue's link), "" if none
}

var rdkTestDecl = regexp.MustCompile(`_TEST\((\d{4})(\w*),\s*([^,)]*)((?:[^()]|\([^()]*\))*)\)`)

// librdkafkaTests reads the tests[] table of librdkafka's tests/test.c and
// returns its broker tests: those not flagged TEST_F_LOCAL (broker-less,
// they test the client alone) or TEST_F_MANUAL.
func librdkafkaTests(testC string) ([]librdkafkaTest, error) {
	src, err := os.ReadFile(testC)
	if err != nil {
		return nil, err
	}
	s := string(src)
	start := strings.Index(s, "struct test tests[] = {")
	if start < 0 {
		return nil, fmt.Errorf("%s: no tests[] table", testC)
	}
	end := strings.Index(s[start:], "\n};")
	if end < 0 {
		return nil, fmt.Errorf("%s: tests[] table has no end", testC)
	}
	var out []librdkafkaTest
	for _, m := range rdkTestDecl.FindAllStringSubmatch(s[start:start+end], -1) {
		flags := m[3]
		if strings.Contains(flags, "TEST_F_LOCAL") || strings.Contains(flags, "TEST_F_MANUAL") {
			continue
		}
		lt := librdkafkaTest{name: m[1] + m[2], num: m[1], known: strings.Contains(flags, "TEST_F_KNOWN_ISSUE") && !strings.Contains(flags, "TEST_F_KNOWN_ISSUE_")}
		if sc := regexp.MustCompile(`\.scenario\s*=\s*"([^"]*)"`).FindStringSubmatch(m[4]); sc != nil {
			lt.scenario = sc[1]
		}
		if ex := regexp.MustCompile(`\.extra\s*=\s*"([^"]*)"`).FindStringSubmatch(m[4]); ex != nil {
			lt.extra = ex[1]
		}
		out = append(out, lt)
	}
	return out, nil
}

// TestLibrdkafkaSuite proves that librdkafka's own integration tests (the
// tests/ of its source tree, the release under kcat and confluent-kafka
// here) pass against `shale agent --dev`, except the pending ones
// (pending_test.go). Each test number runs in its own process
// (`TESTS=NNNN test-runner -Q -L`: quick mode, broker tests only, the
// socket-emulation tests included), several at once; a test that skips
// itself in quick mode runs again in full mode and is judged so. The tests
// its authors flag as known issues are not run by their runner unless
// asked; they run here too, and a pass is a pass, but a failure is off,
// as their runner does not count it either. A test that cannot run here
// whatever the broker (librdkafkaOff: it says it needs RapidJSON,
// trivup's SSL or SASL setup, or Kafka's own command-line tools) is off
// with its reason. Tests of the "noautocreate" scenario run against a
// second agent that does not create topics on demand (shale's default
// outside --dev), every other test against the dev agent, which does, as
// Kafka's default broker does.
func TestLibrdkafkaSuite(t *testing.T) {
	if topo := os.Getenv("SHALE_KGO_TOPOLOGY"); topo != "" && topo != "librdkafka" {
		return // a focused rerun of another suite
	}
	// Alongside the kgo suite (TestKgoSuite), after the sequential tests:
	// its processes mostly wait (about a third of a core in all).
	t.Parallel()
	dir := testenv.LibrdkafkaTests(t)
	all, err := librdkafkaTests(filepath.Join(dir, "test.c"))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 80 { // 2.0.2 has 99: finding few means the parse broke
		t.Fatalf("found %d broker tests in %s/test.c, want about 99: the table's format changed", len(all), dir)
	}
	var filter *regexp.Regexp
	if f := os.Getenv("SHALE_KGO_RUN"); f != "" {
		filter = regexp.MustCompile(f)
	}
	byNum := map[string][]librdkafkaTest{}
	for _, lt := range all {
		if filter == nil || filter.MatchString(lt.name) {
			key := lt.num + "/" + lt.scenario
			byNum[key] = append(byNum[key], lt)
		}
	}
	keys := make([]string, 0, len(byNum))
	for k := range byNum {
		keys = append(keys, k)
	}
	// Pending tests first: one may hang until its own timeout (0107: 160
	// s), which then overlaps the rest of the run instead of ending it.
	hasPending := func(k string) bool {
		for _, lt := range byNum[k] {
			if _, ok := librdkafkaPending[lt.name]; ok {
				return true
			}
		}
		return false
	}
	sort.Slice(keys, func(i, j int) bool {
		if pi, pj := hasPending(keys[i]), hasPending(keys[j]); pi != pj {
			return pi
		}
		return keys[i] < keys[j]
	})

	confs := map[string]string{} // scenario -> test.conf
	for _, k := range keys {
		sc := byNum[k][0].scenario
		if _, ok := confs[sc]; ok {
			continue
		}
		// librdkafka's harness (trivup) runs brokers with
		// num.partitions=4, and its tests produce to partitions 1-3 of
		// topics they let the broker create.
		args := []string{"--default-partitions", "4"}
		if sc == "noautocreate" {
			args = append(args, "--auto-create-topics=false")
		}
		kafka, _ := startDevAgent(t, args...)
		conf := filepath.Join(t.TempDir(), "test.conf")
		if err := os.WriteFile(conf, []byte("bootstrap.servers="+kafka+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		confs[sc] = conf
	}

	parallel := envInt("SHALE_LIBRDKAFKA_PARALLEL", librdkafkaParallel)
	start := time.Now()
	var mu sync.Mutex
	var rs []result
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for _, k := range keys {
		group := byNum[k]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			conf := confs[group[0].scenario]
			got := runLibrdkafka(dir, conf, group, librdkafkaTestTimeout, true)
			if skipsInQuickMode(got) {
				// Its authors keep it out of quick mode (for time):
				// it runs here in full mode, and is judged so.
				got = runLibrdkafka(dir, conf, group, librdkafkaTestTimeout, false)
				for i := range got {
					got[i].note = strings.TrimSpace("full mode (it skips itself in quick mode) " + got[i].note)
				}
			}
			for i := range got {
				got[i] = librdkafkaVerdict(got[i], group[i])
			}
			mu.Lock()
			rs = append(rs, got...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(rs, func(i, j int) bool { return rs[i].name < rs[j].name })
	title := fmt.Sprintf("librdkafka %s integration suite (tests/, quick mode) vs `shale agent --dev`, TEST_KAFKA_VERSION=%s, %d at a time",
		testenv.LibrdkafkaVersion, librdkafkaBrokerVersion, parallel)
	fmt.Print(tableOff(title, "not runnable here or known issues of the suite", rs, time.Since(start)))
	for _, r := range rs {
		if r.outcome == outFail {
			t.Errorf("%s: %s\n%s", r.name, r.note, tail(r.output, 60))
		}
	}
}

// librdkafkaParallel is how many test-runner processes run at once by
// default (SHALE_LIBRDKAFKA_PARALLEL): most of the suite's time is its
// tests' own waits (timeouts, sleeps, rebalances), not CPU, and each test
// uses topics and groups of its own random names.
const librdkafkaParallel = 6

// librdkafkaOff are the reasons a librdkafka test cannot run here whatever
// the broker, each recognised in the test's own words: a skip it reports
// itself, or its failure at a call of something this environment does not
// have. Such a test shows as off with the reason; any other skip fails
// the run.
var librdkafkaOff = []struct {
	said *regexp.Regexp // in its skip reason or failure message
	why  string
}{
	{regexp.MustCompile(`RapidJSON >=1\.1\.0 not available`), "needs RapidJSON, which this build of the suite leaves out"},
	{regexp.MustCompile(`SSL_\* env-vars set up by trivup`), "needs the SSL keys and listener trivup (librdkafka's cluster harness) sets up"},
	{regexp.MustCompile(`cluster not configured for SASL|requires SASL PLAIN or SASL SCRAM`), "needs the SASL listener and settings trivup (librdkafka's cluster harness) sets up"},
	{regexp.MustCompile(`KAFKA_PATH (and BROKERS )?must be set`), "runs Kafka's own command-line tools (KAFKA_PATH), not installed here"},
}

// librdkafkaVerdict takes a row off when the test cannot run here (see
// librdkafkaOff) or when it is a known issue of the suite that fails (its
// authors' runner skips such tests unless asked, and does not count their
// failure), then classifies it against librdkafkaPending.
func librdkafkaVerdict(r result, lt librdkafkaTest) result {
	if r.outcome == "SKIP" || r.outcome == outFail {
		for _, o := range librdkafkaOff {
			if o.said.MatchString(r.note) {
				r.outcome, r.note = outDisabled, o.why+": "+r.note
				return r
			}
		}
	}
	if r.outcome == outFail && lt.known {
		what := "its authors flag it as a known issue"
		if lt.extra != "" {
			what += " (" + lt.extra + ")"
		}
		r.outcome, r.note = outDisabled, what+" and do not count its failure: "+r.note
		return r
	}
	return classify(r, librdkafkaPending, false)
}

// skipsInQuickMode reports whether a test skipped itself because of quick
// mode.
func skipsInQuickMode(rs []result) bool {
	for _, r := range rs {
		if r.outcome == "SKIP" && strings.Contains(r.note, "quick mode") {
			return true
		}
	}
	return false
}

var (
	ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	// A row of test-runner's summary: | name | STATE | 1.234s | reason
	rdkSummary = regexp.MustCompile(`(?m)^\|[ \t]*(\S+)[ \t]*\|[ \t]*([A-Z_]+)[ \t]*\|[ \t]*[0-9.]+s[ \t]*\|[ \t]*(.*)$`)
	// A failure's report: ### Test "name" failed at file:line:func() at date: ###, then its message.
	// The name may be followed by a subtest's, in parentheses.
	rdkFailure = regexp.MustCompile(`(?m)^### Test "([^" ]+)[^"]*" failed at [^\n]*###\n(.*)$`)
)

// runLibrdkafka runs the tests of one number (siblings share it) in one
// test-runner process, in quick mode or not, and returns a row per test
// from the runner's summary or, when a failure aborted the runner before
// its summary, from the failure's report. A test the summary does not
// show as PASSED fails with the runner's reason or the failure's message;
// a test missing from both fails with the process's end.
func runLibrdkafka(dir, conf string, group []librdkafkaTest, timeout time.Duration, quick bool) []result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := []string{"-L", "-V", librdkafkaBrokerVersion}
	if quick {
		args = append(args, "-Q")
	}
	if group[0].scenario != "" {
		args = append(args, "-s", group[0].scenario)
	}
	known := true
	for _, lt := range group {
		known = known && lt.known
	}
	if known {
		args = append(args, "-k") // its runner skips known-issue tests unless asked
	}
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "test-runner"), args...)
	cmd.Dir = dir
	// Without CI: under CI=true its runner raises every test's timeout
	// (a hung test then outlasts ours) and changes its concurrency.
	cmd.Env = append(testenv.EnvWithout("RDKAFKA_", "TEST", "KAFKA_", "LD_LIBRARY_PATH=", "CI="),
		"TESTS="+group[0].num, "RDKAFKA_TEST_CONF="+conf, "TEST_KAFKA_VERSION="+librdkafkaBrokerVersion,
		"LD_LIBRARY_PATH=../src:../src-cpp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := testenv.NewCappedBuffer(4 << 20)
	cmd.Stdout, cmd.Stderr = out, out
	begin := time.Now()
	err := cmd.Run()
	dur := time.Since(begin)
	text := ansiEscape.ReplaceAllString(out.String(), "")
	rows := map[string][2]string{}
	for _, m := range rdkSummary.FindAllStringSubmatch(text, -1) {
		rows[m[1]] = [2]string{m[2], strings.TrimSpace(m[3])}
	}
	failed := map[string]string{}
	for _, m := range rdkFailure.FindAllStringSubmatch(text, -1) {
		if _, ok := failed[m[1]]; !ok {
			failed[m[1]] = strings.TrimSpace(m[2])
		}
	}
	var rs []result
	for _, lt := range group {
		r := result{name: lt.name, dur: dur, output: text}
		row, ok := rows[lt.name]
		msg, hasMsg := failed[lt.name]
		switch {
		case ctx.Err() != nil:
			r.outcome, r.note = outFail, fmt.Sprintf("killed after %s", timeout)
			if hasMsg {
				r.note += ": " + msg
			}
		case ok && row[0] == "PASSED":
			r.outcome = outPass
		case ok && row[0] == "SKIPPED":
			r.outcome, r.note = "SKIP", row[1]
		case hasMsg:
			r.outcome, r.note = outFail, msg
		case ok:
			r.outcome, r.note = outFail, strings.TrimSpace(row[0]+": "+row[1])
		default:
			r.outcome, r.note = outFail, fmt.Sprintf("not in the runner's summary (%v)", err)
		}
		rs = append(rs, r)
	}
	return rs
}

// TestLibrdkafkaDiscovery proves the table parse on a fragment shaped like
// librdkafka's test.c: broker tests are found with their scenario and
// known-issue flag; local and manual tests are not.
func TestLibrdkafkaDiscovery(t *testing.T) {
	src := `struct test tests[] = {
    {.name = "<MAIN>", .flags = TEST_F_LOCAL},
    _TEST(0000_unittests,
          TEST_F_LOCAL,
          _THRES(.ucpu = 100.0, .scpu = 20.0, .rss = 900.0)),
    _TEST(0001_multiobj, 0),
    _TEST(0028_long_topicnames,
          TEST_F_KNOWN_ISSUE,
          TEST_BRKVER(0, 9, 0, 0),
          .extra = "https://github.com/edenhill/librdkafka/issues/529"),
    _TEST(0045_subscribe_update_topic_remove,
          0,
          TEST_BRKVER(0, 9, 0, 0),
          .scenario = "noautocreate"),
    _TEST(0055_producer_latency, TEST_F_KNOWN_ISSUE_WIN32),
    _TEST(8000_idle, TEST_F_MANUAL),
};
`
	path := filepath.Join(t.TempDir(), "test.c")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := librdkafkaTests(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []librdkafkaTest{
		{name: "0001_multiobj", num: "0001"},
		{name: "0028_long_topicnames", num: "0028", known: true, extra: "https://github.com/edenhill/librdkafka/issues/529"},
		{name: "0045_subscribe_update_topic_remove", num: "0045", scenario: "noautocreate"},
		{name: "0055_producer_latency", num: "0055"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

// TestLibrdkafkaVerdict proves how a librdkafka row is judged: a skip or
// failure that says what this environment lacks is off with the reason, a
// known issue's failure is off and its pass a pass, a quick-mode skip is
// seen as such, a failure's report is read when the runner aborted before
// its summary, and any other skip fails the run.
func TestLibrdkafkaVerdict(t *testing.T) {
	known := librdkafkaTest{name: "0028_long_topicnames", known: true, extra: "https://example/529"}
	plain := librdkafkaTest{name: "0001_x"}
	for _, tc := range []struct {
		r    result
		lt   librdkafkaTest
		want outcome
		note string
	}{
		{result{name: "0053_stats", outcome: "SKIP", note: "RapidJSON >=1.1.0 not available"}, plain, outDisabled, "needs RapidJSON"},
		{result{name: "0097_ssl_verify", outcome: "SKIP", note: "Test requires SSL_* env-vars set up by trivup"}, plain, outDisabled, "SSL keys"},
		{result{name: "0109_x", outcome: outFail, note: "test_kafka_cmd: KAFKA_PATH must be set"}, plain, outDisabled, "command-line tools"},
		{result{name: "0052_x", outcome: outFail, note: "test_kafka_topics: KAFKA_PATH and BROKERS must be set"}, plain, outDisabled, "command-line tools"},
		{result{name: known.name, outcome: outFail, note: "Test assertion failed"}, known, outDisabled, "known issue (https://example/529)"},
		{result{name: known.name, outcome: outPass}, known, outPass, ""},
		{result{name: "0001_x", outcome: "SKIP", note: "Filtered due to negative test flags"}, plain, outFail, "skipped: "},
		{result{name: "0001_x", outcome: outFail, note: "Consume error"}, plain, outFail, "Consume error"},
	} {
		got := librdkafkaVerdict(tc.r, tc.lt)
		if got.outcome != tc.want || !strings.Contains(got.note, tc.note) {
			t.Errorf("%s %s %q: %s %q, want %s with %q", tc.r.name, tc.r.outcome, tc.r.note, got.outcome, got.note, tc.want, tc.note)
		}
	}
	if !skipsInQuickMode([]result{{outcome: "SKIP", note: "Test skipped due to quick mode"}}) || skipsInQuickMode([]result{{outcome: outPass}}) {
		t.Error("quick-mode skip not told from the rest")
	}
	report := "[0028 /  0.006s] TEST FAILURE\n### Test \"0028_long_topicnames\" failed at test.c:4682:test_admin_create_topic() at Sun Dec  6 04:23:14 2026: ###\nTest assertion failed: topic name length 255\n"
	if m := rdkFailure.FindStringSubmatch(report); m == nil || m[1] != "0028_long_topicnames" || m[2] != "Test assertion failed: topic name length 255" {
		t.Errorf("failure report not read: %q", m)
	}
	sub := "### Test \"0081_admin (do_test_DescribeConsumerGroups:2618: request_timeout -1)\" failed at test.c:6172:test_DeleteGroups_simple() at Sun Dec  6 04:41:43 2026: ###\nFailed to delete groups: Broker: The group is not empty\n"
	if m := rdkFailure.FindStringSubmatch(sub); m == nil || m[1] != "0081_admin" || m[2] != "Failed to delete groups: Broker: The group is not empty" {
		t.Errorf("a subtest's failure report not read: %q", m)
	}
}
