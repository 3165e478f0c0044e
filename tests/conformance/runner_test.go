package conformance

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
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

// suite is a client's integration suite compiled into a test binary.
type suite struct {
	bin   string   // the compiled test binary
	tests []string // integration tests, sorted
	// disabled are the tests whose first statement skips them, whatever
	// the broker (their authors turned them off): each still runs, and
	// its skip is shown as such, never counted as a pass.
	disabled map[string]bool
}

// outcome of one test process, as the table shows it.
type outcome string

const (
	outPass     outcome = "PASS"
	outFail     outcome = "FAIL"
	outPending  outcome = "pending"
	outDisabled outcome = "off"
)

// result is one test's row.
type result struct {
	name    string
	outcome outcome
	dur     time.Duration
	note    string // why it failed or is pending
	output  string // the process's output, for failures
}

// buildKgo compiles franz-go's kgo tests (the version go.mod requires) and
// finds its integration tests in the sources of that same version.
func buildKgo(t *testing.T) suite {
	// A discovery that finds almost nothing is broken, not a small suite
	// (v1.22.3 has 39).
	return buildSuite(t, "github.com/twmb/franz-go", "pkg/kgo", 30, "getSeedBrokers", "scramSeeds", "oauthSeeds")
}

// buildSuite compiles the tests of module's package dir (module as go.mod
// requires it, so go.sum pins what runs) and finds its integration tests:
// those reaching roots (see integrationTests). Fewer than min found fails
// the test: the discovery is broken.
func buildSuite(t *testing.T, module, dir string, min int, roots ...string) suite {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := goCmd(root, "list", "-m", "-f", "{{.Dir}}", module)
	if err != nil {
		t.Fatalf("locate %s: %v\n%s", module, err, out)
	}
	src := filepath.Join(strings.TrimSpace(out), dir)
	pkg := strings.TrimSuffix(module+"/"+dir, "/")
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg)+".test")
	if out, err := goCmd(root, "test", "-c", "-o", bin, pkg); err != nil {
		t.Fatalf("build %s tests: %v\n%s", pkg, err, out)
	}
	tests, disabled, err := integrationTests(src, roots...)
	if err != nil {
		t.Fatalf("find %s integration tests in %s: %v", pkg, src, err)
	}
	if len(tests) < min {
		t.Fatalf("found only %d %s integration tests in %s: %v", len(tests), pkg, src, tests)
	}
	return suite{bin: bin, tests: tests, disabled: disabled}
}

func goCmd(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// integrationTests returns the Test functions of dir's _test.go files that
// reach one of roots (a function or variable name, or "lit:" and a
// substring of a string literal, e.g. "lit:localhost:9092") through the
// functions and methods they mention. Methods are keyed by name alone: a
// collision can only add a test, never drop one. disabled are those of
// them whose body starts with an unconditional t.Skip, t.Skipf or
// t.SkipNow.
func integrationTests(dir string, roots ...string) (tests []string, disabled map[string]bool, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, nil, err
	}
	fset := token.NewFileSet()
	refs := map[string]map[string]bool{} // function -> identifiers it mentions
	var all []string
	skipsFirst := map[string]bool{}
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, nil, err
		}
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			name := fd.Name.Name
			if fd.Recv == nil && name == "init" {
				continue // never called; it reads the env into the roots
			}
			if fd.Recv == nil && strings.HasPrefix(name, "Test") && name != "TestMain" {
				all = append(all, name)
				skipsFirst[name] = startsWithSkip(fd)
			}
			m := refs[name]
			if m == nil {
				m = map[string]bool{}
				refs[name] = m
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.Ident:
					m[n.Name] = true
				case *ast.BasicLit:
					if n.Kind == token.STRING {
						for _, r := range roots {
							if lit, ok := strings.CutPrefix(r, "lit:"); ok && strings.Contains(n.Value, lit) {
								m[r] = true
							}
						}
					}
				}
				return true
			})
		}
	}
	isRoot := map[string]bool{}
	for _, r := range roots {
		isRoot[r] = true
	}
	state := map[string]int{} // 1 visiting, 2 reaches, 3 does not
	var reaches func(string) bool
	reaches = func(fn string) bool {
		switch state[fn] {
		case 1, 3:
			return false
		case 2:
			return true
		}
		state[fn] = 1
		for id := range refs[fn] {
			if isRoot[id] || (refs[id] != nil && reaches(id)) {
				state[fn] = 2
				return true
			}
		}
		state[fn] = 3
		return false
	}
	disabled = map[string]bool{}
	for _, tn := range all {
		if reaches(tn) {
			tests = append(tests, tn)
			if skipsFirst[tn] {
				disabled[tn] = true
			}
		}
	}
	sort.Strings(tests)
	return tests, disabled, nil
}

// startsWithSkip reports whether a test function's first statement is a
// call of Skip, Skipf or SkipNow on its *testing.T parameter.
func startsWithSkip(fd *ast.FuncDecl) bool {
	if fd.Body == nil || len(fd.Body.List) == 0 || len(fd.Type.Params.List) != 1 || len(fd.Type.Params.List[0].Names) != 1 {
		return false
	}
	es, ok := fd.Body.List[0].(*ast.ExprStmt)
	if !ok {
		return false
	}
	call, ok := es.X.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	recv, ok := sel.X.(*ast.Ident)
	switch {
	case !ok || recv.Name != fd.Type.Params.List[0].Names[0].Name:
		return false
	case sel.Sel.Name == "Skip", sel.Sel.Name == "Skipf", sel.Sel.Name == "SkipNow":
		return true
	}
	return false
}

// runSuite runs every test of s matching filter, each in its own process
// with env and a timeout, parallel at a time, and classifies each result
// against pending.
func runSuite(s suite, filter *regexp.Regexp, env []string, timeout time.Duration, parallel int, pending map[string]pendingTest) []result {
	return runSuiteVia(nil, nil, s, filter, env, timeout, parallel, pending)
}

// testExtra is what one test of a suite runs with beyond the suite's own.
type testExtra struct {
	env []string // appended to the environment
	// brokenSubtests are subtests broken whatever the broker, with the
	// evidence: the test runs without them (-test.skip) and its row
	// names them.
	brokenSubtests []brokenSubtest
}

// brokenSubtest is a subtest of a peer suite that cannot pass against any
// broker (a bug of the suite itself), so it is left out of its test's run.
type brokenSubtest struct {
	name string // the subtest's name as go test prints it (spaces as _)
	why  string // the evidence, in a few words
}

// brokenNote names the left-out subtests, grouped by reason, for the
// table.
func (x testExtra) brokenNote() string {
	var order []string
	by := map[string][]string{}
	for _, b := range x.brokenSubtests {
		if by[b.why] == nil {
			order = append(order, b.why)
		}
		by[b.why] = append(by[b.why], b.name)
	}
	var parts []string
	for _, why := range order {
		parts = append(parts, strings.Join(by[why], ", ")+": "+why)
	}
	return fmt.Sprintf("without %d subtests broken on any broker (%s)", len(x.brokenSubtests), strings.Join(parts, "; "))
}

// skipArgs is the -test.skip flag leaving out test's broken subtests.
func (x testExtra) skipArgs(test string) []string {
	if len(x.brokenSubtests) == 0 {
		return nil
	}
	var names []string
	for _, b := range x.brokenSubtests {
		names = append(names, regexp.QuoteMeta(b.name))
	}
	return []string{"-test.skip", "^" + regexp.QuoteMeta(test) + "$/^(" + strings.Join(names, "|") + ")$"}
}

// runSuiteVia is runSuite with each test process started through wrap
// (e.g. nsenter into a network namespace; nil: directly) and test name run
// with extra[name].
func runSuiteVia(wrap []string, extra map[string]testExtra, s suite, filter *regexp.Regexp, env []string, timeout time.Duration, parallel int, pending map[string]pendingTest) []result {
	var names []string
	for _, n := range s.tests {
		if filter == nil || filter.MatchString(n) {
			names = append(names, n)
		}
	}
	results := make([]result, len(names))
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			x := extra[n]
			r := classify(runOne(wrap, s.bin, n, append(env[:len(env):len(env)], x.env...), x.skipArgs(n), timeout), pending, s.disabled[n])
			if len(x.brokenSubtests) > 0 && r.outcome != outFail {
				r.note = strings.TrimSpace(r.note + " " + x.brokenNote())
			}
			results[i] = r
		}()
	}
	wg.Wait()
	return results
}

// runOne runs one test in its own process. The test binary's own -timeout
// panics a hung test with its goroutines dumped; the context kills the
// process if even that does not end it.
func runOne(wrap []string, bin, name string, env, args []string, timeout time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	argv := append(append([]string{}, wrap...), bin, "-test.run", "^"+name+"$", "-test.v", "-test.count=1",
		"-test.timeout", timeout.String())
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = os.TempDir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := testenv.NewCappedBuffer(4 << 20)
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	r := result{name: name, dur: time.Since(start), output: out.String()}
	status, reason := parseGoTest(r.output, name)
	switch {
	case ctx.Err() != nil:
		r.outcome, r.note = outFail, fmt.Sprintf("killed after %s", timeout+30*time.Second)
	case strings.Contains(r.output, "panic: test timed out"):
		r.outcome, r.note = outFail, fmt.Sprintf("timed out after %s", timeout)
	case status == "PASS" && err == nil:
		r.outcome = outPass
	case status == "SKIP" && err == nil:
		r.outcome, r.note = "SKIP", reason
	default:
		r.outcome, r.note = outFail, reason
		if reason == "" && err != nil {
			r.note = err.Error()
		}
	}
	return r
}

var goTestLine = regexp.MustCompile(`(?m)^--- (PASS|FAIL|SKIP): (\S+)`)

// parseGoTest finds name's top-level verdict in `go test -v` output and,
// for a skip or a failure, the message logged last before it (a Fatal's or
// Skip's own message, in the usual case).
func parseGoTest(out, name string) (status, reason string) {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		m := goTestLine.FindStringSubmatch(l)
		if m == nil || m[2] != name {
			continue
		}
		status = m[1]
		if status != "PASS" {
			reason = lastLogLine(lines[:i])
		}
		return status, reason
	}
	return "", lastLogLine(lines)
}

var logLine = regexp.MustCompile(`^\s+\S+_test\.go:\d+: (.*)`)

// lastLogLine returns the last test log message in lines, or the first
// panic line when the test panicked.
func lastLogLine(lines []string) string {
	last := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "panic: ") {
			return l
		}
		if m := logLine.FindStringSubmatch(l); m != nil && strings.TrimSpace(m[1]) != "" {
			last = m[1]
		}
	}
	return last
}

// classify turns a process result into the table's verdict: a pending test
// that fails or skips is pending; one that passes fails the run; a test its
// authors disabled (disabled: its first statement skips it) that skips is
// off; a skip of any other test fails the run.
func classify(r result, pending map[string]pendingTest, disabled bool) result {
	p, isPending := pending[r.name]
	switch {
	case disabled && r.outcome == "SKIP":
		r.outcome = outDisabled
		r.note = "disabled by its authors (its first statement skips it): " + trim(r.note, 80)
	case isPending && r.outcome == outPass:
		r.outcome = outFail
		r.note = fmt.Sprintf("passes but is pending on %s: remove it from pending_test.go", p.ref())
	case isPending:
		what := "fails"
		if r.outcome == "SKIP" {
			what = "skips"
		}
		r.outcome = outPending
		r.note = fmt.Sprintf("%s %s (%s: %s)", p.ref(), p.why, what, trim(r.note, 70))
	case r.outcome == "SKIP":
		r.outcome = outFail
		r.note = "skipped: " + r.note
	}
	return r
}

func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// table renders results as the human-readable table make test prints.
func table(title string, rs []result, wall time.Duration) string {
	return tableOff(title, "disabled by their authors", rs, wall)
}

// tableOff is table with offWhat saying, in its last line, what the off
// tests are.
func tableOff(title, offWhat string, rs []result, wall time.Duration) string {
	var b strings.Builder
	counts := map[outcome]int{}
	w := len("test")
	for _, r := range rs {
		counts[r.outcome]++
		w = max(w, len(r.name))
	}
	fmt.Fprintf(&b, "\n%s\n", title)
	fmt.Fprintf(&b, "  %-*s  %-7s  %8s  %s\n", w, "test", "result", "time", "note")
	fmt.Fprintf(&b, "  %s  %s  %s  %s\n", strings.Repeat("-", w), strings.Repeat("-", 7), strings.Repeat("-", 8), strings.Repeat("-", 40))
	for _, r := range rs {
		fmt.Fprintf(&b, "  %-*s  %-7s  %7.1fs  %s\n", w, r.name, r.outcome, r.dur.Seconds(), trim(r.note, 320))
	}
	off := ""
	if counts[outDisabled] > 0 {
		off = fmt.Sprintf("%d off (%s), ", counts[outDisabled], offWhat)
	}
	fmt.Fprintf(&b, "  %d passed, %d pending, %s%d failed, of %d; wall time %s\n",
		counts[outPass], counts[outPending], off, counts[outFail], len(rs), wall.Round(time.Second))
	return b.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestKgoDiscovery proves the integration tests are found by what they
// reach: kgo tests that dial the seed brokers (directly, through helpers,
// or through the SCRAM seeds) are found; unit tests, including one that
// calls a method named like the package's init, are not.
func TestKgoDiscovery(t *testing.T) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := goCmd(root, "list", "-m", "-f", "{{.Dir}}", "github.com/twmb/franz-go")
	if err != nil {
		t.Fatalf("locate franz-go: %v\n%s", err, out)
	}
	tests, _, err := integrationTests(filepath.Join(strings.TrimSpace(out), "pkg", "kgo"), "getSeedBrokers", "scramSeeds", "oauthSeeds")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, n := range tests {
		found[n] = true
	}
	for _, want := range []string{"TestPing", "TestGroupETL", "TestTxnEtl", "TestConsumeRegex", "TestSCRAMAuth", "TestOAuthAuth"} {
		if !found[want] {
			t.Errorf("integration test %s not found in %v", want, tests)
		}
	}
	for _, unit := range []string{"TestParseBrokerAddr", "TestAppendSumIsMonotonic", "TestBuildAckRanges"} {
		if found[unit] {
			t.Errorf("unit test %s taken for an integration test", unit)
		}
	}
}

// TestParseGoTest proves the verdict and its reason are read from `go test
// -v` output: the last message logged before a FAIL or SKIP, a panic's
// line, and nothing for a PASS.
func TestParseGoTest(t *testing.T) {
	for _, tc := range []struct {
		out, wantStatus, wantReason string
	}{
		{"=== RUN   TestX\n    x_test.go:3: progress\n    x_test.go:9: boom\n--- FAIL: TestX (0.01s)\nFAIL\n", "FAIL", "boom"},
		{"=== RUN   TestX\n    x_test.go:3: no broker\n--- SKIP: TestX (0.00s)\nPASS\n", "SKIP", "no broker"},
		{"=== RUN   TestX\n    x_test.go:3: fine\n--- PASS: TestX (0.00s)\nPASS\n", "PASS", ""},
		{"=== RUN   TestX\npanic: test timed out after 1s\n", "", "panic: test timed out after 1s"},
	} {
		status, reason := parseGoTest(tc.out, "TestX")
		if status != tc.wantStatus || reason != tc.wantReason {
			t.Errorf("parseGoTest(%q) = %q, %q; want %q, %q", tc.out, status, reason, tc.wantStatus, tc.wantReason)
		}
	}
}

// TestDisabledDiscovery proves a test is taken as disabled by its authors
// only when its first statement skips it unconditionally: a conditional
// skip, a skip after other statements or one on another value is not.
func TestDisabledDiscovery(t *testing.T) {
	dir := t.TempDir()
	src := `package x
import "testing"
func dial() {}
func TestOff(t *testing.T)        { t.Skip("never runs"); dial() }
func TestOffNow(tt *testing.T)    { tt.SkipNow(); dial() }
func TestCond(t *testing.T)       { if true { t.Skip() }; dial() }
func TestLater(t *testing.T)      { dial(); t.Skip() }
func TestOther(t *testing.T)      { var u testing.TB; u.Skip(); dial() }
func TestUnit(t *testing.T)       { t.Skip() }
`
	if err := os.WriteFile(filepath.Join(dir, "x_test.go"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	tests, disabled, err := integrationTests(dir, "dial")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(tests, ","), "TestCond,TestLater,TestOff,TestOffNow,TestOther"; got != want {
		t.Fatalf("integration tests %s, want %s", got, want)
	}
	if len(disabled) != 2 || !disabled["TestOff"] || !disabled["TestOffNow"] {
		t.Fatalf("disabled %v, want TestOff and TestOffNow", disabled)
	}
	r := classify(result{name: "TestOff", outcome: "SKIP", note: "never runs"}, nil, true)
	if r.outcome != outDisabled {
		t.Fatalf("a disabled test that skips: %s, want %s", r.outcome, outDisabled)
	}
	if r := classify(result{name: "TestOff", outcome: outFail}, nil, true); r.outcome != outFail {
		t.Fatalf("a disabled test that runs and fails: %s, want FAIL", r.outcome)
	}
}

// TestBrokenSubtestArgs proves a test's broken subtests are left out by
// an anchored -test.skip of exactly them, and named in its row by reason.
func TestBrokenSubtestArgs(t *testing.T) {
	x := testExtra{brokenSubtests: []brokenSubtest{{"a_b", "bug 1"}, {"c", "bug 2"}, {"d.e", "bug 1"}}}
	args := x.skipArgs("TestX")
	if len(args) != 2 || args[0] != "-test.skip" || args[1] != `^TestX$/^(a_b|c|d\.e)$` {
		t.Fatalf("skip args %q", args)
	}
	if got, want := x.brokenNote(), "without 3 subtests broken on any broker (a_b, d.e: bug 1; c: bug 2)"; got != want {
		t.Fatalf("note %q, want %q", got, want)
	}
	if args := (testExtra{}).skipArgs("TestX"); args != nil {
		t.Fatalf("no broken subtests: args %q", args)
	}
}
