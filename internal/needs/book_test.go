package needs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/state"
)

const vinB = "5YJ3E7EB0KF000002"

// now0 is a Wednesday in July, 10:00 in Warsaw.
var now0 = time.Date(2026, 7, 22, 8, 0, 0, 0, time.UTC)

type fixture struct {
	book  *Book
	store state.Store
	clock *clock.Manual
}

func newFixture(t *testing.T, store state.Store, cfg Config) fixture {
	t.Helper()
	if store == nil {
		store = state.NewMemory()
	}
	if cfg.Location == nil {
		cfg.Location = warsaw(t)
	}
	clk := clock.NewManual(now0)
	b, err := NewBook(store, VINList{vinA, vinB}, clk, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{book: b, store: store, clock: clk}
}

func (f fixture) add(t *testing.T, req Request) Need {
	t.Helper()
	n, created, err := f.book.Add(context.Background(), req)
	if err != nil || !created {
		t.Fatalf("Add(%+v) = %v, created %v", req, err, created)
	}
	return n
}

func TestNewBookNeedsItsParts(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	for name, f := range map[string]func() (*Book, error){
		"no store": func() (*Book, error) { return NewBook(nil, VINList{}, nil, Config{Location: loc}) },
		"no cars":  func() (*Book, error) { return NewBook(state.NewMemory(), nil, nil, Config{Location: loc}) },
		"no zone":  func() (*Book, error) { return NewBook(state.NewMemory(), VINList{}, nil, Config{}) },
		"negative max": func() (*Book, error) {
			return NewBook(state.NewMemory(), VINList{}, nil, Config{Location: loc, MaxPerCar: -1})
		},
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestAddValidates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, Config{})
	ok := Request{VIN: vinA, TargetPercent: 90, By: "2026-07-24 16:00", Note: "trip"}
	with := func(mod func(*Request)) Request { r := ok; mod(&r); return r }
	for _, tc := range []struct {
		name string
		req  Request
		want error
	}{
		{"no vin", with(func(r *Request) { r.VIN = " " }), ErrUnknownVIN},
		{"unknown vin", with(func(r *Request) { r.VIN = "5YJ3E7EB0KF999999" }), ErrUnknownVIN},
		{"target 49", with(func(r *Request) { r.TargetPercent = 49 }), ErrTarget},
		{"target 101", with(func(r *Request) { r.TargetPercent = 101 }), ErrTarget},
		{"target 0", with(func(r *Request) { r.TargetPercent = 0 }), ErrTarget},
		{"no by", with(func(r *Request) { r.By = "" }), ErrTime},
		{"bad by", with(func(r *Request) { r.By = "Friday" }), ErrTime},
		{"past", with(func(r *Request) { r.By = "2026-07-21 16:00" }), ErrPast},
		{"now", with(func(r *Request) { r.By = "2026-07-22T08:00:00Z" }), ErrPast},
		{"15 days", with(func(r *Request) { r.By = "2026-08-06 10:01" }), ErrTooFar},
		{"long note", with(func(r *Request) { r.Note = strings.Repeat("ą", MaxNoteLength+1) }), ErrNote},
		{"newline in note", with(func(r *Request) { r.Note = "a\nb" }), ErrNote},
		{"bad utf-8", with(func(r *Request) { r.Note = "\xff" }), ErrNote},
	} {
		_, _, err := f.book.Add(context.Background(), tc.req)
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Nothing was stored by any of them.
	if _, err := f.store.Get(context.Background(), Key(vinA)); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("a rejected need left an object: %v", err)
	}
	// The edges are accepted: 50 %, 100 %, exactly 14 days, the longest note.
	for _, r := range []Request{
		with(func(r *Request) { r.TargetPercent = 50 }),
		with(func(r *Request) { r.TargetPercent = 100 }),
		with(func(r *Request) { r.By = "2026-08-05T08:00:00Z" }),
		with(func(r *Request) { r.By = "2026-07-22T08:01:00Z"; r.Note = strings.Repeat("ą", MaxNoteLength) }),
		with(func(r *Request) { r.VIN = strings.ToLower(vinB) }),
	} {
		f.add(t, r)
	}
}

func TestAddTwiceIsOneNeed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, Config{})
	ctx := context.Background()
	first := f.add(t, Request{VIN: vinA, TargetPercent: 90, By: "2026-07-24 16:00", Note: "trip"})
	if first.ID != vinA+"-20260724T1400Z-90" || first.By.Location().String() != "Europe/Warsaw" || !first.Created.Equal(now0) {
		t.Fatalf("first %+v", first)
	}
	f.clock.Advance(time.Hour)
	// The same instant written as RFC 3339, another note: the same need.
	again, created, err := f.book.Add(ctx, Request{VIN: " " + strings.ToLower(vinA), TargetPercent: 90, By: "2026-07-24T14:00:00Z", Note: "other"})
	if err != nil || created || again.ID != first.ID || again.Note != "trip" || !again.Created.Equal(now0) {
		t.Fatalf("second add: %+v created %v err %v", again, created, err)
	}
	all, err := f.book.ListVIN(ctx, vinA)
	if err != nil || len(all) != 1 {
		t.Fatalf("list: %v %v", all, err)
	}
}

func TestTooManyNeeds(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, Config{MaxPerCar: 3})
	ctx := context.Background()
	var ids []string
	for h := range 3 {
		ids = append(ids, f.add(t, Request{VIN: vinA, TargetPercent: 90, By: fmt.Sprintf("2026-07-23 %02d:00", 10+h)}).ID)
	}
	_, _, err := f.book.Add(ctx, Request{VIN: vinA, TargetPercent: 90, By: "2026-07-23 20:00"})
	if !errors.Is(err, ErrTooMany) || errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "at most 3") {
		t.Fatalf("fourth need: %v", err)
	}
	// Adding one already there is still fine; another car has its own bound.
	if _, created, err := f.book.Add(ctx, Request{VIN: vinA, TargetPercent: 90, By: "2026-07-23 10:00"}); err != nil || created {
		t.Fatalf("re-add at the bound: %v %v", created, err)
	}
	f.add(t, Request{VIN: vinB, TargetPercent: 90, By: "2026-07-23 20:00"})
	// A need that is over frees its place.
	f.clock.Set(now0.Add(26 * time.Hour)) // 2026-07-23 12:00 Warsaw: the first need's by has passed
	f.add(t, Request{VIN: vinA, TargetPercent: 90, By: "2026-07-23 21:00"})
	if _, err := f.book.Delete(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	f.add(t, Request{VIN: vinA, TargetPercent: 90, By: "2026-07-23 22:00"})
}

func TestDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, Config{})
	ctx := context.Background()
	plain := f.add(t, Request{VIN: vinA, TargetPercent: 90, By: "2026-07-24 16:00"})
	raised := f.add(t, Request{VIN: vinA, TargetPercent: 95, By: "2026-07-25 08:00"})

	for _, id := range []string{"", "nope", vinA + "-20260724T1400Z-91", "../x-20260724T1400Z-90", "a/b-20260724T1400Z-90"} {
		if _, err := f.book.Delete(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete(%q): %v, want ErrNotFound", id, err)
		}
		if _, err := f.book.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q): %v, want ErrNotFound", id, err)
		}
	}

	got, err := f.book.Delete(ctx, plain.ID)
	if err != nil || got.ID != plain.ID || got.Cancelled != nil {
		t.Fatalf("delete: %+v %v", got, err)
	}
	if _, err := f.book.Delete(ctx, plain.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}

	// A need whose limit is raised stays, cancelled, until the restore.
	if _, err := f.book.Modify(ctx, raised.ID, func(n *Need) error { n.RaiseLimit(80, 95, f.clock.Now()); return nil }); err != nil {
		t.Fatal(err)
	}
	got, err = f.book.Delete(ctx, raised.ID)
	if err != nil || got.Cancelled == nil || got.Status(f.clock.Now()) != StatusCancelled {
		t.Fatalf("delete of a raised need: %+v %v", got, err)
	}
	if _, ok, _ := f.book.Nearest(ctx, vinA, f.clock.Now()); ok {
		t.Fatal("a cancelled need is still planned for")
	}
	if _, err := f.book.Delete(ctx, raised.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete of a cancelled need: %v", err)
	}
	if kept, err := f.book.Get(ctx, raised.ID); err != nil || !kept.RestorePending() {
		t.Fatalf("the cancelled need must wait for its restore: %+v %v", kept, err)
	}
	if _, err := f.book.Modify(ctx, raised.ID, func(n *Need) error { _, err := n.MarkRestored(f.clock.Now()); return err }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.book.Get(ctx, raised.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the restore the cancelled need goes: %v", err)
	}
}

func TestAddRevivesACancelledNeed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, Config{})
	ctx := context.Background()
	req := Request{VIN: vinA, TargetPercent: 90, By: "2026-07-24 16:00", Note: "trip"}
	n := f.add(t, req)
	if _, err := f.book.Modify(ctx, n.ID, func(n *Need) error { n.RaiseLimit(80, 90, now0); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.book.Delete(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	req.Note = "trip after all"
	back := f.add(t, req)
	if back.Cancelled != nil || back.Note != "trip after all" || back.Limit == nil || back.Limit.PreviousPercent != 80 {
		t.Fatalf("revived %+v", back)
	}
}

func TestModify(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, Config{})
	ctx := context.Background()
	n := f.add(t, Request{VIN: vinA, TargetPercent: 90, By: "2026-07-24 16:00"})
	gen := func() int64 {
		obj, err := f.store.Get(ctx, Key(vinA))
		if err != nil {
			t.Fatal(err)
		}
		return obj.Generation
	}
	before := gen()
	if _, err := f.book.Modify(ctx, n.ID, func(*Need) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if gen() != before {
		t.Fatal("a change that changed nothing was written")
	}
	mine := errors.New("mine")
	if _, err := f.book.Modify(ctx, n.ID, func(*Need) error { return mine }); err != mine {
		t.Fatalf("fn's error: %v", err)
	}
	if _, err := f.book.Modify(ctx, vinA+"-20260724T1400Z-91", func(*Need) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	f.clock.Set(n.By.Add(time.Minute))
	got, err := f.book.Modify(ctx, n.ID, func(n *Need) error { n.RecordOutcome(91, f.clock.Now()); return nil })
	if err != nil || got.Status(f.clock.Now()) != StatusMet || got.Outcome.SoCPercent != 91 {
		t.Fatalf("outcome: %+v %v", got, err)
	}
}

func TestFinishedNeedsArePruned(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, Config{})
	ctx := context.Background()
	old := f.add(t, Request{VIN: vinA, TargetPercent: 90, By: "2026-07-23 16:00"})
	raised := f.add(t, Request{VIN: vinA, TargetPercent: 95, By: "2026-07-24 16:00"})
	if _, err := f.book.Modify(ctx, raised.ID, func(n *Need) error { n.RaiseLimit(80, 95, now0); return nil }); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(now0.Add(KeepFinished + 72*time.Hour))
	// Any write prunes; the raised one stays while its restore is pending.
	f.add(t, Request{VIN: vinA, TargetPercent: 90, By: "2026-08-25 16:00"})
	if _, err := f.book.Get(ctx, old.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a need finished %s ago is still kept: %v", KeepFinished, err)
	}
	if _, err := f.book.Get(ctx, raised.ID); err != nil {
		t.Fatalf("a need with a raised limit was pruned: %v", err)
	}
}

func TestListAndNearest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, Config{})
	ctx := context.Background()
	if all, err := f.book.List(ctx); err != nil || all == nil || len(all) != 0 {
		t.Fatalf("empty list: %#v %v", all, err)
	}
	b1 := f.add(t, Request{VIN: vinB, TargetPercent: 80, By: "2026-07-23 07:00"})
	a2 := f.add(t, Request{VIN: vinA, TargetPercent: 90, By: "2026-07-24 16:00"})
	a1 := f.add(t, Request{VIN: vinA, TargetPercent: 70, By: "2026-07-23 07:00"})
	all, err := f.book.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range all {
		ids = append(ids, n.ID)
	}
	if want := []string{a1.ID, b1.ID, a2.ID}; strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Fatalf("list order %v, want %v", ids, want)
	}
	if ns, err := f.book.ListVIN(ctx, vinA); err != nil || len(ns) != 2 || ns[0].ID != a1.ID {
		t.Fatalf("by vin: %v %v", ns, err)
	}
	if ns, err := f.book.ListVIN(ctx, "5YJ3E7EB0KF999999"); err != nil || len(ns) != 0 {
		t.Fatalf("unknown car: %v %v", ns, err)
	}
	if _, err := f.book.ListVIN(ctx, ""); !errors.Is(err, ErrUnknownVIN) {
		t.Fatalf("empty vin: %v", err)
	}
	n, ok, err := f.book.Nearest(ctx, vinA, f.clock.Now())
	if err != nil || !ok || n.ID != a1.ID {
		t.Fatalf("nearest: %+v %v %v", n, ok, err)
	}
	n, ok, _ = f.book.Nearest(ctx, vinA, a1.By)
	if !ok || n.ID != a2.ID {
		t.Fatalf("nearest after the first: %+v %v", n, ok)
	}
}

// carsFunc adapts a function to Cars.
type carsFunc func(context.Context) ([]string, error)

func (f carsFunc) VINs(ctx context.Context) ([]string, error) { return f(ctx) }

func TestCarsFailureIsNotInvalidInput(t *testing.T) {
	t.Parallel()
	down := errors.New("fleet api down")
	calls := 0
	b, err := NewBook(state.NewMemory(), carsFunc(func(context.Context) ([]string, error) { calls++; return nil, down }),
		clock.NewManual(now0), Config{Location: warsaw(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = b.Add(context.Background(), Request{VIN: vinA, TargetPercent: 90, By: "2026-07-24 16:00"})
	if !errors.Is(err, ErrCars) || !errors.Is(err, down) || errors.Is(err, ErrInvalid) {
		t.Fatalf("err %v", err)
	}
	// Bad input is refused before the cars are asked (it may cost a Fleet call).
	_, _, _ = b.Add(context.Background(), Request{VIN: vinA, TargetPercent: 20, By: "2026-07-24 16:00"})
	if calls != 1 {
		t.Fatalf("cars asked %d times", calls)
	}
}

// failingStore fails every call with the state package's transient kind.
type failingStore struct{ state.Store }

func (failingStore) Get(context.Context, string) (state.Object, error) {
	return state.Object{}, fmt.Errorf("get: %w", state.ErrUnavailable)
}

func TestStoreFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t, failingStore{state.NewMemory()}, Config{})
	ctx := context.Background()
	_, _, err := f.book.Add(ctx, Request{VIN: vinA, TargetPercent: 90, By: "2026-07-24 16:00"})
	if !errors.Is(err, ErrStore) || !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("add: %v", err)
	}
	if _, err := f.book.List(ctx); !errors.Is(err, ErrStore) {
		t.Fatalf("list: %v", err)
	}
	if _, err := f.book.Delete(ctx, vinA+"-20260724T1400Z-90"); !errors.Is(err, ErrStore) {
		t.Fatalf("delete: %v", err)
	}
}

func storeBackends(t *testing.T) map[string]func(t *testing.T) state.Store {
	t.Helper()
	return map[string]func(t *testing.T) state.Store{
		"memory": func(*testing.T) state.Store { return state.NewMemory() },
		"file": func(t *testing.T) state.Store {
			s, err := state.NewFile(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

// Many writers adding needs for one car at once: every one must be stored,
// and the index must name both cars.
func TestConcurrentAddsLoseNothing(t *testing.T) {
	t.Parallel()
	for name, open := range storeBackends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const writers = 20
			f := newFixture(t, open(t), Config{MaxPerCar: writers})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := make(chan struct{})
			errs := make(chan error, 2*writers)
			var wg sync.WaitGroup
			for i := range writers {
				for _, vin := range []string{vinA, vinB} {
					wg.Go(func() {
						<-start
						_, _, err := f.book.Add(ctx, Request{VIN: vin, TargetPercent: 50 + i, By: "2026-07-24 16:00"})
						errs <- err
					})
				}
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("Add: %v", err)
				}
			}
			for _, vin := range []string{vinA, vinB} {
				ns, err := f.book.ListVIN(ctx, vin)
				if err != nil {
					t.Fatal(err)
				}
				if len(ns) != writers {
					t.Fatalf("%s has %d needs after %d adds: lost writes", vin, len(ns), writers)
				}
			}
			all, err := f.book.List(ctx)
			if err != nil || len(all) != 2*writers {
				t.Fatalf("list all: %d needs, %v", len(all), err)
			}
		})
	}
}

const (
	childDirEnv  = "NEEDS_TEST_CHILD_DIR"
	childBaseEnv = "NEEDS_TEST_CHILD_BASE"
	childEach    = 10
)

// Two OS processes adding needs for one car through the same state
// directory (the worker and fleetctl on one machine): every need survives.
func TestCrossProcessAddsLoseNothing(t *testing.T) {
	if os.Getenv(childDirEnv) != "" {
		t.Skip("running as a child")
	}
	t.Parallel()
	dir := t.TempDir()
	const children = 2
	var procs []*exec.Cmd
	var outs []*strings.Builder
	var starts []func()
	for c := range children {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrossProcessChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childBaseEnv+"="+strconv.Itoa(50+c*childEach))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out := new(strings.Builder)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs, outs = append(procs, cmd), append(outs, out)
		// Both children wait for a line, so both run before either writes.
		starts = append(starts, func() { _, _ = fmt.Fprintln(stdin, "go"); _ = stdin.Close() })
	}
	for _, s := range starts {
		s()
	}
	for i, cmd := range procs {
		if err := cmd.Wait(); err != nil || !strings.Contains(outs[i].String(), "adds done") {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i])
		}
	}
	s, err := state.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, s, Config{})
	ns, err := f.book.ListVIN(context.Background(), vinA)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != children*childEach {
		t.Fatalf("%d needs after %d adds in %d processes: lost writes", len(ns), children*childEach, children)
	}
}

// TestCrossProcessChild is the child side of TestCrossProcessAddsLoseNothing.
func TestCrossProcessChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("only runs as a child of TestCrossProcessAddsLoseNothing")
	}
	base, err := strconv.Atoi(os.Getenv(childBaseEnv))
	if err != nil {
		t.Fatal(err)
	}
	s, err := state.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, s, Config{})
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatalf("waiting for the start signal: %v", err)
	}
	for i := range childEach {
		f.add(t, Request{VIN: vinA, TargetPercent: base + i, By: "2026-07-24 16:00"})
	}
	fmt.Println("adds done")
}
