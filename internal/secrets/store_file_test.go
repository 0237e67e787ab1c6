package secrets_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

// The helper process: the test binary re-executed with these variables set
// plays a second process sharing the directory.
const (
	envHelper = "OFFPEAK_SECRETS_HELPER" // "add" or "lease"
	envDir    = "OFFPEAK_SECRETS_DIR"
	envCount  = "OFFPEAK_SECRETS_COUNT"
	envTag    = "OFFPEAK_SECRETS_TAG"
)

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		t.Skip("only runs as a helper process")
	}
	ctx := context.Background()
	f, err := secrets.NewFile(os.Getenv(envDir), clock.Real{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch mode {
	case "add":
		n, _ := strconv.Atoi(os.Getenv(envCount))
		for i := range n {
			id, err := f.Add(ctx, "shared", []byte(os.Getenv(envTag)+"-"+strconv.Itoa(i)))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
			fmt.Println(id)
		}
	case "lease":
		_, err := f.TryLease(ctx, "shared", "helper-"+strconv.Itoa(os.Getpid()), time.Hour)
		switch {
		case err == nil:
			fmt.Println("held")
		case errors.Is(err, secrets.ErrLeaseHeld):
			fmt.Println("busy")
		default:
			fmt.Println("error")
		}
		// Hold the lease until killed or until the parent closes stdin.
		_, _ = io.Copy(io.Discard, os.Stdin)
	}
	os.Exit(0)
}

func helper(t *testing.T, dir, mode string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), append([]string{envHelper + "=" + mode, envDir + "=" + dir}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

func TestFileConcurrentAddsFromProcesses(t *testing.T) {
	t.Parallel()
	const procs, each = 4, 15
	dir := t.TempDir()
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for p := range procs {
		cmd := helper(t, dir, "add", envCount+"="+strconv.Itoa(each), envTag+"=proc"+strconv.Itoa(p))
		out := &strings.Builder{}
		cmd.Stdout = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		outs = append(outs, out)
	}
	for p, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v", p, err)
		}
	}
	f, err := secrets.NewFile(dir, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	seen := map[string]string{}
	for p, out := range outs {
		got := strings.Fields(out.String())
		if len(got) != each {
			t.Fatalf("process %d reported %d versions, want %d", p, len(got), each)
		}
		for i, id := range got {
			want := "proc" + strconv.Itoa(p) + "-" + strconv.Itoa(i)
			if other, dup := seen[id]; dup {
				t.Fatalf("version %s handed to both %s and %s", id, other, want)
			}
			seen[id] = want
			v, err := f.Get(ctx, "shared", id)
			if err != nil || string(v.Payload) != want {
				t.Errorf("version %s = %q, %v; want %q", id, v.Payload, err, want)
			}
		}
	}
	infos, err := f.Versions(ctx, "shared")
	if err != nil || len(infos) != procs*each || infos[0].ID != strconv.Itoa(procs*each) || infos[len(infos)-1].ID != "1" {
		t.Fatalf("Versions: %d versions from %v to %v, %v; want 1..%d", len(infos), infos[0].ID, infos[len(infos)-1].ID, err, procs*each)
	}
	assertOnlyVersionFiles(t, filepath.Join(dir, "shared"))
}

func TestFileLeaseAcrossProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := secrets.NewFile(dir, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Another process holds the lease: we cannot take it until it dies.
	holder := helper(t, dir, "lease")
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "held" {
		_ = holder.Process.Kill()
		t.Fatalf("helper said %q, %v; want held", line, err)
	}
	if _, err := f.TryLease(ctx, "shared", "parent", time.Minute); !errors.Is(err, secrets.ErrLeaseHeld) {
		_ = holder.Process.Kill()
		t.Fatalf("TryLease while another process holds it: %v, want ErrLeaseHeld", err)
	}
	note, _ := os.ReadFile(filepath.Join(dir, "shared", ".lease"))
	if !strings.HasPrefix(string(note), "helper-") {
		t.Errorf(".lease says %q, want the holder's name", note)
	}
	// The holder crashes without releasing: the OS drops its lock.
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = holder.Wait()
	l, err := f.TryLease(ctx, "shared", "parent", time.Minute)
	if err != nil {
		t.Fatalf("TryLease after the holder died: %v", err)
	}

	// And the other way round: our lease blocks another process.
	out, err := helper(t, dir, "lease").Output()
	if err != nil || strings.TrimSpace(string(out)) != "busy" {
		t.Fatalf("helper while we hold the lease said %q, %v; want busy", out, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	out, err = helper(t, dir, "lease").Output()
	if err != nil || strings.TrimSpace(string(out)) != "held" {
		t.Fatalf("helper after our Release said %q, %v; want held", out, err)
	}
}

// assertOnlyVersionFiles checks what an operator's ls shows: version numbers
// and nothing else but dot-files.
func assertOnlyVersionFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			t.Errorf("temp file %s left behind", name)
		}
		if _, err := strconv.Atoi(name); err != nil && !strings.HasPrefix(name, ".") {
			t.Errorf("unexpected visible file %s", name)
		}
	}
}

func TestFileLayoutForOperators(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewManual(start)
	f, err := secrets.NewFile(dir, clk)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range []string{"one", "two", "three"} {
		mustAdd(t, f, "fleet-tokens", []byte(p))
	}
	if err := f.Destroy(ctx, "fleet-tokens", "2"); err != nil {
		t.Fatal(err)
	}
	sdir := filepath.Join(dir, "fleet-tokens")
	var visible []string
	entries, _ := os.ReadDir(sdir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			visible = append(visible, e.Name())
		}
	}
	if !slices.Equal(visible, []string{"1", "3"}) {
		t.Errorf("ls shows %v, want [1 3]", visible)
	}
	assertOnlyVersionFiles(t, sdir)
	if b, err := os.ReadFile(filepath.Join(sdir, "3")); err != nil || string(b) != "three" {
		t.Errorf("cat 3 = %q, %v", b, err)
	}
	for path, want := range map[string]os.FileMode{sdir: 0o700 | os.ModeDir, filepath.Join(sdir, "1"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode(), err, want)
		}
	}

	// Whatever an operator drops in the directory is not a version.
	for _, name := range []string{"notes.txt", "007", "4.bak"} {
		if err := os.WriteFile(filepath.Join(sdir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(sdir, "9"), 0o700); err != nil {
		t.Fatal(err)
	}
	infos, err := f.Versions(ctx, "fleet-tokens")
	if err != nil || !slices.Equal(ids(infos), []string{"3", "1"}) {
		t.Errorf("Versions with stray files = %v, %v; want [3 1]", ids(infos), err)
	}
	if v, err := f.Latest(ctx, "fleet-tokens"); err != nil || v.ID != "3" {
		t.Errorf("Latest with stray files = %v, %v; want 3", v.ID, err)
	}
	// A version written by hand (as an operator restoring a backup would) counts.
	if err := os.WriteFile(filepath.Join(sdir, "10"), []byte("by hand"), 0o600); err != nil {
		t.Fatal(err)
	}
	if id := mustAdd(t, f, "fleet-tokens", []byte("next")); id != "11" {
		t.Errorf("Add after a hand-written 10 returned %s, want 11", id)
	}
}

func TestFileCreatedFromClock(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(start)
	f, err := secrets.NewFile(t.TempDir(), clk)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(36 * time.Hour)
	mustAdd(t, f, "s", []byte("x"))
	infos, err := f.Versions(context.Background(), "s")
	if err != nil || len(infos) != 1 || !infos[0].Created.Equal(start.Add(36*time.Hour)) {
		t.Fatalf("Versions = %+v, %v; want created at the clock's time", infos, err)
	}
}

// Adds racing with destroys of the newest version must still never hand out
// a number twice: the tombstone keeps a destroyed number taken.
func TestFileNumbersNeverReusedUnderDestroy(t *testing.T) {
	t.Parallel()
	f, err := secrets.NewFile(t.TempDir(), clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const writers, each = 4, 25
	got := make(chan string, writers*each)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				id, err := f.Add(ctx, "s", []byte("x"))
				if err != nil {
					t.Error(err)
					return
				}
				got <- id
				// Destroy what we just added, racing the other writers' adds.
				if err := f.Destroy(ctx, "s", id); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(got)
	seen := map[string]bool{}
	for id := range got {
		if seen[id] {
			t.Fatalf("version %s handed out twice", id)
		}
		seen[id] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct versions, want %d", len(seen), writers*each)
	}
	if _, err := f.Latest(ctx, "s"); !errors.Is(err, secrets.ErrVersionUnavailable) {
		t.Fatalf("Latest with every version destroyed: %v, want ErrVersionUnavailable", err)
	}
}

func TestFileExposedFindsGroupOrOtherAccess(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "secrets") // created by the store: 0700
	f, err := secrets.NewFile(dir, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Add(context.Background(), "fleet-tokens", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Exposed(); err != nil || len(got) != 0 {
		t.Fatalf("a fresh store is exposed: %v %v", got, err)
	}
	if err := os.Chmod(filepath.Join(dir, "fleet-tokens", "1"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := f.Exposed()
	if err != nil || len(got) != 1 || !strings.Contains(got[0], filepath.Join("fleet-tokens", "1")) {
		t.Fatalf("Exposed = %v, %v", got, err)
	}
	var warned []string
	secrets.WarnIfExposed(f, func(msg string, paths []string) { warned = append(paths, msg) })
	if len(warned) != 2 || !strings.Contains(warned[1], "chmod -R go-rwx") {
		t.Errorf("warning = %v", warned)
	}
}
