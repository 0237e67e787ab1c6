package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/secrets/secretmanager"
	"github.com/offpeak-charging/offpeak/internal/secrets/smfake"
)

const project = "test-project"

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// backend builds one Store for one test. The contract below is every
// backend's, Secret Manager's (package secretmanager) included, so it is
// kept here and run against each. create makes a secret exist (empty)
// where the backend needs that before Add (Secret Manager does).
type backend struct {
	name string
	open func(t *testing.T, clk *clock.Manual) (store secrets.Store, create func(secret string))
	// leaseTTL: the lease expires on the clock (the file lease lives as long
	// as the holding process instead).
	leaseTTL bool
	// clockCreated: Created comes from the store's clock.
	clockCreated bool
}

func openMemory(t *testing.T, clk *clock.Manual) (secrets.Store, func(string)) {
	return secrets.NewMemory(clk), func(string) {}
}

func openFile(t *testing.T, clk *clock.Manual) (secrets.Store, func(string)) {
	f, err := secrets.NewFile(t.TempDir(), clk)
	if err != nil {
		t.Fatal(err)
	}
	return f, func(string) {}
}

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

func openGCP(t *testing.T, clk *clock.Manual) (secrets.Store, func(string)) {
	fake := startFake(t)
	return newGCP(t, fake, clk), func(s string) {
		if err := fake.CreateSecret(project, s); err != nil {
			t.Fatal(err)
		}
	}
}

var backends = []backend{
	{name: "memory", open: openMemory, leaseTTL: true, clockCreated: true},
	{name: "file", open: openFile, clockCreated: true},
	{name: "gcp", open: openGCP, leaseTTL: true},
}

// forEachBackend runs test against every backend, in parallel.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend, store secrets.Store, create func(string), clk *clock.Manual)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewManual(start)
			store, create := b.open(t, clk)
			test(t, b, store, create, clk)
		})
	}
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

func TestStoreVersionLifecycle(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend, s secrets.Store, create func(string), clk *clock.Manual) {
		ctx := context.Background()
		create("tokens")
		if _, err := s.Latest(ctx, "tokens"); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("Latest of an empty secret: %v, want ErrNotFound", err)
		}
		for i := 1; i <= 3; i++ {
			clk.Advance(time.Minute)
			if id := mustAdd(t, s, "tokens", []byte("p"+strconv.Itoa(i))); id != strconv.Itoa(i) {
				t.Fatalf("Add #%d returned id %q", i, id)
			}
		}
		v, err := s.Latest(ctx, "tokens")
		if err != nil || v.ID != "3" || string(v.Payload) != "p3" || v.Secret != "tokens" {
			t.Fatalf("Latest = %+v, %v; want version 3 with p3", v, err)
		}
		if b.clockCreated && !v.Created.Equal(start.Add(3*time.Minute)) {
			t.Errorf("Latest.Created = %v, want the clock's %v", v.Created, start.Add(3*time.Minute))
		}
		if v, err := s.Get(ctx, "tokens", "2"); err != nil || v.ID != "2" || string(v.Payload) != "p2" {
			t.Fatalf("Get(2) = %+v, %v", v, err)
		}
		infos, err := s.Versions(ctx, "tokens")
		if err != nil || !slices.Equal(ids(infos), []string{"3", "2", "1"}) {
			t.Fatalf("Versions = %v, %v; want 3 2 1", ids(infos), err)
		}
		for _, info := range infos {
			if info.State != secrets.StateEnabled || info.Created.IsZero() {
				t.Errorf("version %s: state %q, created %v", info.ID, info.State, info.Created)
			}
		}
		if b.clockCreated && !infos[2].Created.Equal(start.Add(time.Minute)) {
			t.Errorf("version 1 created %v, want %v", infos[2].Created, start.Add(time.Minute))
		}

		if err := s.Destroy(ctx, "tokens", "2"); err != nil {
			t.Fatalf("Destroy(2): %v", err)
		}
		if infos, err := s.Versions(ctx, "tokens"); err != nil || !slices.Equal(ids(infos), []string{"3", "1"}) {
			t.Fatalf("Versions after destroying 2 = %v, %v; want 3 1", ids(infos), err)
		}
		if _, err := s.Get(ctx, "tokens", "2"); !errors.Is(err, secrets.ErrVersionUnavailable) {
			t.Errorf("Get(destroyed 2): %v, want ErrVersionUnavailable", err)
		}
		if err := s.Destroy(ctx, "tokens", "2"); !errors.Is(err, secrets.ErrVersionUnavailable) {
			t.Errorf("Destroy(destroyed 2): %v, want ErrVersionUnavailable", err)
		}

		// A destroyed newest version is not skipped: Secret Manager's latest
		// resolves to it and fails.
		if err := s.Destroy(ctx, "tokens", "3"); err != nil {
			t.Fatalf("Destroy(3): %v", err)
		}
		if _, err := s.Latest(ctx, "tokens"); !errors.Is(err, secrets.ErrVersionUnavailable) {
			t.Fatalf("Latest with destroyed newest: %v, want ErrVersionUnavailable", err)
		}
		// Numbers are never reused.
		if id := mustAdd(t, s, "tokens", []byte("p4")); id != "4" {
			t.Fatalf("Add after destroying 3 returned %q, want 4", id)
		}
		if v, err := s.Latest(ctx, "tokens"); err != nil || v.ID != "4" || string(v.Payload) != "p4" {
			t.Fatalf("Latest = %+v, %v; want version 4", v, err)
		}
	})
}

func TestStoreNotFound(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend, s secrets.Store, create func(string), clk *clock.Manual) {
		ctx := context.Background()
		create("present")
		mustAdd(t, s, "present", []byte("x"))
		cases := []struct {
			name string
			call func() error
		}{
			{"latest of missing secret", func() error { _, err := s.Latest(ctx, "missing"); return err }},
			{"get of missing secret", func() error { _, err := s.Get(ctx, "missing", "1"); return err }},
			{"versions of missing secret", func() error { _, err := s.Versions(ctx, "missing"); return err }},
			{"destroy in missing secret", func() error { return s.Destroy(ctx, "missing", "1") }},
			{"get of missing version", func() error { _, err := s.Get(ctx, "present", "9"); return err }},
			{"destroy of missing version", func() error { return s.Destroy(ctx, "present", "9") }},
			{"get of id latest", func() error { _, err := s.Get(ctx, "present", "latest"); return err }},
			{"get of id 0", func() error { _, err := s.Get(ctx, "present", "0"); return err }},
			{"get of id 01", func() error { _, err := s.Get(ctx, "present", "01"); return err }},
			{"get of id -1", func() error { _, err := s.Get(ctx, "present", "-1"); return err }},
			{"latest of path name", func() error { _, err := s.Latest(ctx, "../present"); return err }},
			{"add to path name", func() error { _, err := s.Add(ctx, "a/b", []byte("x")); return err }},
			{"latest of empty name", func() error { _, err := s.Latest(ctx, ""); return err }},
		}
		for _, c := range cases {
			if err := c.call(); !errors.Is(err, secrets.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", c.name, err)
			}
		}
	})
}

func TestStorePayloadRoundTrip(t *testing.T) {
	t.Parallel()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	payloads := []struct {
		name string
		data []byte
	}{
		{"every byte value", all},
		{"empty", []byte{}},
		{"invalid utf-8 and NULs", []byte{0xff, 0xfe, 0, 0, 0xc3, 0x28, '\n'}},
		{"64 KiB", bytes.Repeat([]byte{0xa5, 0x00, 0x5a}, secrets.MaxPayload/3+1)[:secrets.MaxPayload]},
	}
	forEachBackend(t, func(t *testing.T, b backend, s secrets.Store, create func(string), clk *clock.Manual) {
		ctx := context.Background()
		create("blob")
		for _, p := range payloads {
			id := mustAdd(t, s, "blob", p.data)
			v, err := s.Get(ctx, "blob", id)
			if err != nil || !bytes.Equal(v.Payload, p.data) {
				t.Errorf("%s: Get(%s) = %d bytes, %v; want the %d bytes added", p.name, id, len(v.Payload), err, len(p.data))
			}
			v, err = s.Latest(ctx, "blob")
			if err != nil || v.ID != id || !bytes.Equal(v.Payload, p.data) {
				t.Errorf("%s: Latest = version %s, %d bytes, %v", p.name, v.ID, len(v.Payload), err)
			}
		}
		if _, err := s.Add(ctx, "blob", make([]byte, secrets.MaxPayload+1)); err == nil {
			t.Errorf("Add of 64 KiB + 1 succeeded")
		}
	})
}

func TestStoreLeaseExclusiveAndReleased(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend, s secrets.Store, create func(string), clk *clock.Manual) {
		ctx := context.Background()
		create("tokens")
		a, err := s.TryLease(ctx, "tokens", "worker-a", time.Minute)
		if err != nil {
			t.Fatalf("first TryLease: %v", err)
		}
		if _, err := s.TryLease(ctx, "tokens", "worker-b", time.Minute); !errors.Is(err, secrets.ErrLeaseHeld) {
			t.Fatalf("second holder's TryLease: %v, want ErrLeaseHeld", err)
		}
		if err := a.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if err := a.Release(ctx); err != nil {
			t.Fatalf("second Release: %v", err)
		}
		bl, err := s.TryLease(ctx, "tokens", "worker-b", time.Minute)
		if err != nil {
			t.Fatalf("TryLease after release: %v", err)
		}
		// The lease is per secret.
		create("other")
		if l, err := s.TryLease(ctx, "other", "worker-a", time.Minute); err != nil {
			t.Errorf("TryLease on another secret: %v", err)
		} else {
			_ = l.Release(ctx)
		}
		if _, err := s.TryLease(ctx, "tokens", "", time.Minute); err == nil || errors.Is(err, secrets.ErrLeaseHeld) {
			t.Errorf("TryLease with empty holder: %v, want a validation error", err)
		}
		if _, err := s.TryLease(ctx, "tokens", "worker-c", 0); err == nil || errors.Is(err, secrets.ErrLeaseHeld) {
			t.Errorf("TryLease with zero ttl: %v, want a validation error", err)
		}
		_ = bl.Release(ctx)
	})
}

func TestStoreLeaseExpires(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend, s secrets.Store, create func(string), clk *clock.Manual) {
		if !b.leaseTTL {
			t.Skip("the file lease lasts as long as the holding process (see TestFileLeaseAcrossProcesses)")
		}
		ctx := context.Background()
		create("tokens")
		a, err := s.TryLease(ctx, "tokens", "worker-a", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(59 * time.Second)
		if _, err := s.TryLease(ctx, "tokens", "worker-b", time.Minute); !errors.Is(err, secrets.ErrLeaseHeld) {
			t.Fatalf("TryLease before expiry: %v, want ErrLeaseHeld", err)
		}
		// The holder itself may take it again, which extends it.
		if _, err := s.TryLease(ctx, "tokens", "worker-a", time.Minute); err != nil {
			t.Fatalf("holder re-taking its lease: %v", err)
		}
		clk.Advance(59 * time.Second)
		if _, err := s.TryLease(ctx, "tokens", "worker-b", time.Minute); !errors.Is(err, secrets.ErrLeaseHeld) {
			t.Fatalf("TryLease before the extended expiry: %v, want ErrLeaseHeld", err)
		}
		clk.Advance(2 * time.Second)
		if b.name == "gcp" {
			// Judged on b's own clock: over once b has seen it unchanged
			// for its ttl plus the skew allowance (TestGCPLeaseOneClock).
			if _, err := s.TryLease(ctx, "tokens", "worker-b", time.Minute); !errors.Is(err, secrets.ErrLeaseHeld) {
				t.Fatalf("TryLease just after the written expiry: %v, want ErrLeaseHeld", err)
			}
			clk.Advance(time.Minute + secrets.DefaultLeaseSkew)
		}
		if _, err := s.TryLease(ctx, "tokens", "worker-b", time.Minute); err != nil {
			t.Fatalf("TryLease after expiry: %v", err)
		}
		// The crashed-and-late holder's Release must not free b's lease.
		if err := a.Release(ctx); err != nil {
			t.Fatalf("late Release: %v", err)
		}
		if _, err := s.TryLease(ctx, "tokens", "worker-c", time.Minute); !errors.Is(err, secrets.ErrLeaseHeld) {
			t.Fatalf("TryLease after a stale Release: %v, want ErrLeaseHeld (b still holds it)", err)
		}
	})
}

// Renew extends a lease only while nobody took it over: after another
// holder took an expired lease (its holder stalled), or after Release, it
// is ErrLeaseLost, the check a holder makes before writing.
func TestStoreLeaseRenew(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend, s secrets.Store, create func(string), clk *clock.Manual) {
		ctx := context.Background()
		create("tokens")
		a, err := s.TryLease(ctx, "tokens", "worker-a", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			clk.Advance(50 * time.Second)
			if err := a.Renew(ctx); err != nil {
				t.Fatalf("Renew while held: %v", err)
			}
			if _, err := s.TryLease(ctx, "tokens", "worker-b", time.Minute); !errors.Is(err, secrets.ErrLeaseHeld) {
				t.Fatalf("TryLease of a renewed lease: %v, want ErrLeaseHeld", err)
			}
		}
		if b.leaseTTL {
			// a stalls: no renewal for longer than the lease can be judged held.
			clk.Advance(10 * time.Minute)
			bl, err := s.TryLease(ctx, "tokens", "worker-b", time.Minute)
			if err != nil {
				t.Fatalf("TryLease of a lease its holder stopped renewing: %v", err)
			}
			if err := a.Renew(ctx); !errors.Is(err, secrets.ErrLeaseLost) {
				t.Fatalf("stalled holder's Renew after a takeover: %v, want ErrLeaseLost", err)
			}
			if err := bl.Renew(ctx); err != nil {
				t.Fatalf("new holder's Renew: %v", err)
			}
			a = bl
		}
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Renew(ctx); !errors.Is(err, secrets.ErrLeaseLost) {
			t.Fatalf("Renew after Release: %v, want ErrLeaseLost", err)
		}
	})
}

func TestStoreConcurrentAdds(t *testing.T) {
	t.Parallel()
	const writers = 50
	forEachBackend(t, func(t *testing.T, b backend, s secrets.Store, create func(string), clk *clock.Manual) {
		ctx := context.Background()
		create("tokens")
		got := make([]string, writers)
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() { got[i], errs[i] = s.Add(ctx, "tokens", []byte("payload-"+strconv.Itoa(i))) })
		}
		wg.Wait()
		seen := map[string]bool{}
		for i, id := range got {
			if errs[i] != nil {
				t.Fatalf("writer %d: %v", i, errs[i])
			}
			if seen[id] {
				t.Fatalf("version %s handed out twice", id)
			}
			seen[id] = true
			v, err := s.Get(ctx, "tokens", id)
			if err != nil || string(v.Payload) != "payload-"+strconv.Itoa(i) {
				t.Errorf("writer %d's version %s holds %q, %v", i, id, v.Payload, err)
			}
		}
		for n := 1; n <= writers; n++ {
			if !seen[strconv.Itoa(n)] {
				t.Errorf("versions are not 1..%d: %d missing (got %v)", writers, n, got)
			}
		}
		if infos, err := s.Versions(ctx, "tokens"); err != nil || len(infos) != writers || infos[0].ID != strconv.Itoa(writers) {
			t.Errorf("Versions: %d versions, newest %v, %v", len(infos), ids(infos[:min(1, len(infos))]), err)
		}
	})
}

// sentinel is a payload that must never show up in an error message.
const sentinel = "SENTINEL-refresh-token-4f1c9a"

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

func TestStoreErrorsNeverCarryPayloads(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend, s secrets.Store, create func(string), clk *clock.Manual) {
		ctx := context.Background()
		create("tokens")
		mustAdd(t, s, "tokens", []byte(sentinel))
		id := mustAdd(t, s, "tokens", []byte(sentinel+"-2"))
		if err := s.Destroy(ctx, "tokens", id); err != nil {
			t.Fatal(err)
		}
		_, err := s.Latest(ctx, "tokens")
		assertNoPayload(t, "Latest of destroyed", err)
		_, err = s.Get(ctx, "tokens", id)
		assertNoPayload(t, "Get of destroyed", err)
		assertNoPayload(t, "Destroy twice", s.Destroy(ctx, "tokens", id))
		_, err = s.Get(ctx, "tokens", "77")
		assertNoPayload(t, "Get of missing", err)
		_, err = s.Add(ctx, "tokens", []byte(strings.Repeat(sentinel, secrets.MaxPayload/len(sentinel)+1)))
		assertNoPayload(t, "Add too large", err)
		_, err = s.Add(ctx, "no/such", []byte(sentinel))
		assertNoPayload(t, "Add to invalid name", err)
		if l, err := s.TryLease(ctx, "tokens", "a", time.Minute); err == nil {
			_, err = s.TryLease(ctx, "tokens", "b", time.Minute)
			assertNoPayload(t, "TryLease held", err)
			_ = l.Release(ctx)
		}
	})
}

// ExampleNewMemory shows the test backend's fault injection.
func ExampleNewMemory() {
	m := secrets.NewMemory(clock.NewManual(start))
	ctx := context.Background()
	_, _ = m.Add(ctx, "fleet-tokens", []byte("{}"))
	m.FailNext(secrets.OpLatest, secrets.ErrUnavailable, 1)
	_, err := m.Latest(ctx, "fleet-tokens")
	fmt.Println(errors.Is(err, secrets.ErrUnavailable))
	v, _ := m.Latest(ctx, "fleet-tokens")
	fmt.Println(v.ID, m.Calls(secrets.OpLatest))
	// Output:
	// true
	// 1 2
}
