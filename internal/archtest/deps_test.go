package archtest

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/offpeak-charging/offpeak/"

// sdkFree are the packages that reach Google Cloud only through an
// interface (secrets.Store, state.Store): domain code, its storage
// interfaces and their local backends. The Google backends live in
// subpackages (secrets/secretmanager, state/gcsstate) that only
// internal/backends imports, for the wiring. Keeping Google's SDKs out of
// these keeps their builds and tests small and their dependencies
// reviewable. The scout is not listed: its package still does its own
// wiring.
var sdkFree = []string{
	"internal/tokens",
	"internal/charging",
	"internal/carcmd",
	"internal/fleet",
	"internal/secrets",
	"internal/state",
	"internal/needs",
	"internal/geo",
	"internal/scout/patrol",
	"internal/contract",
}

// googleSDK are the import path prefixes of Google's client libraries and
// what only they pull in. google.golang.org/protobuf is not one: Tesla's
// vehicle-command protocol (carcmd) is protobuf.
var googleSDK = []string{
	"cloud.google.com/",
	"google.golang.org/api/",
	"google.golang.org/grpc",
	"google.golang.org/genproto/",
	"github.com/googleapis/",
	"go.opentelemetry.io/",
}

func isGoogleSDK(path string) bool {
	return slices.ContainsFunc(googleSDK, func(p string) bool { return strings.HasPrefix(path, p) })
}

// TestDomainLinksNoGoogleSDK fails naming, for each listed package, every
// Google SDK package it reaches and the chain of imports that gets there.
// It asks the go command, whose reads go test does not track: run it with
// -count=1 (make lint and make test do) or a cached pass may hide a new
// import.
func TestDomainLinksNoGoogleSDK(t *testing.T) {
	t.Parallel()
	imports := importGraph(t, sdkFree)
	for _, root := range sdkFree {
		for _, chain := range sdkChains(imports, module+root) {
			t.Errorf("%s links %s, a Google SDK package (%s): reach Google only through an interface, with the backend picked in internal/backends",
				root, chain[len(chain)-1], strings.Join(trimModule(chain), " → "))
		}
	}
}

// importGraph maps every package the roots depend on to its imports.
func importGraph(t *testing.T, roots []string) map[string][]string {
	t.Helper()
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}
	for _, r := range roots {
		args = append(args, module+r)
	}
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 {
			graph[fields[0]] = fields[1:]
		}
	}
	return graph
}

// sdkChains walks the imports from root, breadth first, and returns for
// each Google SDK package it meets first (not those behind another one)
// the shortest chain of imports from root to it.
func sdkChains(imports map[string][]string, root string) [][]string {
	parent := map[string]string{root: ""}
	queue := []string{root}
	var found [][]string
	for len(queue) > 0 {
		pkg := queue[0]
		queue = queue[1:]
		for _, imp := range imports[pkg] {
			if _, seen := parent[imp]; seen {
				continue
			}
			parent[imp] = pkg
			if isGoogleSDK(imp) {
				found = append(found, chainTo(parent, imp))
				continue
			}
			queue = append(queue, imp)
		}
	}
	return found
}

func chainTo(parent map[string]string, pkg string) []string {
	var chain []string
	for ; pkg != ""; pkg = parent[pkg] {
		chain = append(chain, pkg)
	}
	slices.Reverse(chain)
	return chain
}

func trimModule(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = strings.TrimPrefix(p, module)
	}
	return out
}

// TestSDKChainsNamesTheWayIn checks the walk itself on a small graph, so
// the test above cannot pass by finding nothing.
func TestSDKChainsNamesTheWayIn(t *testing.T) {
	t.Parallel()
	imports := map[string][]string{
		"a":                           {"b", "fmt"},
		"b":                           {"cloud.google.com/go/storage", "c"},
		"c":                           {"google.golang.org/protobuf/proto"},
		"cloud.google.com/go/storage": {"google.golang.org/grpc"},
	}
	got := sdkChains(imports, "a")
	want := [][]string{{"a", "b", "cloud.google.com/go/storage"}}
	if !slices.EqualFunc(got, want, slices.Equal[[]string]) {
		t.Fatalf("chains = %q, want %q", got, want)
	}
}
