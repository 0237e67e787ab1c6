package state_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/state/gcsstate"
)

// backendCase builds a fresh, empty Store of one kind.
type backendCase struct {
	name string
	open func(t *testing.T) state.Store
}

// backends lists every Store implementation; the conformance tests below
// run against each, GCS (package gcsstate) through the real client and an
// in-process fake.
func backends() []backendCase {
	return []backendCase{
		{"memory", func(*testing.T) state.Store { return state.NewMemory() }},
		{"file", func(t *testing.T) state.Store {
			s, err := state.NewFile(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"gcs", func(t *testing.T) state.Store { return gcsstate.New(newFakeGCS(t), "state-test", "state") }},
	}
}

// newFakeGCS starts fake-gcs-server on a loopback port with the bucket
// "state-test" and returns the real Cloud Storage client pointed at it
// (gcsstate's own tests say why each option is there).
func newFakeGCS(t *testing.T) *storage.Client {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Host: "127.0.0.1", Port: 0, Scheme: "http"})
	if err != nil {
		t.Fatalf("start fake-gcs-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "state-test"})
	client, err := storage.NewClient(context.Background(),
		option.WithEndpoint(srv.URL()+"/storage/v1/"), option.WithoutAuthentication(), storage.WithJSONReads())
	if err != nil {
		t.Fatalf("storage.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// forEachBackend runs test once per backend, in parallel.
func forEachBackend(t *testing.T, test func(t *testing.T, s state.Store)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b.open(t))
		})
	}
}

type counter struct {
	N int `json:"n"`
}

func mustPut(t *testing.T, s state.Store, key, data string, ifGen int64) int64 {
	t.Helper()
	gen, err := s.Put(context.Background(), key, []byte(data), ifGen)
	if err != nil {
		t.Fatalf("Put(%s, if %d): %v", key, ifGen, err)
	}
	if gen < 1 {
		t.Fatalf("Put(%s) returned generation %d, want >= 1", key, gen)
	}
	return gen
}

func mustGet(t *testing.T, s state.Store, key string) state.Object {
	t.Helper()
	obj, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return obj
}

func TestGetMissing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s state.Store) {
		_, err := s.Get(context.Background(), "vehicles/NOPE.json")
		if !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Get missing: err = %v, want ErrNotFound", err)
		}
		_, _, err = state.Load[counter](context.Background(), s, "vehicles/NOPE.json")
		if !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Load missing: err = %v, want ErrNotFound", err)
		}
	})
}

func TestCreateOnly(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s state.Store) {
		ctx := context.Background()
		const key = "vehicles/5YJ3E1EA7KF000001.json"
		gen := mustPut(t, s, key, `{"n":1}`, 0)

		_, err := s.Put(ctx, key, []byte(`{"n":2}`), 0)
		if !errors.Is(err, state.ErrConflict) {
			t.Fatalf("second create-only Put: err = %v, want ErrConflict", err)
		}
		obj := mustGet(t, s, key)
		if string(obj.Data) != `{"n":1}` || obj.Generation != gen {
			t.Fatalf("Get = %s@%d, want {\"n\":1}@%d", obj.Data, obj.Generation, gen)
		}
	})
}

func TestCompareAndSwap(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s state.Store) {
		ctx := context.Background()
		const key = "plans/5YJ3E1EA7KF000001.json"
		g1 := mustPut(t, s, key, `{"hash":"a"}`, 0)
		g2 := mustPut(t, s, key, `{"hash":"b"}`, g1)
		if g2 == g1 {
			t.Fatalf("generation did not change: %d", g2)
		}

		// A writer still holding g1 lost the race.
		_, err := s.Put(ctx, key, []byte(`{"hash":"stale"}`), g1)
		if !errors.Is(err, state.ErrConflict) {
			t.Fatalf("Put with stale generation: err = %v, want ErrConflict", err)
		}
		obj := mustGet(t, s, key)
		if string(obj.Data) != `{"hash":"b"}` || obj.Generation != g2 {
			t.Fatalf("Get = %s@%d, want {\"hash\":\"b\"}@%d", obj.Data, obj.Generation, g2)
		}

		// A precondition on an object that does not exist fails too.
		_, err = s.Put(ctx, "plans/absent.json", []byte(`{}`), g2)
		if !errors.Is(err, state.ErrConflict) {
			t.Fatalf("Put if generation on absent object: err = %v, want ErrConflict", err)
		}
		if _, err := s.Get(ctx, "plans/absent.json"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("failed Put created the object: Get err = %v", err)
		}
	})
}

func TestDelete(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s state.Store) {
		ctx := context.Background()
		const key = "leases/cycle-5YJ3E1EA7KF000001"
		if err := s.Delete(ctx, key, 0); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Delete missing: err = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, key, 7); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Delete missing with generation: err = %v, want ErrNotFound", err)
		}

		g1 := mustPut(t, s, key, `{"holder":"a"}`, 0)
		g2 := mustPut(t, s, key, `{"holder":"b"}`, g1)
		if err := s.Delete(ctx, key, g1); !errors.Is(err, state.ErrConflict) {
			t.Fatalf("Delete with stale generation: err = %v, want ErrConflict", err)
		}
		if obj := mustGet(t, s, key); obj.Generation != g2 {
			t.Fatalf("after refused Delete: generation %d, want %d", obj.Generation, g2)
		}
		if err := s.Delete(ctx, key, g2); err != nil {
			t.Fatalf("Delete with current generation: %v", err)
		}
		if _, err := s.Get(ctx, key); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
		}

		// Re-created, the object gets a fresh generation: a writer that
		// still holds g2 from before the delete must not win.
		g3 := mustPut(t, s, key, `{"holder":"c"}`, 0)
		if g3 == g1 || g3 == g2 {
			t.Fatalf("re-created object reused generation %d", g3)
		}
		if _, err := s.Put(ctx, key, []byte(`{"holder":"old"}`), g2); !errors.Is(err, state.ErrConflict) {
			t.Fatalf("Put with pre-delete generation: err = %v, want ErrConflict", err)
		}

		// Generation 0 deletes whatever is there.
		if err := s.Delete(ctx, key, 0); err != nil {
			t.Fatalf("unconditional Delete: %v", err)
		}
		if _, err := s.Get(ctx, key); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Get after unconditional Delete: err = %v, want ErrNotFound", err)
		}
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s state.Store) {
		ctx := context.Background()
		for _, k := range []string{
			"vehicles/5YJ3B.json", "vehicles/5YJ3A.json", "vehicles/7SAY.json",
			"plans/5YJ3A.json", "leases/cycle-5YJ3A",
		} {
			mustPut(t, s, k, `{}`, 0)
		}
		mustPut(t, s, "vehicles/gone.json", `{}`, 0)
		if err := s.Delete(ctx, "vehicles/gone.json", 0); err != nil {
			t.Fatal(err)
		}

		tests := []struct {
			prefix string
			want   []string
		}{
			{"vehicles/", []string{"vehicles/5YJ3A.json", "vehicles/5YJ3B.json", "vehicles/7SAY.json"}},
			{"vehicles/5YJ", []string{"vehicles/5YJ3A.json", "vehicles/5YJ3B.json"}},
			{"leases/", []string{"leases/cycle-5YJ3A"}},
			{"nothing/", nil},
			{"", []string{
				"leases/cycle-5YJ3A", "plans/5YJ3A.json",
				"vehicles/5YJ3A.json", "vehicles/5YJ3B.json", "vehicles/7SAY.json",
			}},
		}
		for _, tt := range tests {
			got, err := s.List(ctx, tt.prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", tt.prefix, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		}
		if _, err := s.List(ctx, "../"); !errors.Is(err, state.ErrInvalidKey) {
			t.Errorf("List(\"../\"): err = %v, want ErrInvalidKey", err)
		}
	})
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	long := make([]byte, state.MaxKeyLength+1)
	for i := range long {
		long[i] = 'a'
	}
	badKeys := []string{
		"", "/vehicles/a.json", "vehicles/../secrets", "..", "vehicles//a.json",
		"vehicles/", "vehicles/.hidden", "vehicles/a\n.json", "vehicles/a b.json",
		"vehicles\\a.json", "vehicles/a.json.lock", "vehicles/a.json.gen",
		"vehicles/ä.json", string(long),
	}
	forEachBackend(t, func(t *testing.T, s state.Store) {
		ctx := context.Background()
		for _, k := range badKeys {
			if _, err := s.Get(ctx, k); !errors.Is(err, state.ErrInvalidKey) {
				t.Errorf("Get(%q): err = %v, want ErrInvalidKey", k, err)
			}
			if _, err := s.Put(ctx, k, []byte(`{}`), 0); !errors.Is(err, state.ErrInvalidKey) {
				t.Errorf("Put(%q): err = %v, want ErrInvalidKey", k, err)
			}
			if err := s.Delete(ctx, k, 0); !errors.Is(err, state.ErrInvalidKey) {
				t.Errorf("Delete(%q): err = %v, want ErrInvalidKey", k, err)
			}
		}
		for _, data := range []string{``, `{"n":`, `not json`} {
			if _, err := s.Put(ctx, "vehicles/a.json", []byte(data), 0); !errors.Is(err, state.ErrInvalidData) {
				t.Errorf("Put(%q): err = %v, want ErrInvalidData", data, err)
			}
		}
		big := make([]byte, state.MaxObjectSize+1)
		for i := range big {
			big[i] = ' '
		}
		big[0] = '1'
		if _, err := s.Put(ctx, "vehicles/a.json", big, 0); !errors.Is(err, state.ErrInvalidData) {
			t.Errorf("Put of %d bytes: err = %v, want ErrInvalidData", len(big), err)
		}
	})
}

func TestValidateKeyAccepts(t *testing.T) {
	t.Parallel()
	for _, k := range []string{
		"vehicles/5YJ3E1EA7KF000001.json", "plans/5YJ3E1EA7KF000001.json",
		"leases/cycle-5YJ3E1EA7KF000001", "a", "a/b/c_d-e=f@g+h.json",
	} {
		if err := state.ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", k, err)
		}
	}
}

func TestLoadWrongShapeIsCorrupt(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s state.Store) {
		mustPut(t, s, "vehicles/a.json", `"a string, not an object"`, 0)
		_, _, err := state.Load[counter](context.Background(), s, "vehicles/a.json")
		if !errors.Is(err, state.ErrCorrupt) {
			t.Fatalf("Load into wrong type: err = %v, want ErrCorrupt", err)
		}
		// Update must not overwrite what it cannot read.
		_, err = state.Update(context.Background(), s, "vehicles/a.json", func(*counter, bool) (*counter, error) {
			t.Fatal("fn called on undecodable object")
			return nil, nil
		})
		if !errors.Is(err, state.ErrCorrupt) {
			t.Fatalf("Update of undecodable object: err = %v, want ErrCorrupt", err)
		}
	})
}

// increment is the Update function of the concurrency tests.
func increment(calls *atomic.Int64) func(cur *counter, exists bool) (*counter, error) {
	return func(cur *counter, exists bool) (*counter, error) {
		calls.Add(1)
		if !exists {
			return &counter{N: 1}, nil
		}
		cur.N++
		return cur, nil
	}
}

// incrementUntilDone calls Update until it does not give up on conflicts,
// counting the rounds it gave up. The bound turns a livelock into a failure.
func incrementUntilDone(ctx context.Context, s state.Store, key string, calls, gaveUp *atomic.Int64) error {
	const maxRounds = 200
	for range maxRounds {
		_, err := state.Update(ctx, s, key, increment(calls))
		if !errors.Is(err, state.ErrConflict) {
			return err
		}
		gaveUp.Add(1)
	}
	obj, err := s.Get(ctx, key)
	return fmt.Errorf("still conflicting after %d Update calls; object now %s@%d (%v)", maxRounds, obj.Data, obj.Generation, err)
}

func TestUpdateConcurrentNoLostUpdate(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s state.Store) {
		// A deadline far beyond the normal second turns a hang into a failure.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		const key, workers = "vehicles/counter.json", 50
		var calls, gaveUp atomic.Int64
		start := make(chan struct{})
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				<-start
				errs <- incrementUntilDone(ctx, s, key, &calls, &gaveUp)
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
		}
		got, _, err := state.Load[counter](ctx, s, key)
		if err != nil {
			t.Fatal(err)
		}
		if got.N != workers {
			t.Fatalf("count = %d after %d increments: lost updates", got.N, workers)
		}
		if calls.Load() < workers {
			t.Fatalf("fn called %d times, want >= %d", calls.Load(), workers)
		}
		t.Logf("%d increments took %d fn calls (%d conflicts), %d Update calls gave up",
			workers, calls.Load(), calls.Load()-workers, gaveUp.Load())
	})
}

// TestUpdateRetriesOnConflict forces the conflict path on every backend: the
// first call of fn lets another writer in between Update's read and write.
func TestUpdateRetriesOnConflict(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s state.Store) {
		ctx := context.Background()
		const key = "vehicles/race.json"
		mustPut(t, s, key, `{"n":1}`, 0)
		calls := 0
		got, err := state.Update(ctx, s, key, func(cur *counter, exists bool) (*counter, error) {
			calls++
			if calls == 1 {
				obj := mustGet(t, s, key)
				mustPut(t, s, key, `{"n":100}`, obj.Generation)
			}
			cur.N++
			return cur, nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if calls != 2 || got.N != 101 {
			t.Fatalf("Update = %d after %d calls of fn, want 101 after 2", got.N, calls)
		}
		stored, _, err := state.Load[counter](ctx, s, key)
		if err != nil || stored.N != 101 {
			t.Fatalf("stored = %d, %v; want 101", stored.N, err)
		}
	})
}

func TestUpdateGivesUpAfterBoundedAttempts(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s state.Store) {
		ctx := context.Background()
		const key = "vehicles/contended.json"
		mustPut(t, s, key, `{"n":0}`, 0)
		calls := 0
		_, err := state.Update(ctx, s, key, func(cur *counter, exists bool) (*counter, error) {
			calls++
			obj := mustGet(t, s, key)
			mustPut(t, s, key, fmt.Sprintf(`{"n":%d}`, 1000+calls), obj.Generation)
			cur.N++
			return cur, nil
		})
		if !errors.Is(err, state.ErrConflict) {
			t.Fatalf("Update under endless contention: err = %v, want ErrConflict", err)
		}
		if calls != state.UpdateAttempts {
			t.Fatalf("fn called %d times, want %d", calls, state.UpdateAttempts)
		}
	})
}

func TestUpdateNoWriteAndErrors(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s state.Store) {
		ctx := context.Background()
		const key = "plans/p.json"
		noWrite := func(*counter, bool) (*counter, error) { return nil, nil }

		got, err := state.Update(ctx, s, key, noWrite)
		if err != nil || got != (counter{}) {
			t.Fatalf("no-write Update of absent key = %+v, %v; want zero, nil", got, err)
		}
		if _, err := s.Get(ctx, key); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("no-write Update created the object: %v", err)
		}

		gen := mustPut(t, s, key, `{"n":7}`, 0)
		got, err = state.Update(ctx, s, key, noWrite)
		if err != nil || got.N != 7 {
			t.Fatalf("no-write Update = %+v, %v; want n=7", got, err)
		}
		if obj := mustGet(t, s, key); obj.Generation != gen {
			t.Fatalf("no-write Update changed generation %d → %d", gen, obj.Generation)
		}

		errPlanUnchanged := errors.New("plan unchanged")
		_, err = state.Update(ctx, s, key, func(*counter, bool) (*counter, error) { return nil, errPlanUnchanged })
		if !errors.Is(err, errPlanUnchanged) {
			t.Fatalf("Update with failing fn: err = %v, want fn's error", err)
		}

		got, err = state.Update(ctx, s, key, func(cur *counter, exists bool) (*counter, error) {
			if !exists {
				t.Fatal("exists = false for a stored object")
			}
			return &counter{N: cur.N * 2}, nil
		})
		if err != nil || got.N != 14 {
			t.Fatalf("Update = %+v, %v; want n=14", got, err)
		}
		if _, g, _ := state.Load[counter](ctx, s, key); g == gen {
			t.Fatal("Update did not write a new generation")
		}
	})
}
