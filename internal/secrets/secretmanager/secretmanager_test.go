package secretmanager_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	smapi "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/secrets/secretmanager"
	"github.com/offpeak-charging/offpeak/internal/secrets/smfake"
)

// gcpWithSecret returns a Secret Manager store on a fresh fake holding secret "tokens"
// with one version.
func gcpWithSecret(t *testing.T) (*secretmanager.Store, *smfake.Server, *clock.Manual) {
	t.Helper()
	fake := startFake(t)
	clk := clock.NewManual(start)
	g := newGCP(t, fake, clk)
	if err := fake.CreateSecret(project, "tokens"); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, g, "tokens", []byte(sentinel))
	return g, fake, clk
}

func TestGCPErrorMapping(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	calls := map[string]func(g *secretmanager.Store) error{
		// AccessSecretVersion is retried by the client on Unavailable and
		// ResourceExhausted; those codes are tested below with a short context.
		"AccessSecretVersion": func(g *secretmanager.Store) error { _, err := g.Latest(ctx, "tokens"); return err },
		"ListSecretVersions":  func(g *secretmanager.Store) error { _, err := g.Versions(ctx, "tokens"); return err },
		"AddSecretVersion":    func(g *secretmanager.Store) error { _, err := g.Add(ctx, "tokens", []byte(sentinel)); return err },
		"GetSecret":           func(g *secretmanager.Store) error { _, err := g.TryLease(ctx, "tokens", "h", time.Minute); return err },
	}
	cases := []struct {
		method string
		code   codes.Code
		want   error
	}{
		{"AccessSecretVersion", codes.NotFound, secrets.ErrNotFound},
		{"AccessSecretVersion", codes.FailedPrecondition, secrets.ErrVersionUnavailable},
		{"AccessSecretVersion", codes.PermissionDenied, secrets.ErrPermissionDenied},
		{"AccessSecretVersion", codes.Unauthenticated, secrets.ErrPermissionDenied},
		{"AccessSecretVersion", codes.Internal, secrets.ErrUnavailable},
		{"AccessSecretVersion", codes.DataLoss, secrets.ErrCorrupt},
		{"ListSecretVersions", codes.Unavailable, secrets.ErrUnavailable},
		{"ListSecretVersions", codes.ResourceExhausted, secrets.ErrUnavailable},
		{"ListSecretVersions", codes.DeadlineExceeded, secrets.ErrUnavailable},
		{"ListSecretVersions", codes.Aborted, secrets.ErrUnavailable},
		{"ListSecretVersions", codes.Unknown, secrets.ErrUnavailable},
		{"ListSecretVersions", codes.PermissionDenied, secrets.ErrPermissionDenied},
		{"AddSecretVersion", codes.Unavailable, secrets.ErrUnavailable},
		{"AddSecretVersion", codes.NotFound, secrets.ErrNotFound},
		{"AddSecretVersion", codes.InvalidArgument, nil},
		{"GetSecret", codes.PermissionDenied, secrets.ErrPermissionDenied},
		{"GetSecret", codes.Unavailable, secrets.ErrUnavailable},
	}
	kinds := []error{secrets.ErrNotFound, secrets.ErrVersionUnavailable, secrets.ErrUnavailable,
		secrets.ErrPermissionDenied, secrets.ErrCorrupt, secrets.ErrLeaseHeld}
	g, fake, _ := gcpWithSecret(t)
	for _, c := range cases {
		fake.FailNext(c.method, c.code, 1)
		before := fake.Calls(c.method)
		err := calls[c.method](g)
		if err == nil {
			t.Errorf("%s %s: no error", c.method, c.code)
			continue
		}
		for _, k := range kinds {
			if errors.Is(err, k) != (k == c.want) {
				t.Errorf("%s %s: errors.Is(%v) = %v; error %q", c.method, c.code, k, !(k == c.want), err)
			}
		}
		// The original status stays reachable and readable.
		if got := status.Code(err); got != c.code {
			t.Errorf("%s %s: status.Code = %s", c.method, c.code, got)
		}
		if !strings.Contains(err.Error(), "injected") || !strings.Contains(err.Error(), "projects/"+project+"/secrets/tokens") {
			t.Errorf("%s %s: message lacks the status text or the resource: %q", c.method, c.code, err)
		}
		assertNoPayload(t, c.method+" "+c.code.String(), err)
		if n := fake.Calls(c.method) - before; n != 1 {
			t.Errorf("%s %s: %d calls, want 1 (not retried)", c.method, c.code, n)
		}
	}
}

func TestGCPAccessUnavailableRetriedWithinDeadline(t *testing.T) {
	t.Parallel()
	g, fake, _ := gcpWithSecret(t)
	// The client retries Unavailable on access with a backoff from 2 s; a
	// short deadline ends the wait, and the result is still ErrUnavailable.
	fake.FailNext("AccessSecretVersion", codes.Unavailable, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := g.Latest(ctx, "tokens")
	if !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("Latest while Unavailable: %v, want ErrUnavailable", err)
	}
	assertNoPayload(t, "Latest while Unavailable", err)

	// The store's own per-call deadline applies when the caller has none.
	g.CallTimeout = time.Nanosecond
	if _, err := g.Versions(context.Background(), "tokens"); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("Versions past the call deadline: %v, want ErrUnavailable", err)
	}
}

func TestGCPRealStatusCodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, fake, _ := gcpWithSecret(t)
	if _, err := g.Latest(ctx, "absent"); !errors.Is(err, secrets.ErrNotFound) || status.Code(err) != codes.NotFound {
		t.Errorf("Latest of an absent secret: %v (code %s)", err, status.Code(err))
	}
	if _, err := g.Add(ctx, "absent", []byte("x")); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Add to an absent secret: %v, want ErrNotFound", err)
	}
	id := mustAdd(t, g, "tokens", []byte("second"))
	if err := g.Destroy(ctx, "tokens", id); err != nil {
		t.Fatal(err)
	}
	_, err := g.Latest(ctx, "tokens")
	if !errors.Is(err, secrets.ErrVersionUnavailable) || status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Latest of a destroyed newest: %v (code %s)", err, status.Code(err))
	}
	if !strings.Contains(err.Error(), "versions/latest") || !strings.Contains(err.Error(), "DESTROYED") {
		t.Errorf("message should name the call and keep the status text: %q", err)
	}
	if n := fake.ActiveVersions(project, "tokens"); n != 1 {
		t.Errorf("ActiveVersions = %d, want 1", n)
	}
}

func TestGCPChecksumMismatchIsCorrupt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, fake, _ := gcpWithSecret(t)
	fake.CorruptNextAccess(1)
	_, err := g.Latest(ctx, "tokens")
	if !errors.Is(err, secrets.ErrCorrupt) {
		t.Fatalf("Latest with a bad checksum: %v, want ErrCorrupt", err)
	}
	assertNoPayload(t, "corrupt Latest", err)
	if v, err := g.Latest(ctx, "tokens"); err != nil || string(v.Payload) != sentinel || v.ID != "1" {
		t.Fatalf("Latest after the corruption: %q, %v", v.ID, err)
	}
}

func TestGCPVersionsListsDisabledNotDestroyed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := startFake(t)
	g := newGCP(t, fake, clock.Real{})
	client, err := smapi.NewClient(ctx, fake.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := fake.CreateSecret(project, "s"); err != nil {
		t.Fatal(err)
	}
	for range 12 {
		mustAdd(t, g, "s", []byte("x"))
	}
	if _, err := client.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: "projects/" + project + "/secrets/s/versions/11"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"3", "12"} {
		if err := g.Destroy(ctx, "s", id); err != nil {
			t.Fatal(err)
		}
	}
	infos, err := g.Versions(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"11", "10", "9", "8", "7", "6", "5", "4", "2", "1"}
	if got := ids(infos); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Versions = %v, want %v", got, want)
	}
	if infos[0].State != secrets.StateDisabled || infos[1].State != secrets.StateEnabled {
		t.Errorf("states: %s %s, want disabled enabled", infos[0].State, infos[1].State)
	}
	if len(infos) != fake.ActiveVersions(project, "s") {
		t.Errorf("Versions lists %d, fake bills %d", len(infos), fake.ActiveVersions(project, "s"))
	}
	if _, err := g.Get(ctx, "s", "11"); !errors.Is(err, secrets.ErrVersionUnavailable) {
		t.Errorf("Get of a disabled version: %v, want ErrVersionUnavailable", err)
	}
}

func TestGCPLeaseEtagRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := startFake(t)
	clk := clock.NewManual(start)
	a, b := newGCP(t, fake, clk), newGCP(t, fake, clk)
	if err := fake.CreateSecret(project, "tokens"); err != nil {
		t.Fatal(err)
	}
	// a reads the secret, then b takes the lease before a's write lands: a's
	// etag is stale and a must lose, though it saw no lease.
	var bLease secrets.Lease
	var bErr error
	fake.BeforeNext("UpdateSecret", func() { bLease, bErr = b.TryLease(ctx, "tokens", "worker-b", time.Minute) })
	_, aErr := a.TryLease(ctx, "tokens", "worker-a", time.Minute)
	if bErr != nil {
		t.Fatalf("b's TryLease: %v", bErr)
	}
	if !errors.Is(aErr, secrets.ErrLeaseHeld) || status.Code(aErr) != codes.FailedPrecondition {
		t.Fatalf("a's TryLease with a stale etag: %v, want ErrLeaseHeld", aErr)
	}
	if n := fake.Calls("UpdateSecret"); n != 2 {
		t.Fatalf("UpdateSecret calls = %d, want 2 (both wrote)", n)
	}
	if v := fake.Annotations(project, "tokens")[secretmanager.LeaseAnnotation]; !strings.HasPrefix(v, "worker-b|") {
		t.Fatalf("lease annotation = %q, want b's", v)
	}
	if err := bLease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := fake.Annotations(project, "tokens")[secretmanager.LeaseAnnotation]; ok {
		t.Fatalf("annotation still present after Release")
	}
}

func TestGCPLeaseManyContendersOneWinner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := startFake(t)
	clk := clock.NewManual(start)
	if err := fake.CreateSecret(project, "tokens"); err != nil {
		t.Fatal(err)
	}
	const contenders = 8
	stores := make([]*secretmanager.Store, contenders)
	for i := range stores {
		stores[i] = newGCP(t, fake, clk)
	}
	errs := make(chan error, contenders)
	gate := make(chan struct{})
	for i, s := range stores {
		go func() {
			<-gate
			_, err := s.TryLease(ctx, "tokens", "worker-"+string(rune('a'+i)), time.Minute)
			errs <- err
		}()
	}
	close(gate)
	won := 0
	for range contenders {
		err := <-errs
		switch {
		case err == nil:
			won++
		case !errors.Is(err, secrets.ErrLeaseHeld):
			t.Errorf("loser's error: %v, want ErrLeaseHeld", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d contenders won the lease, want exactly 1", won)
	}
}

func TestGCPLeaseKeepsOtherAnnotations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := startFake(t)
	client, err := smapi.NewClient(ctx, fake.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent: "projects/" + project, SecretId: "tokens",
		Secret: &secretmanagerpb.Secret{Annotations: map[string]string{"owner": "ops"}},
	}); err != nil {
		t.Fatal(err)
	}
	g := secretmanager.NewFromClient(client, project)
	g.Clock = clock.NewManual(start)
	l, err := g.TryLease(ctx, "tokens", "worker-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ann := fake.Annotations(project, "tokens"); ann["owner"] != "ops" || !strings.HasPrefix(ann[secretmanager.LeaseAnnotation], "worker-a|2026-03-01T12:01:00") {
		t.Fatalf("annotations while leased: %v", ann)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ann := fake.Annotations(project, "tokens"); len(ann) != 1 || ann["owner"] != "ops" {
		t.Fatalf("annotations after release: %v", ann)
	}
	// NewFromClient leaves the client to its owner.
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Versions(ctx, "tokens"); err != nil {
		t.Fatalf("client unusable after Store.Close on a borrowed client: %v", err)
	}
}

func TestGCPLeaseDamagedAnnotationDoesNotLockForever(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := startFake(t)
	g := newGCP(t, fake, clock.NewManual(start))
	client, err := smapi.NewClient(ctx, fake.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent: "projects/" + project, SecretId: "tokens",
		Secret: &secretmanagerpb.Secret{Annotations: map[string]string{secretmanager.LeaseAnnotation: "someone|not-a-time"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.TryLease(ctx, "tokens", "worker-a", time.Minute); err != nil {
		t.Fatalf("TryLease over a damaged annotation: %v", err)
	}
}

// offsetClock is another client's clock: the shared manual clock plus a
// constant error.
type offsetClock struct {
	c clock.Clock
	d time.Duration
}

func (o offsetClock) Now() time.Time { return o.c.Now().Add(o.d) }

// Issue 14 (2): the lease is judged on the observer's clock alone, so a
// client whose clock is wrong can neither take a fresh lease early nor,
// having crashed while holding one, block the others for as long as its
// clock is wrong.
func TestGCPLeaseOneClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T) (*smfake.Server, *clock.Manual) {
		fake := startFake(t)
		if err := fake.CreateSecret(project, "tokens"); err != nil {
			t.Fatal(err)
		}
		return fake, clock.NewManual(start)
	}
	const ttl = 90 * time.Second
	t.Run("a client two minutes fast does not take a lease taken a second ago", func(t *testing.T) {
		t.Parallel()
		fake, clk := setup(t)
		a := newGCP(t, fake, clk)
		fast := newGCP(t, fake, offsetClock{clk, 2 * time.Minute})
		if _, err := a.TryLease(ctx, "tokens", "worker-a", ttl); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		if _, err := fast.TryLease(ctx, "tokens", "fleetctl", ttl); !errors.Is(err, secrets.ErrLeaseHeld) {
			t.Fatalf("fast client's TryLease: %v, want ErrLeaseHeld", err)
		}
		// Nor later while a keeps renewing, however long.
		for range 5 {
			clk.Advance(ttl / 2)
			l, err := a.TryLease(ctx, "tokens", "worker-a", ttl)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Renew(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := fast.TryLease(ctx, "tokens", "fleetctl", ttl); !errors.Is(err, secrets.ErrLeaseHeld) {
				t.Fatalf("fast client's TryLease of a renewed lease: %v, want ErrLeaseHeld", err)
			}
		}
	})
	t.Run("a crashed holder an hour fast blocks the others for about one ttl", func(t *testing.T) {
		t.Parallel()
		fake, clk := setup(t)
		laptop := newGCP(t, fake, offsetClock{clk, time.Hour})
		if _, err := laptop.TryLease(ctx, "tokens", "fleetctl-laptop", ttl); err != nil {
			t.Fatal(err)
		}
		// The laptop crashes: its lease is never renewed nor released.
		w := newGCP(t, fake, clk)
		clk.Advance(time.Second)
		if _, err := w.TryLease(ctx, "tokens", "worker", ttl); !errors.Is(err, secrets.ErrLeaseHeld) {
			t.Fatalf("TryLease a second after: %v, want ErrLeaseHeld", err)
		}
		v := fake.Annotations(project, "tokens")[secretmanager.LeaseAnnotation]
		if want := "fleetctl-laptop|" + clk.Now().Add(ttl).UTC().Format(time.RFC3339); !strings.HasPrefix(v, want) {
			t.Errorf("annotation = %q, want it brought back to this clock (%s…)", v, want)
		}
		clk.Advance(ttl + secrets.DefaultLeaseSkew)
		if _, err := w.TryLease(ctx, "tokens", "worker", ttl); err != nil {
			t.Fatalf("TryLease after watching it unchanged for ttl plus the allowance: %v", err)
		}
	})
	t.Run("a cold client takes a lease its holder left long ago", func(t *testing.T) {
		t.Parallel()
		fake, clk := setup(t)
		crashed := newGCP(t, fake, clk)
		if _, err := crashed.TryLease(ctx, "tokens", "worker-old", ttl); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2*ttl + secrets.DefaultLeaseSkew + time.Second)
		if _, err := newGCP(t, fake, clk).TryLease(ctx, "tokens", "worker-new", ttl); err != nil {
			t.Fatalf("cold TryLease of a lease that ended a ttl ago: %v", err)
		}
	})
	t.Run("a lease claiming an absurd ttl is judged by the cap", func(t *testing.T) {
		t.Parallel()
		fake, clk := setup(t)
		greedy := newGCP(t, fake, clk)
		if _, err := greedy.TryLease(ctx, "tokens", "greedy", 24*time.Hour); err != nil {
			t.Fatal(err)
		}
		w := newGCP(t, fake, clk)
		if _, err := w.TryLease(ctx, "tokens", "worker", ttl); !errors.Is(err, secrets.ErrLeaseHeld) {
			t.Fatalf("TryLease: %v, want ErrLeaseHeld", err)
		}
		clk.Advance(secrets.MaxLeaseTTL + secrets.DefaultLeaseSkew)
		if _, err := w.TryLease(ctx, "tokens", "worker", ttl); err != nil {
			t.Fatalf("TryLease after the capped ttl: %v", err)
		}
	})
}
