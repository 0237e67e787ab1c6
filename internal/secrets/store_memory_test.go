package secrets_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

func TestMemoryFailNextAndCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	boom := errors.New("boom")
	ops := []struct {
		op   string
		call func(m *secrets.Memory) error
	}{
		{secrets.OpLatest, func(m *secrets.Memory) error { _, err := m.Latest(ctx, "s"); return err }},
		{secrets.OpGet, func(m *secrets.Memory) error { _, err := m.Get(ctx, "s", "1"); return err }},
		{secrets.OpAdd, func(m *secrets.Memory) error { _, err := m.Add(ctx, "s", []byte("x")); return err }},
		{secrets.OpVersions, func(m *secrets.Memory) error { _, err := m.Versions(ctx, "s"); return err }},
		{secrets.OpDestroy, func(m *secrets.Memory) error { return m.Destroy(ctx, "s", "1") }},
		{secrets.OpLease, func(m *secrets.Memory) error {
			l, err := m.TryLease(ctx, "s", "h", time.Minute)
			if err == nil {
				_ = l.Release(ctx)
			}
			return err
		}},
	}
	for _, o := range ops {
		t.Run(o.op, func(t *testing.T) {
			t.Parallel()
			m := secrets.NewMemory(clock.NewManual(start))
			if _, err := m.Add(ctx, "s", []byte("seed")); err != nil {
				t.Fatal(err)
			}
			m.FailNext(o.op, boom, 2)
			for i := range 2 {
				if err := o.call(m); !errors.Is(err, boom) {
					t.Fatalf("call %d: %v, want the injected error", i+1, err)
				}
			}
			if err := o.call(m); err != nil {
				t.Fatalf("third call: %v, want success", err)
			}
			want := 3
			if o.op == secrets.OpAdd {
				want = 4 // the seed
			}
			if got := m.Calls(o.op); got != want {
				t.Errorf("Calls(%s) = %d, want %d", o.op, got, want)
			}
		})
	}
}

func TestMemoryCopiesPayloads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := secrets.NewMemory(clock.NewManual(start))
	in := []byte("original")
	if _, err := m.Add(ctx, "s", in); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	v, _ := m.Latest(ctx, "s")
	v.Payload[1] = 'Y'
	again, _ := m.Get(ctx, "s", "1")
	if string(again.Payload) != "original" {
		t.Fatalf("stored payload changed through a caller's slice: %q", again.Payload)
	}
}

func TestMemoryActiveVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := secrets.NewMemory(clock.NewManual(start))
	for range 3 {
		if _, err := m.Add(ctx, "s", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Destroy(ctx, "s", "1"); err != nil {
		t.Fatal(err)
	}
	if n := m.ActiveVersions("s"); n != 2 {
		t.Fatalf("ActiveVersions = %d, want 2", n)
	}
}

// SetClientClock makes the memory lease judged the way the Secret Manager
// one is (TestGCPLeaseOneClock): on the observer's clock alone.
func TestMemoryClientJudgedLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ttl = 90 * time.Second
	clk := clock.NewManual(start)
	m := secrets.NewMemory(clk)
	m.SetClientClock("fast", offsetClock{clk, 2 * time.Minute})
	m.SetClientClock("laptop", offsetClock{clk, time.Hour})
	m.SetClientClock("worker", clk)
	if _, err := m.TryLease(ctx, "s", "worker", ttl); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := m.TryLease(ctx, "s", "fast", ttl); !errors.Is(err, secrets.ErrLeaseHeld) {
		t.Fatalf("a client two minutes fast took a lease taken a second ago: %v", err)
	}
	clk.Advance(ttl + secrets.DefaultLeaseSkew)
	laptop, err := m.TryLease(ctx, "s", "laptop", ttl) // watched unchanged for ttl + skew
	if err != nil {
		t.Fatalf("TryLease of a lease left unrenewed: %v", err)
	}
	_ = laptop // the laptop crashes holding it, its clock an hour fast
	clk.Advance(time.Second)
	if _, err := m.TryLease(ctx, "s", "worker", ttl); !errors.Is(err, secrets.ErrLeaseHeld) {
		t.Fatalf("TryLease right after: %v, want ErrLeaseHeld", err)
	}
	clk.Advance(ttl + secrets.DefaultLeaseSkew)
	if _, err := m.TryLease(ctx, "s", "worker", ttl); err != nil {
		t.Fatalf("a crashed holder an hour fast still blocks after about one ttl: %v", err)
	}
}

// offsetClock is another client's clock: the shared manual clock plus a
// constant error.
type offsetClock struct {
	c clock.Clock
	d time.Duration
}

func (o offsetClock) Now() time.Time { return o.c.Now().Add(o.d) }
