package faults

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// These tests need what an in-process instance cannot give: two operating
// system processes on one file store (the lease is an flock between
// processes), and a process killed with SIGKILL. They build cmd/worker once
// and run it on loopback against the simulator, which runs in the test on
// the real clock (the worker processes have no other).

var (
	buildOnce sync.Once
	binDir    string
	workerBin string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func workerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "faults-bin-"); buildErr != nil {
			return
		}
		workerBin = filepath.Join(binDir, "worker")
		out, err := exec.Command("go", "build", "-o", workerBin, "github.com/offpeak-charging/offpeak/cmd/worker").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/worker: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return workerBin
}

// procStack is the simulator plus a file secret store that worker
// processes share.
type procStack struct {
	t        *testing.T
	sim      *fleetsim.Sim
	simURL   string
	dir      string // SECRETS_DIR
	stateDir string
	store    *secrets.File
	seeded   tokens.Pair
}

func newProcStack(t *testing.T) *procStack {
	t.Helper()
	ps := &procStack{t: t, sim: fleetsim.New(fleetsim.Options{}), dir: t.TempDir(), stateDir: t.TempDir()}
	var err error
	if ps.simURL, err = ps.sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.sim.Close() })
	if ps.store, err = secrets.NewFile(ps.dir, clock.Real{}); err != nil {
		t.Fatal(err)
	}
	p := ps.sim.Login()
	// Expired: the next /refresh-tokens must spend the refresh token.
	ps.seeded = tokens.Pair{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken, ExpiresAt: time.Now().Add(-time.Minute).UTC()}
	payload, err := ps.seeded.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, v := range map[string][]byte{"tesla-client-id": []byte(fleetsim.DefaultClientID),
		"tesla-client-secret": []byte(fleetsim.DefaultClientSecret), "fleet-tokens": payload} {
		if _, err := ps.store.Add(ctx, name, v); err != nil {
			t.Fatal(err)
		}
	}
	return ps
}

type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *syncBuffer
	done chan error
}

// start runs a worker process on a free loopback port and waits for /health.
func (ps *procStack) start() *proc {
	t := ps.t
	t.Helper()
	port := freePort(t)
	p := &proc{cmd: exec.Command(workerBinary(t)), url: "http://127.0.0.1:" + port, logs: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Env = []string{"PORT=" + port, "SECRETS_BACKEND=file", "SECRETS_DIR=" + ps.dir, "STATE_DIR=" + ps.stateDir,
		"WORKER_AUTH=token", "WORKER_AUTH_TOKEN=" + bearer, "TESLA_AUTH_URL=" + ps.simURL + "/oauth2/v3/token",
		"TESLA_FLEET_API_URL=" + ps.simURL, "LOG_FORMAT=json", "HOME_LAT=52.23", "HOME_LON=21.01"}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("worker %s log:\n%s", p.url, tail(p.logs.String(), 40))
		}
	})
	for i := 0; i < 2000; i++ {
		resp, err := http.Get(p.url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("worker exited at start: %v\n%s", err, p.logs.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatalf("worker never answered /health:\n%s", p.logs.String())
	return nil
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func (ps *procStack) latest() (tokens.Pair, string) {
	ps.t.Helper()
	v, err := ps.store.Latest(context.Background(), "fleet-tokens")
	if err != nil {
		ps.t.Fatal(err)
	}
	p, err := tokens.ParsePair(v.Payload)
	if err != nil {
		ps.t.Fatal(err)
	}
	return p, v.ID
}

// Two worker processes on one store, 40 concurrent /refresh-tokens on an
// expired token split between them: one exchange at Tesla, one version
// written, every caller answered 200. Then a forced refresh on each at once:
// two exchanges one after the other, never the same token spent twice.
func TestTwoWorkerProcessesOnOneStore(t *testing.T) {
	t.Parallel()
	ps := newProcStack(t)
	ps.sim.SetLatency(fleetsim.EndpointToken, 100*time.Millisecond) // widen the race
	procs := []*proc{ps.start(), ps.start()}

	fire := func(n int, force bool) []answer {
		out := make([]answer, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				out[i] = postJSON(procs[i%2].url+"/refresh-tokens", map[string]any{"reason": "race", "force": force})
			}(i)
		}
		wg.Wait()
		return out
	}
	for i, a := range fire(40, false) {
		if a.status != 200 {
			t.Errorf("caller %d: %d %s", i, a.status, a.body)
		}
	}
	if got := ps.sim.Counters().TokenExchanges; got[fleetsim.OutcomeRefreshOK] != 1 || len(got) != 1 {
		t.Errorf("token requests = %v, want exactly one refresh_ok", got)
	}
	if _, id := ps.latest(); id != "2" {
		t.Errorf("fleet-tokens latest = %s, want 2 (one version written)", id)
	}

	for i, a := range fire(2, true) {
		if a.status != 200 || a.action != string(tokens.ActionRefreshed) {
			t.Errorf("forced caller %d: %d %s", i, a.status, a.body)
		}
	}
	if got := ps.sim.Counters().TokenExchanges; got[fleetsim.OutcomeRefreshOK] != 3 || len(got) != 1 {
		t.Errorf("token requests = %v, want three refresh_ok and nothing else", got)
	}
	stored, id := ps.latest()
	if id != "4" || stored.RefreshToken != ps.sim.NewestRefreshToken() || !ps.sim.RefreshTokenAccepted(stored.RefreshToken) {
		t.Errorf("fleet-tokens/%s is not the head of Tesla's chain", id)
	}
}

// SIGKILL between Tesla's answer and the store write: Tesla rotated, the
// worker died holding the only copy of the new pair. The stored token is
// inside Tesla's grace, so a restarted worker spends it again and stores a
// pair that works: the chain is valid.
func TestSIGKILLBetweenTeslaAndTheStore(t *testing.T) {
	t.Parallel()
	ps := newProcStack(t)
	w := ps.start()
	ps.sim.InjectFault(fleetsim.EndpointToken, fleetsim.Fault{HoldAfterCommit: time.Minute})
	go postJSON(w.url+"/refresh-tokens", nil) // never answered: the worker dies
	deadline := time.Now().Add(20 * time.Second)
	for ps.sim.TokenExchanges(fleetsim.OutcomeRefreshOK) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Tesla never saw the refresh")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-w.done
	w.done <- nil // for the cleanup's wait

	stored, id := ps.latest()
	if id != "1" || stored.RefreshToken != ps.seeded.RefreshToken {
		t.Fatalf("the killed worker wrote fleet-tokens/%s", id)
	}
	if stored.RefreshToken == ps.sim.NewestRefreshToken() || !ps.sim.ChainValid(stored.RefreshToken) {
		t.Fatal("expected Tesla to have rotated past the stored token, which must still be inside the grace")
	}

	w2 := ps.start()
	a := postJSON(w2.url+"/refresh-tokens", nil)
	if a.status != 200 || a.action != string(tokens.ActionRefreshed) {
		t.Fatalf("refresh after the restart: %d %s", a.status, a.body)
	}
	if got := ps.sim.TokenExchanges(fleetsim.OutcomeGraceReuse); got != 1 {
		t.Errorf("grace reuses = %d, want 1", got)
	}
	stored, id = ps.latest()
	if id != "2" || stored.RefreshToken != ps.sim.NewestRefreshToken() || !ps.sim.RefreshTokenAccepted(stored.RefreshToken) {
		t.Errorf("fleet-tokens/%s is not the head of a valid chain", id)
	}
	if !ps.sim.AccessTokenValid(stored.AccessToken) {
		t.Error("the stored access token does not work")
	}
}
