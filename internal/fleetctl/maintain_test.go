package fleetctl

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

func TestRefresh(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.seedLogin()
	tr := h.transcript(t)
	tr.note("a login just now")

	// Valid for 8 h: nothing to do, nothing spent.
	code, out, errOut := tr.run("", "refresh")
	if code != ExitOK {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if n := h.sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != 0 {
		t.Fatalf("refreshes = %d, want 0", n)
	}

	// --force spends the refresh token once and stores the new pair.
	code, out, errOut = tr.run("", "refresh", "--force")
	if code != ExitOK {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	tr.check("refresh")
	if n := h.sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != 1 {
		t.Fatalf("refreshes = %d, want 1", n)
	}
	pair, ver := h.latest()
	if ver != "2" || pair.Source != "refresh" || !h.sim.RefreshTokenAccepted(pair.RefreshToken) {
		t.Errorf("stored v%s source %q", ver, pair.Source)
	}

	// Inside the refresh margin a plain refresh is due.
	h.clock.Advance(7*time.Hour + 40*time.Minute)
	code, out, errOut = h.run("", "refresh", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	var res struct {
		OK               bool   `json:"ok"`
		Action           string `json:"action"`
		Version          string `json:"version"`
		ExpiresInSeconds int64  `json:"expires_in_seconds"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	if !res.OK || res.Action != "refreshed" || res.Version != "3" || res.ExpiresInSeconds != 8*3600 {
		t.Errorf("result = %+v", res)
	}
	if n := h.sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != 2 {
		t.Errorf("refreshes = %d, want 2", n)
	}
	noLeak(t, h.storedTokens(), out, errOut)
}

// When Tesla rejects every stored refresh token (another login cycled the
// chain out), refresh exits 3: log in again.
func TestRefreshDeadChainExits3(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.seedLogin()
	h.sim.Login() // a login elsewhere starts a new chain
	h.clock.Advance(9 * time.Hour)
	tr := h.transcript(t)
	tr.note("the stored chain was cycled out by a login elsewhere; 9 h later")

	code, out, errOut := tr.run("", "refresh")
	if code != ExitReauth {
		t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, ExitReauth, out, errOut)
	}
	tr.check("refresh_dead_chain")
	code, out, _ = h.run("", "refresh", "--json")
	var res struct {
		OK       bool   `json:"ok"`
		Kind     string `json:"kind"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != ExitReauth || res.OK || res.Kind != "reauth_required" || res.ExitCode != ExitReauth {
		t.Errorf("exit %d, result %+v (%v):\n%s", code, res, err, out)
	}
	noLeak(t, h.storedTokens(), out, errOut)
}

func TestMigrateAdoptsTheLegacyTokenOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	legacy := h.sim.Login().RefreshToken // the old system's first login
	h.put("tesla-refresh-token", legacy)
	tr := h.transcript(t)
	tr.note("only the legacy secret holds a token")

	code, out, errOut := tr.run("", "migrate")
	if code != ExitOK {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	pair, _ := h.latest()
	if pair.Source != "migrate:legacy" || !h.sim.RefreshTokenAccepted(pair.RefreshToken) {
		t.Errorf("stored source %q accepted=%v", pair.Source, h.sim.RefreshTokenAccepted(pair.RefreshToken))
	}
	if n := h.sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}

	// Again: the legacy token is known (spent for v1) and is not spent twice.
	code, out, _ = tr.run("", "migrate")
	if code != ExitOK {
		t.Fatalf("second migrate: exit %d:\n%s", code, out)
	}
	if n := h.sim.TokenExchanges(fleetsim.OutcomeRefreshOK) + h.sim.TokenExchanges(fleetsim.OutcomeGraceReuse); n != 1 {
		t.Errorf("refreshes after the second migrate = %d, want 1", n)
	}
	_, out, errOut = tr.run("", "status")
	tr.check("migrate")
	noLeak(t, h.storedTokens(), out, errOut)
}

func TestPruneKeepsTheGraceWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// Five versions, aged 60 h, 50 h, 40 h, 24 h and 1 h at the end.
	for _, step := range []time.Duration{0, 10 * time.Hour, 10 * time.Hour, 16 * time.Hour, 23 * time.Hour} {
		h.clock.Advance(step)
		h.seedLogin()
	}
	h.clock.Advance(time.Hour)

	tr0 := h.transcript(t)
	if code, _, _ := tr0.run("", "prune", "--keep", "0"); code != ExitUsage {
		t.Errorf("--keep 0: exit %d, want %d", code, ExitUsage)
	}
	tr0.check("prune_keep_0")

	code, out, errOut := h.run("", "prune", "--keep", "1", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	var res struct {
		Destroyed []string `json:"destroyed"`
		Kept      []string `json:"kept"`
		Keep      int      `json:"keep_versions"`
		Grace     int64    `json:"grace_keep_seconds"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	// v5 is the newest kept; v4's token was spent 1 h ago (v5's age) and
	// v3's 24 h ago (v4's): both inside the 25 h grace, whatever --keep says.
	// v2's was spent 40 h ago: it goes, and so does v1.
	if strings.Join(res.Destroyed, ",") != "2,1" || strings.Join(res.Kept, ",") != "5,4,3" || res.Keep != 1 || res.Grace != 25*3600 {
		t.Errorf("result = %+v", res)
	}
	versions, err := h.store.Versions(context.Background(), "fleet-tokens")
	if err != nil || len(versions) != 3 {
		t.Errorf("versions left = %v (%v), want 3", versions, err)
	}

	tr := h.transcript(t)
	tr.note("after prune --keep 1 destroyed v2 and v1")
	if code, _, _ = tr.run("", "prune"); code != ExitOK {
		t.Errorf("second prune: exit %d", code)
	}
	tr.check("prune")
}

// On the memory backend: a store that fails is exit 1 (retry later), never
// 3, and nothing is spent at Tesla while the store cannot be read.
func TestStoreFailureIsExit1(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	mem := secrets.NewMemory(h.clock)
	h.runner.Store = mem
	for _, name := range []string{"tesla-client-id", "tesla-client-secret"} {
		if _, err := mem.Add(context.Background(), name, []byte(map[string]string{"tesla-client-id": fleetsim.DefaultClientID, "tesla-client-secret": fleetsim.DefaultClientSecret}[name])); err != nil {
			t.Fatal(err)
		}
	}
	p := h.sim.Login()
	payload, _ := tokens.Pair{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken, ExpiresAt: h.clock.Now().Add(time.Hour)}.Marshal()
	if _, err := mem.Add(context.Background(), "fleet-tokens", payload); err != nil {
		t.Fatal(err)
	}

	mem.FailNext("latest", secrets.ErrUnavailable, 10)
	tr := h.transcript(t)
	tr.note("the secret store fails its next reads")
	for _, args := range [][]string{{"refresh", "--force"}, {"status"}} {
		if code, _, _ := tr.run("", args...); code != ExitFailure {
			t.Errorf("%v: exit %d, want %d", args, code, ExitFailure)
		}
	}
	if n := h.sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != 0 {
		t.Errorf("refreshes = %d, want 0", n)
	}
	mem.FailNext("latest", nil, 0)
	tr.note("the store recovered")
	if code, _, _ := tr.run("", "refresh", "--force"); code != ExitOK {
		t.Errorf("after the store recovered: exit %d", code)
	}
	tr.check("store_failure")
}
