package backends_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/backends"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/state"
)

func TestOpenSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	cases := []struct {
		name    string
		backend backends.Secrets
		wantErr string // substring naming the variable to fix; "" for success
		check   func(secrets.Store) bool
	}{
		{"default is file", backends.Secrets{Dir: t.TempDir()}, "", func(s secrets.Store) bool { _, ok := s.(*secrets.File); return ok }},
		{"file", backends.Secrets{Kind: "file", Dir: t.TempDir()}, "", func(s secrets.Store) bool { _, ok := s.(*secrets.File); return ok }},
		{"memory", backends.Secrets{Kind: "memory"}, "", func(s secrets.Store) bool { _, ok := s.(*secrets.Memory); return ok }},
		{"file without dir", backends.Secrets{Kind: "file"}, "SECRETS_DIR", nil},
		{"gcp without project", backends.Secrets{Kind: "gcp"}, "GOOGLE_CLOUD_PROJECT", nil},
		{"unknown kind", backends.Secrets{Kind: "vault"}, "SECRETS_BACKEND", nil},
	}
	for _, c := range cases {
		s, closeFn, err := backends.OpenSecrets(ctx, c.backend, clk)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: %v, want an error naming %s", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil || !c.check(s) {
			t.Errorf("%s: %T, %v", c.name, s, err)
			continue
		}
		if err := closeFn(); err != nil {
			t.Errorf("%s: close: %v", c.name, err)
		}
	}
}

func TestOpenState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name    string
		backend backends.State
		wantErr string // substring naming the variable to fix; "" for success
		check   func(state.Store) bool
	}{
		{"default is file", backends.State{Dir: t.TempDir()}, "", func(s state.Store) bool { _, ok := s.(*state.File); return ok }},
		{"file", backends.State{Kind: "file", Dir: t.TempDir()}, "", func(s state.Store) bool { _, ok := s.(*state.File); return ok }},
		{"memory", backends.State{Kind: "memory"}, "", func(s state.Store) bool { _, ok := s.(*state.Memory); return ok }},
		{"file without dir", backends.State{Kind: "file"}, "STATE_DIR", nil},
		{"gcs without bucket", backends.State{Kind: "gcs"}, "STATE_BUCKET", nil},
		{"unknown kind", backends.State{Kind: "s3"}, "STATE_BACKEND", nil},
	}
	for _, c := range cases {
		s, closeFn, err := backends.OpenState(ctx, c.backend)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: %v, want an error naming %s", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil || !c.check(s) {
			t.Errorf("%s: %T, %v", c.name, s, err)
			continue
		}
		if err := closeFn(); err != nil {
			t.Errorf("%s: close: %v", c.name, err)
		}
	}
}
