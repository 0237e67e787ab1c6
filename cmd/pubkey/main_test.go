package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
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

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/pubkey"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// pubkeyBinary builds this command once per test run.
func pubkeyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pubkey-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "pubkey")
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

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
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
	bin := pubkeyBinary(t)
	for want, env := range map[string][]string{
		"GOOGLE_CLOUD_PROJECT": {"SECRETS_BACKEND=gcp"},
		"SECRETS_BACKEND":      {"SECRETS_BACKEND=vault"},
		"PORT":                 {"PORT=http"},
		"PUBLIC_KEY_REFRESH":   {"PUBLIC_KEY_REFRESH=forever"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "PORT=" + freePort(t), "SECRETS_DIR=" + t.TempDir()}, env...)
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

// The real binary: it starts without a key (503), serves the key once one
// is stored, never logs the private key, and stops cleanly on SIGTERM.
func TestServesTheStoredKeyAndStops(t *testing.T) {
	t.Parallel()
	bin := pubkeyBinary(t)
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(bin)
	cmd.Env = []string{"PORT=" + port, "SECRETS_DIR=" + dir, "LOG_FORMAT=json"}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	url := "http://127.0.0.1:" + port + pubkey.Path
	client := &http.Client{Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func() (int, string) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var status int
	var body string
	for i := 0; i < 500; i++ {
		if status, body = get(); status != 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "key_missing") {
		t.Fatalf("no key stored: %d %s\n%s", status, body, logs.String())
	}

	k, priv, err := carcmd.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	store, err := secrets.NewFile(dir, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Add(context.Background(), "tesla-private-key", priv); err != nil {
		t.Fatal(err)
	}
	// A miss reads the store again after 30 s; a restart reads it at once.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), `"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", logs.String())
	}

	cmd = exec.Command(bin)
	cmd.Env = []string{"PORT=" + port, "SECRETS_DIR=" + dir, "LOG_FORMAT=json"}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	for i := 0; i < 500; i++ {
		if status, body = get(); status != 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if status != http.StatusOK || body != string(k.PublicPEM()) {
		t.Fatalf("key stored: %d %s\n%s", status, body, logs.String())
	}
	if !strings.Contains(logs.String(), k.Fingerprint) {
		t.Errorf("the log does not name the served key by fingerprint:\n%s", logs.String())
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("stopped %s after SIGTERM; Cloud Run kills at 10 s", d)
	}

	block, _ := pem.Decode(priv)
	ec, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(priv)), "\n")
	d, err := ec.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{lines[1], hex.EncodeToString(d), "PRIVATE KEY-----"} {
		if strings.Contains(logs.String(), secret) || strings.Contains(body, secret) {
			t.Errorf("private key material %q in the log or the answer", secret)
		}
	}
}
