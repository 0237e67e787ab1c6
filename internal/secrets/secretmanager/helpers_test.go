package secretmanager_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/secrets/secretmanager"
	"github.com/offpeak-charging/offpeak/internal/secrets/smfake"
)

// The contract every backend keeps runs against this one in package
// secrets (store_test.go); the tests here are Secret Manager's own.

const project = "test-project"

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sentinel is a payload that must never show up in an error message.
const sentinel = "SENTINEL-refresh-token-4f1c9a"

// startFake serves a fresh smfake for the test.
func startFake(t *testing.T) *smfake.Server {
	t.Helper()
	fake := smfake.New()
	if _, err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Stop)
	return fake
}

// newGCP connects a real Secret Manager client to fake.
func newGCP(t *testing.T, fake *smfake.Server, clk clock.Clock) *secretmanager.Store {
	t.Helper()
	g, err := secretmanager.New(context.Background(), project, fake.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	g.Clock = clk
	return g
}

func mustAdd(t *testing.T, s secrets.Store, secret string, payload []byte) string {
	t.Helper()
	id, err := s.Add(context.Background(), secret, payload)
	if err != nil {
		t.Fatalf("Add(%s): %v", secret, err)
	}
	return id
}

func ids(infos []secrets.VersionInfo) []string {
	var out []string
	for _, i := range infos {
		out = append(out, i.ID)
	}
	return out
}

func assertNoPayload(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	if msg := err.Error(); strings.Contains(msg, sentinel) || strings.Contains(msg, "SENTINEL") {
		t.Errorf("%s: error message carries the payload: %s", what, msg)
	}
}
