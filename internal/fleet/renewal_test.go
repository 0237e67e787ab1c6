package fleet

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
)

// rotatingSource hands out the current token and, told of a refusal,
// moves to the next one (as the worker's token manager re-reads the store).
type rotatingSource struct {
	mu       sync.Mutex
	tokens   []string
	refused  []string
	renewErr error
}

func (s *rotatingSource) AccessToken(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[0], nil
}

func (s *rotatingSource) TokenRejected(_ context.Context, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused = append(s.refused, token)
	if s.renewErr != nil {
		return s.renewErr
	}
	if len(s.tokens) > 1 && s.tokens[0] == token {
		s.tokens = s.tokens[1:]
	}
	return nil
}

// Issue 14 (4): with WithTokenRenewal a 401 tells the source which token was
// refused and sends the request once more with the new one — a command
// too (Tesla ran nothing) — and never loops.
func TestTokenRenewalOn401(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	good := "eyJ.good-" + tokenMark + ".sig"
	api := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+good {
			answer(w, http.StatusUnauthorized, teslaError("token expired (401)"))
			return
		}
		answer(w, http.StatusOK, `{"response":{"result":true,"reason":""}}`)
	})

	src := &rotatingSource{tokens: []string{testToken, good}}
	c := New(api.URL(), src, WithTokenRenewal(src))
	if err := c.RemoveChargeSchedule(ctx, testVIN, 7); err != nil {
		t.Fatalf("command after a renewal: %v", err)
	}
	if got := len(api.requests()); got != 2 {
		t.Errorf("requests = %d, want the refused one and one retry", got)
	}
	if len(src.refused) != 1 || src.refused[0] != testToken {
		t.Errorf("refused tokens told = %d, want the first token once", len(src.refused))
	}

	// The new token is refused too: one retry, then the 401 is the caller's.
	still := &rotatingSource{tokens: []string{testToken, "eyJ.other.sig"}}
	c = New(api.URL(), still, WithTokenRenewal(still))
	_, err := c.Vehicle(ctx, testVIN)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	assertNoToken(t, err)
	if len(still.refused) != 1 {
		t.Errorf("renewals = %d, want 1 (no loop)", len(still.refused))
	}

	// A renewal that fails ends the call with both reasons.
	broken := &rotatingSource{tokens: []string{testToken}, renewErr: errors.New("token store unavailable")}
	c = New(api.URL(), broken, WithTokenRenewal(broken))
	_, err = c.Vehicle(ctx, testVIN)
	if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, broken.renewErr) {
		t.Fatalf("err = %v, want the 401 and the renewal's error", err)
	}
	assertNoToken(t, err)

	// Without the option a 401 is the caller's to handle (the scout does).
	plain := &rotatingSource{tokens: []string{testToken, good}}
	before := len(api.requests())
	if _, err := New(api.URL(), plain).Vehicle(ctx, testVIN); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	if got := len(api.requests()) - before; got != 1 || len(plain.refused) != 0 {
		t.Errorf("requests = %d, renewals = %d; want 1 and 0", got, len(plain.refused))
	}
}
