package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

func TestParseCars(t *testing.T) {
	t.Parallel()
	cars, err := parseCars("5YJ3E7EB0KF000001@52.2297,21.0122, 5YJ3E7EB0KF000002@50.06,-19.94;5YJ3E7EB0KF000003")
	if err != nil {
		t.Fatal(err)
	}
	if len(cars) != 3 || cars[1].VIN != "5YJ3E7EB0KF000002" || cars[1].Latitude != 50.06 || cars[1].Longitude != -19.94 ||
		cars[2].Latitude != 52.2297 || cars[0].State != "online" {
		t.Fatalf("cars %+v", cars)
	}
	if cars[0].CommandSigning != "" || cars[0].UnsignedHardlocked {
		t.Errorf("default mode %+v", cars[0])
	}
	cars, err = parseCars("5YJSA1E2XJF000002:legacy@52.2,21.0;5YJ3E7EB0KF000003:allowed,5YJ3E7EB0KF000004:HardLocked@1,2,5YJ3E7EB0KF000005:off,5YJ3E7EB0KF000006:required")
	if err != nil {
		t.Fatal(err)
	}
	if len(cars) != 5 || cars[0].VIN != "5YJSA1E2XJF000002" || cars[0].CommandSigning != fleetsim.CommandSigningOff || cars[0].Latitude != 52.2 ||
		cars[1].CommandSigning != fleetsim.CommandSigningAllowed || !cars[2].UnsignedHardlocked || cars[2].CommandSigning != fleetsim.CommandSigningRequired ||
		cars[2].Longitude != 2 || cars[3].CommandSigning != fleetsim.CommandSigningOff || cars[4].CommandSigning != fleetsim.CommandSigningRequired {
		t.Fatalf("modes %+v", cars)
	}
	for _, bad := range []string{"", "VIN@52.1", "VIN@x,1", "@1,2", "VIN:sometimes", ":legacy@1,2"} {
		if _, err := parseCars(bad); err == nil {
			t.Errorf("parseCars(%q) accepted", bad)
		}
	}
}

// lockedBuffer is an io.Writer the test can read while realMain writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRealMainServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- realMain(ctx, []string{"-addr", "127.0.0.1:0", "-manual-clock", "-expires-in", "3600"}, &stdout, io.Discard)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatal("no base URL printed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	base := strings.TrimSpace(stdout.String())

	resp, err := http.Post(base+"/sim/login", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var pair struct {
		ExpiresIn   int    `json:"expires_in"`
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&pair)
	resp.Body.Close()
	if pair.ExpiresIn != 3600 {
		t.Errorf("expires_in %d, want 3600", pair.ExpiresIn)
	}
	resp, err = http.Get(base + "/sim/cars")
	if err != nil {
		t.Fatal(err)
	}
	var cars []map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&cars)
	resp.Body.Close()
	if len(cars) != 2 || cars[0]["vin"] != "5YJ3E7EB0KF000001" || cars[0]["command_signing"] != "required" ||
		cars[1]["vin"] != "5YJSA1E2XJF000002" || cars[1]["command_signing"] != "off" || cars[0]["latitude"] != cars[1]["latitude"] {
		t.Errorf("default cars %v", cars)
	}

	// The Model 3 refuses REST commands, the Model S takes them.
	for vin, want := range map[string]int{"5YJ3E7EB0KF000001": 403, "5YJSA1E2XJF000002": 200} {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/1/vehicles/"+vin+"/command/set_charge_limit", strings.NewReader(`{"percent":90}`))
		req.Header.Set("Authorization", "Bearer "+pair.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: REST command %d, want %d", vin, resp.StatusCode, want)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("realMain: %v", err)
	}
}

func TestRealMainAppKey(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keyFile := t.TempDir() + "/public-key.pem"
	// protocol.md's test client key (public half only).
	pemKey := "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsra8aMLaBmXOZWgVWUmWxiOU7di+\nqQX+eBp1T+aoRacUMwkC8iXpJp1GbgWzSZgf2p2FzCPG+0RKpztikQXcbg==\n-----END PUBLIC KEY-----\n"
	if err := os.WriteFile(keyFile, []byte(pemKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := realMain(ctx, []string{"-addr", "127.0.0.1:0", "-pair-app-key"}, io.Discard, io.Discard); err == nil {
		t.Error("-pair-app-key without -app-key accepted")
	}
	if err := realMain(ctx, []string{"-addr", "127.0.0.1:0", "-app-key", keyFile + ".missing"}, io.Discard, io.Discard); err == nil {
		t.Error("missing -app-key file accepted")
	}

	var stdout lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- realMain(ctx, []string{"-addr", "127.0.0.1:0", "-manual-clock", "-app-key", keyFile, "-pair-app-key"}, &stdout, io.Discard)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatal("no base URL printed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	base := strings.TrimSpace(stdout.String())
	resp, err := http.Get(base + "/sim/cars/5YJ3E7EB0KF000001/keys")
	if err != nil {
		t.Fatal(err)
	}
	var keys struct {
		Keys []struct {
			PublicKey string `json:"public_key"`
			AppKey    bool   `json:"app_key"`
		} `json:"keys"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&keys)
	resp.Body.Close()
	if len(keys.Keys) != 1 || !keys.Keys[0].AppKey ||
		keys.Keys[0].PublicKey != "04b2b6bc68c2da0665ce656815594996c62394edd8bea905fe781a754fe6a845a714330902f225e9269d466e05b349981fda9d85cc23c6fb444aa73b629105dc6e" {
		t.Errorf("keys %+v", keys)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("realMain: %v", err)
	}
}

func TestParseDomainURLs(t *testing.T) {
	t.Parallel()
	f, err := parseDomainURLs("app.example.com=http://127.0.0.1:8090/, other.example.com=https://keys.example.net")
	if err != nil {
		t.Fatal(err)
	}
	if f("app.example.com") != "http://127.0.0.1:8090" || f("other.example.com") != "https://keys.example.net" || f("x.example.com") != "" {
		t.Errorf("mapping: %q %q %q", f("app.example.com"), f("other.example.com"), f("x.example.com"))
	}
	f, err = parseDomainURLs("http://127.0.0.1:9/")
	if err != nil || f("any.example.com") != "http://127.0.0.1:9" {
		t.Errorf("bare URL: %v", err)
	}
	if f, err := parseDomainURLs(""); f != nil || err != nil {
		t.Error("empty spec")
	}
	for _, bad := range []string{"app.example.com=ftp://x", "notaurl", "a=b"} {
		if _, err := parseDomainURLs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// -require-registration: a user call answers 412 until the app registered.
func TestRealMainRequireRegistration(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- realMain(ctx, []string{"-addr", "127.0.0.1:0", "-manual-clock", "-require-registration", "-domain-url", "app.example.com=http://127.0.0.1:9"}, &stdout, io.Discard)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatal("no base URL printed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	base := strings.TrimSpace(stdout.String())
	resp, err := http.Post(base+"/sim/login", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&pair)
	resp.Body.Close()
	get := func() int {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/1/vehicles", nil)
		req.Header.Set("Authorization", "Bearer "+pair.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != http.StatusPreconditionFailed {
		t.Errorf("before registration: %d", code)
	}
	pemKey := "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsra8aMLaBmXOZWgVWUmWxiOU7di+\nqQX+eBp1T+aoRacUMwkC8iXpJp1GbgWzSZgf2p2FzCPG+0RKpztikQXcbg==\n-----END PUBLIC KEY-----\n"
	body, _ := json.Marshal(map[string]string{"domain": "app.example.com", "public_key": pemKey})
	resp, err = http.Post(base+"/sim/partner-accounts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin register: %d", resp.StatusCode)
	}
	if code := get(); code != http.StatusOK {
		t.Errorf("after registration: %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("realMain: %v", err)
	}
}
