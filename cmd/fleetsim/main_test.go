package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
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
	for _, bad := range []string{"", "VIN@52.1", "VIN@x,1", "@1,2"} {
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
		ExpiresIn int `json:"expires_in"`
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
	if len(cars) != 1 || cars[0]["vin"] != "5YJ3E7EB0KF000001" {
		t.Errorf("default cars %v", cars)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("realMain: %v", err)
	}
}
