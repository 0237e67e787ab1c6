package secrets_test

import (
	"context"
	"strings"
	"testing"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clock.NewManual(start)
	cases := []struct {
		name    string
		backend secrets.Backend
		wantErr string // substring naming the variable to fix; "" for success
		check   func(secrets.Store) bool
	}{
		{"default is file", secrets.Backend{Dir: t.TempDir()}, "", func(s secrets.Store) bool { _, ok := s.(*secrets.File); return ok }},
		{"file", secrets.Backend{Kind: "file", Dir: t.TempDir()}, "", func(s secrets.Store) bool { _, ok := s.(*secrets.File); return ok }},
		{"memory", secrets.Backend{Kind: "memory"}, "", func(s secrets.Store) bool { _, ok := s.(*secrets.Memory); return ok }},
		{"file without dir", secrets.Backend{Kind: "file"}, "SECRETS_DIR", nil},
		{"gcp without project", secrets.Backend{Kind: "gcp"}, "GOOGLE_CLOUD_PROJECT", nil},
		{"unknown kind", secrets.Backend{Kind: "vault"}, "SECRETS_BACKEND", nil},
	}
	for _, c := range cases {
		s, closeFn, err := secrets.Open(ctx, c.backend, clk)
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
