package pubkey_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/offpeak-charging/offpeak/internal/pubkey"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

func TestConfig(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := pubkey.LoadConfig(ctx, envconfig.MapLookuper(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != "8080" || c.PrivateKeySecret != "tesla-private-key" || c.KeyRefresh != 10*time.Minute || c.Secrets.Backend != "file" {
		t.Errorf("defaults: %+v", c)
	}
	for want, env := range map[string]map[string]string{
		"GOOGLE_CLOUD_PROJECT": {"SECRETS_BACKEND": "gcp"},
		"SECRETS_BACKEND":      {"SECRETS_BACKEND": "vault"},
		"PUBLIC_KEY_REFRESH":   {"PUBLIC_KEY_REFRESH": "1s"},
		"LOG_FORMAT":           {"LOG_FORMAT": "xml"},
	} {
		if _, err := pubkey.LoadConfig(ctx, envconfig.MapLookuper(env)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error naming %s", env, err, want)
		}
	}
}

// Build with the file backend, as a developer runs it: the key an operator
// stored is served; a directory without the secret starts and answers 503.
func TestBuildWithTheFileBackend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	priv, pub := newKey(t)
	store, err := secrets.NewFile(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Add(ctx, "tesla-private-key", priv); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		dir    string
		status int
	}{"stored": {dir, http.StatusOK}, "missing": {t.TempDir(), http.StatusServiceUnavailable}} {
		cfg, err := pubkey.LoadConfig(ctx, envconfig.MapLookuper(map[string]string{"SECRETS_DIR": tc.dir}))
		if err != nil {
			t.Fatal(err)
		}
		app, err := pubkey.Build(ctx, cfg, pubkey.Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		srv := httptest.NewServer(app.Handler)
		resp, err := http.Get(srv.URL + pubkey.Path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		_ = app.Close()
		if resp.StatusCode != tc.status || (tc.status == http.StatusOK && string(body) != string(pub)) {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
}
