package fleetctl

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/offpeak-charging/offpeak/internal/fleet"
)

// What fleetctl prints is its user interface: the tests compare whole
// transcripts with testdata/*.golden, so a change of wording shows up as a
// reviewed diff instead of passing a substring check unseen.
//
//	go test ./internal/fleetctl -run TestName -update
//
// rewrites the files of the tests it runs.
var update = flag.Bool("update", false, "rewrite testdata/*.golden with what the tests print")

// transcript is a test's fleetctl runs as an operator's terminal shows
// them: the command, its exit code, stdout and stderr, with what changes
// from run to run (ports, temp dirs, keys, the login's random state)
// replaced by stable names.
type transcript struct {
	t     *testing.T
	h     *harness
	b     strings.Builder
	names []named
}

type named struct{ value, stable string }

// transcript starts one for the harness: its simulator and secret
// directory get names.
func (h *harness) transcript(t *testing.T) *transcript {
	t.Helper()
	tr := &transcript{t: t, h: h}
	tr.name(h.url, "http://fleet-api.sim")
	tr.name(h.dir, "$SECRETS_DIR")
	return tr
}

// transcript of an app harness also names its domain's server and the
// stored key (storeKey).
func (h *appHarness) transcript(t *testing.T) *transcript {
	t.Helper()
	tr := h.harness.transcript(t)
	tr.name(h.host.srv.URL, "http://app-domain.test")
	if h.key != nil {
		tr.key(h.key.Public, "<our key>")
	}
	for _, pem := range h.others {
		tr.keyPEM(pem, "<another key>")
	}
	return tr
}

// name makes every occurrence of value print as stable. Longer values are
// replaced first, so a URL and its prefix can both have names.
func (tr *transcript) name(value, stable string) {
	if value != "" {
		tr.names = append(tr.names, named{value, stable})
	}
}

// run runs fleetctl to completion, records it and returns what h.run does.
func (tr *transcript) run(stdin string, args ...string) (code int, stdout, stderr string) {
	tr.t.Helper()
	code, stdout, stderr = tr.h.run(stdin, args...)
	tr.add(args, code, stdout, stderr)
	return code, stdout, stderr
}

// elide prints text (a usage message another golden file shows whole) as
// one line saying what it is.
func (tr *transcript) elide(text, what string) {
	tr.name(text, "[… "+what+" …]\n")
}

// key names a public key (its 65-byte point) by its fingerprints.
func (tr *transcript) key(point []byte, stable string) {
	tr.name(fingerprint(point), stable)
}

// keyPEM names a public key given as PEM, and the PEM itself.
func (tr *transcript) keyPEM(pem []byte, stable string) {
	tr.t.Helper()
	point, err := fleet.ParsePublicKeyPEM(pem)
	if err != nil {
		tr.t.Fatal(err)
	}
	tr.key(point, stable)
	tr.name(strings.TrimSpace(string(pem)), "<"+strings.Trim(stable, "<>")+" PEM>")
}

// What is left after the names: loopback ports of servers the test did
// not name, the login's random parameters, keygen's temporary file, the
// time, caller and token fingerprints in log lines.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:PORT"},
	{regexp.MustCompile(`127\.0\.0\.1%3A\d+`), "127.0.0.1%3APORT"},
	{regexp.MustCompile(`\[::1\]:\d+`), "[::1]:PORT"},
	{regexp.MustCompile(`\b(state|code_challenge)=[A-Za-z0-9_-]{43}\b`), "$1=<random>"},
	{regexp.MustCompile(`\.fleetctl-keygen-\d+\.pem`), ".fleetctl-keygen-<random>.pem"},
	// Log lines on stderr: the wall clock's time, a token's fingerprint.
	{regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}\t`), "HH:MM:SS.mmm\t"},
	{regexp.MustCompile(`"sha256:[0-9a-f]{8}"`), `"sha256:<token>"`},
	// and the line that logged, which any edit of that file moves.
	{regexp.MustCompile(`\t[\w/.-]+\.go:\d+\t`), "\t<caller>\t"},
}

func (tr *transcript) normalize(s string) string {
	// strings.NewReplacer tries the old strings in argument order at each
	// position; longer first keeps "http://x:1/y" from losing to "http://x:1".
	names := slices.Clone(tr.names)
	sort.SliceStable(names, func(i, j int) bool { return len(names[i].value) > len(names[j].value) })
	pairs := make([]string, 0, 2*len(names))
	for _, n := range names {
		pairs = append(pairs, n.value, n.stable)
	}
	s = strings.NewReplacer(pairs...).Replace(s)
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return s
}

// ran records a run started with harness.start that exited with code.
func (tr *transcript) ran(r *running, code int) {
	tr.add(r.args, code, r.stdout.String(), r.stderr.String())
}

// add records one run. Names apply when the transcript is checked, so
// they may be given after the runs.
func (tr *transcript) add(args []string, code int, stdout, stderr string) {
	fmt.Fprintf(&tr.b, "%s\n", strings.TrimSpace("$ fleetctl "+strings.Join(quoteArgs(args), " ")))
	fmt.Fprintf(&tr.b, "[exit %d]\n", code)
	for _, stream := range []struct{ name, text string }{{"stdout", stdout}, {"stderr", stderr}} {
		if stream.text == "" {
			continue
		}
		fmt.Fprintf(&tr.b, "--- %s\n%s", stream.name, stream.text)
		if !strings.HasSuffix(stream.text, "\n") {
			tr.b.WriteString("\\ no newline at the end\n")
		}
	}
	tr.b.WriteString("\n")
}

// note writes a line of context between the runs (what the test changed).
func (tr *transcript) note(format string, args ...any) {
	fmt.Fprintf(&tr.b, "# %s\n\n", fmt.Sprintf(format, args...))
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$") {
			a = fmt.Sprintf("%q", a)
		}
		out[i] = a
	}
	return out
}

// check compares the transcript with testdata/<name>.golden (or writes it
// with -update).
func (tr *transcript) check(name string) {
	tr.t.Helper()
	path := filepath.Join("testdata", name+".golden")
	got := tr.normalize(tr.b.String())
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tr.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			tr.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tr.t.Fatalf("%v (go test ./internal/fleetctl -run '^%s$' -update writes it)", err, tr.t.Name())
	}
	if got != string(want) {
		tr.t.Errorf("the output differs from %s (-want +got; -update rewrites it):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff shows what changed between two texts, line by line, with a
// little context: enough to read a changed message in the test log.
func lineDiff(want, got string) string {
	lines := editScript(strings.Split(want, "\n"), strings.Split(got, "\n"))
	const context = 2
	changed := func(k int) bool {
		for n := max(k-context, 0); n <= k+context && n < len(lines); n++ {
			if lines[n].op != ' ' {
				return true
			}
		}
		return false
	}
	var out strings.Builder
	last := -1
	for k, l := range lines {
		if !changed(k) {
			continue
		}
		if last >= 0 && k > last+1 {
			out.WriteString("  …\n")
		}
		fmt.Fprintf(&out, "%c %s\n", l.op, l.text)
		last = k
	}
	return out.String()
}

type diffLine struct {
	op   byte // ' ', '-' or '+'
	text string
}

// editScript turns a into b through their longest common subsequence,
// found by dynamic programming: transcripts are short (tens to a few
// hundred lines).
func editScript(a, b []string) []diffLine {
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var lines []diffLine
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			lines = append(lines, diffLine{' ', a[i]})
			i, j = i+1, j+1
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			lines = append(lines, diffLine{'+', b[j]})
			j++
		default:
			lines = append(lines, diffLine{'-', a[i]})
			i++
		}
	}
	return lines
}
