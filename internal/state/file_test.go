package state_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/offpeak-charging/offpeak/internal/state"
)

// Environment of the child processes of TestFileCrossProcess.
const (
	childDirEnv   = "STATE_TEST_CHILD_DIR"
	childCountEnv = "STATE_TEST_CHILD_INCREMENTS"
)

func newFileStore(t *testing.T) (*state.File, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := state.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func TestNewFileRequiresDir(t *testing.T) {
	t.Parallel()
	if _, err := state.NewFile(""); err == nil || !strings.Contains(err.Error(), "STATE_DIR") {
		t.Fatalf("NewFile(\"\"): err = %v, want one naming STATE_DIR", err)
	}
}

// TestFileLayout pins what an operator sees in STATE_DIR.
func TestFileLayout(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	const data = "{\n  \"soc\": 81\n}\n"
	gen := mustPut(t, s, "vehicles/5YJ3A.json", data, 0)

	raw, err := os.ReadFile(filepath.Join(dir, "vehicles", "5YJ3A.json"))
	if err != nil || string(raw) != data {
		t.Fatalf("cat vehicles/5YJ3A.json = %q, %v; want the JSON exactly as written", raw, err)
	}
	rawGen, err := os.ReadFile(filepath.Join(dir, "vehicles", "5YJ3A.json.gen"))
	if err != nil || strings.TrimSpace(string(rawGen)) != strconv.FormatInt(gen, 10) {
		t.Fatalf("generation sidecar = %q, %v; want %d", rawGen, err, gen)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "vehicles"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}

	// A file placed by hand, with no sidecar, reads as generation 1 and can
	// be taken over by compare-and-swap.
	if err := os.WriteFile(filepath.Join(dir, "vehicles", "HAND.json"), []byte(`{"n":5}`), 0o600); err != nil {
		t.Fatal(err)
	}
	obj := mustGet(t, s, "vehicles/HAND.json")
	if obj.Generation != 1 {
		t.Fatalf("hand-placed file: generation %d, want 1", obj.Generation)
	}
	if _, err := s.Put(context.Background(), "vehicles/HAND.json", []byte(`{"n":6}`), 1); err != nil {
		t.Fatalf("Put over hand-placed file: %v", err)
	}
	keys, err := s.List(context.Background(), "vehicles/")
	if err != nil || strings.Join(keys, ",") != "vehicles/5YJ3A.json,vehicles/HAND.json" {
		t.Fatalf("List = %q, %v; sidecars and lock files must not show", keys, err)
	}
}

func TestFileCorrupt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		data, gen string // "" = leave the file as the store wrote it
	}{
		{"half-written JSON", `{"soc": 8`, ""},
		{"not JSON", "\x00\x01garbage", ""},
		{"empty data file", "\x00", ""},
		{"garbage generation", "", "banana"},
		{"zero generation", "", "0\n"},
		{"empty generation", "", "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, dir := newFileStore(t)
			gen := mustPut(t, s, "vehicles/x.json", `{"soc":80}`, 0)
			p := filepath.Join(dir, "vehicles", "x.json")
			if tt.data != "" {
				data := tt.data
				if data == "\x00" {
					data = ""
				}
				if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.gen != "" {
				if err := os.WriteFile(p+".gen", []byte(tt.gen), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := s.Get(context.Background(), "vehicles/x.json")
			if !errors.Is(err, state.ErrCorrupt) {
				t.Fatalf("Get: err = %v, want ErrCorrupt", err)
			}
			_, err = state.Update(context.Background(), s, "vehicles/x.json", increment(new(atomic.Int64)))
			if !errors.Is(err, state.ErrCorrupt) {
				t.Fatalf("Update: err = %v, want ErrCorrupt", err)
			}
			if tt.gen != "" {
				// Without a readable generation no write can be checked.
				if _, err := s.Put(context.Background(), "vehicles/x.json", []byte(`{}`), gen); !errors.Is(err, state.ErrCorrupt) {
					t.Fatalf("Put: err = %v, want ErrCorrupt", err)
				}
			}
		})
	}
}

// TestFileLockWaitEnds: while another process holds a key's lock, calls
// wait for it and end in ErrUnavailable when the context does.
func TestFileLockWaitEnds(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	mustPut(t, s, "leases/cycle-A", `{}`, 0)
	held := flock.New(filepath.Join(dir, "leases", "cycle-A.lock"))
	if err := held.Lock(); err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := s.Get(ctx, "leases/cycle-A"); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Get while locked: err = %v, want ErrUnavailable", err)
	}
	s.Timeout = 30 * time.Millisecond
	if _, err := s.Put(context.Background(), "leases/cycle-A", []byte(`{}`), 0); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Put while locked: err = %v, want ErrUnavailable", err)
	}
}

// TestFileCrossProcess runs two copies of this test binary that increment
// one counter through the same directory: every increment must survive.
func TestFileCrossProcess(t *testing.T) {
	if os.Getenv(childDirEnv) != "" {
		t.Skip("running as a child")
	}
	t.Parallel()
	dir := t.TempDir()
	const children, each = 2, 25

	var procs []*exec.Cmd
	var gos []func()
	var outs []*strings.Builder
	for range children {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileCrossProcessChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childCountEnv+"="+strconv.Itoa(each))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out := new(strings.Builder)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		outs = append(outs, out)
		// The children wait for a line on stdin, so both are running before
		// either starts writing.
		gos = append(gos, func() { _, _ = fmt.Fprintln(stdin, "go"); _ = stdin.Close() })
	}
	for _, g := range gos {
		g()
	}
	for i, cmd := range procs {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i])
		}
		if !strings.Contains(outs[i].String(), "increments done") {
			t.Fatalf("child %d did not run its increments:\n%s", i, outs[i])
		}
		for _, line := range strings.Split(outs[i].String(), "\n") {
			if strings.Contains(line, "increments done") {
				t.Logf("child %d: %s", i, strings.TrimSpace(line))
			}
		}
	}

	s, err := state.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := state.Load[counter](context.Background(), s, "vehicles/counter.json")
	if err != nil {
		t.Fatal(err)
	}
	if got.N != children*each {
		t.Fatalf("count = %d after %d increments in %d processes: lost updates", got.N, children*each, children)
	}
}

// TestFileCrossProcessChild is the child side of TestFileCrossProcess.
func TestFileCrossProcessChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("only runs as a child of TestFileCrossProcess")
	}
	n, err := strconv.Atoi(os.Getenv(childCountEnv))
	if err != nil {
		t.Fatal(err)
	}
	s, err := state.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatalf("waiting for the start signal: %v", err)
	}
	var calls, gaveUp atomic.Int64
	for range n {
		if err := incrementUntilDone(context.Background(), s, "vehicles/counter.json", &calls, &gaveUp); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("increments done: %d increments, %d fn calls, %d Update calls gave up\n", n, calls.Load(), gaveUp.Load())
}

// TestFileListSkipsStrayFiles: temp files from a crash and files whose names
// are not valid keys are not objects.
func TestFileListSkipsStrayFiles(t *testing.T) {
	t.Parallel()
	s, dir := newFileStore(t)
	mustPut(t, s, "vehicles/A.json", `{}`, 0)
	for _, name := range []string{".A.json.tmp-123", "bad name.json"} {
		if err := os.WriteFile(filepath.Join(dir, "vehicles", name), []byte(`{}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "vehicles", "A.json"), filepath.Join(dir, "vehicles", "link.json")); err != nil && !errors.Is(err, fs.ErrPermission) {
		t.Fatal(err)
	}
	keys, err := s.List(context.Background(), "")
	if err != nil || strings.Join(keys, ",") != "vehicles/A.json" {
		t.Fatalf("List = %q, %v; want [vehicles/A.json]", keys, err)
	}
}
