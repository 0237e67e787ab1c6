package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// workerBinary builds this command once per test run.
func workerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "worker-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "worker")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
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

func TestStartupNamesTheMissingVariable(t *testing.T) {
	t.Parallel()
	bin := workerBinary(t)
	cases := map[string][]string{
		"HOME_LAT":          {"WORKER_AUTH=none", "HOME_LAT="},
		"WORKER_AUTH_TOKEN": {"WORKER_AUTH=token"},
		"ALLOWED_INVOKERS":  {"WORKER_AUTH=iam"},
		// iam mode off Cloud Run without the audience to verify tokens against.
		"SERVICE_URL":          {"WORKER_AUTH=iam", "ALLOWED_INVOKERS=scout@p.iam.gserviceaccount.com"},
		"TESLA_AUTH_URL":       {"WORKER_AUTH=none", "TESLA_AUTH_URL=http://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"},
		"GOOGLE_CERTS_URL":     {"WORKER_AUTH=none", "GOOGLE_CERTS_URL=http://www.googleapis.com/oauth2/v3/certs"},
		"GOOGLE_CLOUD_PROJECT": {"SECRETS_BACKEND=gcp", "WORKER_AUTH=none"},
		"PORT":                 {"WORKER_AUTH=none", "PORT=http"},
	}
	for want, env := range cases {
		// A valid configuration would serve forever: bound the run.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "PORT=" + freePort(t), "SECRETS_DIR=" + t.TempDir(), "STATE_DIR=" + t.TempDir(), "HOME_LAT=52.23", "HOME_LON=21.01"}, env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("%v: exit = %v, want 1", env, err)
		}
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("%v: stderr %q does not name %s", env, stderr.String(), want)
		}
	}
}

// SIGTERM arrives while a refresh waits for Tesla's answer (which Tesla has
// already committed): the worker finishes the request, stores the pair, and
// exits cleanly; the chain is valid.
func TestSIGTERMDuringARefresh(t *testing.T) {
	t.Parallel()
	bin := workerBinary(t)
	sim := fleetsim.New(fleetsim.Options{})
	simURL, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := t.TempDir()
	store, err := secrets.NewFile(dir, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := sim.Login()
	for name, v := range map[string]string{"tesla-client-id": fleetsim.DefaultClientID, "tesla-client-secret": fleetsim.DefaultClientSecret,
		"fleet-tokens": fmt.Sprintf(`{"access_token":%q,"refresh_token":%q,"expires_at":"2020-01-01T00:00:00Z"}`, p.AccessToken, p.RefreshToken)} {
		if _, err := store.Add(ctx, name, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	const bearer = "sigterm-test-shared-token-0001"
	cmd := exec.Command(bin)
	cmd.Env = []string{"PORT=" + port, "SECRETS_DIR=" + dir, "STATE_DIR=" + t.TempDir(), "WORKER_AUTH=token", "WORKER_AUTH_TOKEN=" + bearer,
		"TESLA_AUTH_URL=" + simURL + "/oauth2/v3/token", "TESLA_FLEET_API_URL=" + simURL, "LOG_FORMAT=json", "HOME_LAT=52.23", "HOME_LON=21.01"}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + port
	if !waitHealthy(base) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("worker never became healthy:\n%s", logs.String())
	}

	sim.InjectFault(fleetsim.EndpointToken, fleetsim.Fault{HoldAfterCommit: 1500 * time.Millisecond})
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/refresh-tokens", nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	// Tesla has rotated (and holds its answer) before the signal arrives.
	for sim.TokenExchanges(fleetsim.OutcomeRefreshOK) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.status != 200 || !strings.Contains(r.body, `"refreshed"`) {
		t.Fatalf("in-flight refresh: %d %s %v", r.status, r.body, r.err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker exit: %v\n%s", err, logs.String())
	}
	v, err := store.Latest(ctx, "fleet-tokens")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := tokens.ParsePair(v.Payload)
	if err != nil || v.ID != "2" || !sim.RefreshTokenAccepted(stored.RefreshToken) {
		t.Errorf("after SIGTERM: version %s, chain valid %v, %v", v.ID, sim.RefreshTokenAccepted(stored.RefreshToken), err)
	}
	if !strings.Contains(logs.String(), `"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), stored.RefreshToken) || strings.Contains(logs.String(), p.RefreshToken) {
		t.Error("a refresh token appears in the worker's log")
	}
}

func waitHealthy(base string) bool {
	for i := 0; i < 1000; i++ {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}
