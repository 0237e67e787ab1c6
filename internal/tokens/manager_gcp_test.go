package tokens_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/secrets/secretmanager"
	"github.com/offpeak-charging/offpeak/internal/secrets/smfake"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// Two managers, each with its own real Secret Manager client, against one
// fake Secret Manager, race on an expired token: the etag-guarded lease lets
// exactly one exchange happen, and the chain stays valid.
func TestTwoGCPClientsOnOneSecretManager(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := smfake.New()
	if _, err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Stop)
	const project = "demo-project"
	for _, id := range []string{"fleet-tokens", "tesla-client-id", "tesla-client-secret", "tesla-refresh-token"} {
		if err := fake.CreateSecret(project, id); err != nil {
			t.Fatal(err)
		}
	}
	clk := clock.NewManual(t0)
	sim := fleetsim.New(fleetsim.Options{Clock: clk})
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	sim.SetLatency(fleetsim.EndpointToken, 50*time.Millisecond)
	p := sim.Login()
	for secret, v := range map[string]string{"tesla-client-id": fleetsim.DefaultClientID, "tesla-client-secret": fleetsim.DefaultClientSecret,
		"fleet-tokens": fmt.Sprintf(`{"access_token":%q,"refresh_token":%q,"expires_at":"2026-12-01T11:00:00Z"}`, p.AccessToken, p.RefreshToken)} {
		if _, err := fake.AddVersion(project, secret, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	newManager := func(holder string) *tokens.Manager {
		store, err := secretmanager.New(ctx, project, fake.ClientOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		store.Clock = clk
		t.Cleanup(func() { _ = store.Close() })
		return tokens.New(store, &tokens.Exchanger{TokenURL: url + "/oauth2/v3/token"}, clk, nil,
			tokens.Config{Holder: holder, RetryBase: time.Millisecond, LeaseWait: 20 * time.Second})
	}
	managers := []*tokens.Manager{newManager("instance-a"), newManager("instance-b")}
	var wg sync.WaitGroup
	results := make([]tokens.Result, 2)
	errs := make([]error, 2)
	for i, m := range managers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = m.Ensure(ctx, tokens.EnsureOptions{})
		}()
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("manager %d: %v", i, errs[i])
		}
	}
	if c := sim.Counters().TokenExchanges; c[fleetsim.OutcomeRefreshOK] != 1 || c[fleetsim.OutcomeGraceReuse] != 0 {
		t.Errorf("exchanges = %v, want exactly one", c)
	}
	actions := map[tokens.Action]int{results[0].Action: 1}
	actions[results[1].Action]++
	if actions[tokens.ActionRefreshed] != 1 || actions[tokens.ActionNone] != 1 {
		t.Errorf("actions = %v, want one refreshed and one none", actions)
	}
	if n := fake.ActiveVersions(project, "fleet-tokens"); n != 2 {
		t.Errorf("fleet-tokens versions = %d, want 2", n)
	}
	if ann := fake.Annotations(project, "fleet-tokens"); ann[secretmanager.LeaseAnnotation] != "" {
		t.Errorf("lease left behind: %v", ann)
	}
	stored := managers[0]
	st, err := stored.Check(ctx)
	if err != nil || st.State != tokens.StateValid {
		t.Errorf("status after the race: %+v %v", st, err)
	}
	pair, ok := stored.Current()
	if !ok || !sim.RefreshTokenAccepted(pair.RefreshToken) {
		t.Error("the stored chain is not valid")
	}
}
