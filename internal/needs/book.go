package needs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/state"
)

// Cars tells which cars a need may name. The worker lists the Fleet
// account's cars; tests and tools with a fixed list use VINList.
type Cars interface {
	VINs(ctx context.Context) ([]string, error)
}

// VINList is a fixed list of known cars.
type VINList []string

// VINs implements Cars.
func (l VINList) VINs(context.Context) ([]string, error) { return l, nil }

// Config adjusts a Book.
type Config struct {
	// Location reads local `by` times (TIMEZONE) and is the zone needs are
	// returned in. Required.
	Location *time.Location
	// MaxPerCar bounds a car's pending needs; 0 means DefaultMaxPerCar.
	MaxPerCar int
}

// Book keeps the charge needs in a state store, one object per car:
//
//	needs/<VIN>.json   {"vin": …, "needs": [Need, …]} sorted by By
//	needs/index.json   {"vins": […]} every car that ever had a need
//
// Every change is a read-modify-write with the store's generation match
// (state.Update), so two writers (the worker and fleetctl, two worker
// instances, an add and a cycle recording an outcome) never lose one
// another's changes. The index exists because neither service may list
// the bucket (IAM conditions grant objects by name prefix, and a list is
// checked against the bucket): List reads it instead. It only grows, by a
// car's first need, and is written before that need, so every stored car
// is in it.
//
// A Book is safe for concurrent use.
type Book struct {
	store     state.Store
	cars      Cars
	clock     clock.Clock
	loc       *time.Location
	maxPerCar int
}

// NewBook returns a Book over store. clk nil means the wall clock.
func NewBook(store state.Store, cars Cars, clk clock.Clock, cfg Config) (*Book, error) {
	switch {
	case store == nil:
		return nil, errors.New("needs: no state store")
	case cars == nil:
		return nil, errors.New("needs: no source of known cars")
	case cfg.Location == nil:
		return nil, errors.New("needs: no time zone (TIMEZONE)")
	case cfg.MaxPerCar < 0:
		return nil, fmt.Errorf("needs: MaxPerCar %d is negative", cfg.MaxPerCar)
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if cfg.MaxPerCar == 0 {
		cfg.MaxPerCar = DefaultMaxPerCar
	}
	return &Book{store: store, cars: cars, clock: clk, loc: cfg.Location, maxPerCar: cfg.MaxPerCar}, nil
}

// Key is the state key of a car's needs.
func Key(vin string) string { return "needs/" + vin + ".json" }

// IndexKey is the state key of the list of cars with needs.
const IndexKey = "needs/index.json"

// record is one car's object.
type record struct {
	VIN   string `json:"vin"`
	Needs []Need `json:"needs"`
}

type index struct {
	VINs []string `json:"vins"`
}

func (r *record) find(id string) int {
	return slices.IndexFunc(r.Needs, func(n Need) bool { return n.ID == id })
}

func (r *record) pending(now time.Time) int {
	c := 0
	for _, n := range r.Needs {
		if n.Unmet(now) {
			c++
		}
	}
	return c
}

// prune drops the needs that are over and done with: finished more than
// KeepFinished ago, or cancelled, with no limit left to put back.
func (r *record) prune(now time.Time) {
	r.Needs = slices.DeleteFunc(r.Needs, func(n Need) bool {
		if n.RestorePending() {
			return false
		}
		return n.Cancelled != nil || now.Sub(n.By) > KeepFinished
	})
}

// Request is a need as a person gives it: the fields are strings and
// numbers as typed, and Add applies every rule.
type Request struct {
	VIN           string
	TargetPercent int
	By            string // RFC 3339, or local YYYY-MM-DD HH:MM (ParseTime)
	Note          string
}

// Add validates req and stores the need. created is false when the same
// need (same VIN, target and by) is already stored: the stored one is
// returned, its note unchanged, and nothing is written. Adding a need that
// was deleted but still waits for its limit to be put back revives it.
func (b *Book) Add(ctx context.Context, req Request) (n Need, created bool, err error) {
	n, err = b.check(ctx, req)
	if err != nil {
		return Need{}, false, err
	}
	if err := b.addToIndex(ctx, n.VIN); err != nil {
		return Need{}, false, err
	}
	var out Need
	err = b.update(ctx, n.VIN, func(r *record, now time.Time) error {
		out, created = Need{}, false
		if i := r.find(n.ID); i >= 0 {
			ex := &r.Needs[i]
			if ex.Cancelled != nil {
				ex.Cancelled, ex.Note, created = nil, n.Note, true
			}
			out = *ex
			return nil
		}
		if p := r.pending(now); p >= b.maxPerCar {
			return fmt.Errorf("%w: %s has %d pending needs, at most %d: delete one first", ErrTooMany, n.VIN, p, b.maxPerCar)
		}
		n.Created = now.UTC()
		r.Needs = append(r.Needs, n)
		slices.SortStableFunc(r.Needs, func(a, c Need) int { return a.By.Compare(c.By) })
		out, created = n, true
		return nil
	})
	if err != nil {
		return Need{}, false, err
	}
	return b.local(out), created, nil
}

// check applies the rules, cheapest first: the known-car list may cost a
// Fleet API call and is asked last.
func (b *Book) check(ctx context.Context, req Request) (Need, error) {
	vin := strings.ToUpper(strings.TrimSpace(req.VIN))
	if vin == "" {
		return Need{}, fmt.Errorf("%w: vin is required", ErrUnknownVIN)
	}
	if req.TargetPercent < MinTargetPercent || req.TargetPercent > MaxTargetPercent {
		return Need{}, fmt.Errorf("%w: %d is not between %d and %d", ErrTarget, req.TargetPercent, MinTargetPercent, MaxTargetPercent)
	}
	by, err := ParseTime(req.By, b.loc)
	if err != nil {
		return Need{}, err
	}
	now := b.clock.Now()
	switch {
	case !by.After(now):
		return Need{}, fmt.Errorf("%w: %s is not after now (%s)", ErrPast, by.In(b.loc).Format(time.RFC3339), now.In(b.loc).Format(time.RFC3339))
	case by.Sub(now) > MaxAhead:
		return Need{}, fmt.Errorf("%w: %s is more than %d days ahead", ErrTooFar, by.In(b.loc).Format(time.RFC3339), MaxAhead/(24*time.Hour))
	}
	note := strings.TrimSpace(req.Note)
	if err := checkNote(note); err != nil {
		return Need{}, err
	}
	if err := b.known(ctx, vin); err != nil {
		return Need{}, err
	}
	return Need{ID: NewID(vin, req.TargetPercent, by), VIN: vin, TargetPercent: req.TargetPercent, By: by.UTC(), Note: note}, nil
}

func checkNote(note string) error {
	if !utf8.ValidString(note) {
		return fmt.Errorf("%w: not valid UTF-8", ErrNote)
	}
	if n := utf8.RuneCountInString(note); n > MaxNoteLength {
		return fmt.Errorf("%w: %d characters, at most %d", ErrNote, n, MaxNoteLength)
	}
	// A newline or an escape sequence would break the CLI's table and the
	// log line that shows the note.
	if strings.IndexFunc(note, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: control characters (newlines, tabs) are not allowed", ErrNote)
	}
	return nil
}

func (b *Book) known(ctx context.Context, vin string) error {
	vins, err := b.cars.VINs(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCars, err)
	}
	for _, v := range vins {
		if strings.EqualFold(v, vin) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not a car of this account", ErrUnknownVIN, vin)
}

// Get returns the need with id (in any state, cancelled ones included).
func (b *Book) Get(ctx context.Context, id string) (Need, error) {
	vin, ok := parseID(id)
	if !ok {
		return Need{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	r, err := b.load(ctx, vin)
	if err != nil {
		return Need{}, err
	}
	i := r.find(id)
	if i < 0 {
		return Need{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return b.local(r.Needs[i]), nil
}

// ListVIN returns a car's needs sorted by By: pending ones, finished ones
// (for KeepFinished) and cancelled ones that still wait for their limit.
// An unknown car has none.
func (b *Book) ListVIN(ctx context.Context, vin string) ([]Need, error) {
	vin = strings.ToUpper(strings.TrimSpace(vin))
	if vin == "" {
		return nil, fmt.Errorf("%w: vin is required", ErrUnknownVIN)
	}
	r, err := b.load(ctx, vin)
	if err != nil {
		return nil, err
	}
	out := make([]Need, len(r.Needs))
	for i, n := range r.Needs {
		out[i] = b.local(n)
	}
	return out, nil
}

// List returns every car's needs, sorted by By then VIN.
func (b *Book) List(ctx context.Context) ([]Need, error) {
	idx, _, err := state.Load[index](ctx, b.store, IndexKey)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, fmt.Errorf("%w: read %s: %w", ErrStore, IndexKey, err)
	}
	out := []Need{}
	for _, vin := range idx.VINs {
		ns, err := b.ListVIN(ctx, vin)
		if err != nil {
			return nil, err
		}
		out = append(out, ns...)
	}
	slices.SortStableFunc(out, func(a, c Need) int {
		if d := a.By.Compare(c.By); d != 0 {
			return d
		}
		return strings.Compare(a.VIN, c.VIN)
	})
	return out, nil
}

// Delete removes the need with id and returns it. A need whose raised
// limit is not yet put back is kept, marked cancelled (its Cancelled set in
// the answer), so the cycle still restores the limit; it is never planned
// for again, and goes with the restore. A second delete finds nothing.
func (b *Book) Delete(ctx context.Context, id string) (Need, error) {
	vin, ok := parseID(id)
	if !ok {
		return Need{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var out Need
	err := b.update(ctx, vin, func(r *record, now time.Time) error {
		i := r.find(id)
		if i < 0 || r.Needs[i].Cancelled != nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if r.Needs[i].RestorePending() {
			t := now.UTC()
			r.Needs[i].Cancelled = &t
			out = r.Needs[i]
			return nil
		}
		out = r.Needs[i]
		r.Needs = slices.Delete(r.Needs, i, i+1)
		return nil
	})
	if err != nil {
		return Need{}, err
	}
	return b.local(out), nil
}

// Nearest returns the car's unmet need with the earliest By after t, and
// false when there is none.
func (b *Book) Nearest(ctx context.Context, vin string, t time.Time) (Need, bool, error) {
	ns, err := b.ListVIN(ctx, vin)
	if err != nil {
		return Need{}, false, err
	}
	n, ok := Nearest(ns, t)
	return n, ok, nil
}

// Nearest is the unmet need of ns with the earliest By after t.
func Nearest(ns []Need, t time.Time) (Need, bool) {
	var best Need
	found := false
	for _, n := range ns {
		if n.Unmet(t) && (!found || n.By.Before(best.By)) {
			best, found = n, true
		}
	}
	return best, found
}

// Modify changes the need with id by fn under the store's compare-and-swap
// and returns it as stored: the cycle's way to record a raised limit, a
// restore or an outcome with the Need methods. fn may run more than once
// (on a conflict it sees the fresh record) and must do nothing but change
// n; its error stops the change and is returned as is. When fn changes
// nothing, nothing is written.
func (b *Book) Modify(ctx context.Context, id string, fn func(n *Need) error) (Need, error) {
	vin, ok := parseID(id)
	if !ok {
		return Need{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var out Need
	err := b.update(ctx, vin, func(r *record, _ time.Time) error {
		i := r.find(id)
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err := fn(&r.Needs[i]); err != nil {
			return err
		}
		out = r.Needs[i]
		return nil
	})
	if err != nil {
		return Need{}, err
	}
	return b.local(out), nil
}

// StatusOf is n's status now, by the Book's clock.
func (b *Book) StatusOf(n Need) Status { return n.Status(b.clock.Now()) }

// local presents a need's times in the Book's zone (they are stored in UTC).
func (b *Book) local(n Need) Need {
	n.By = n.By.In(b.loc)
	n.Created = n.Created.In(b.loc)
	return n
}

func (b *Book) load(ctx context.Context, vin string) (record, error) {
	r, _, err := state.Load[record](ctx, b.store, Key(vin))
	switch {
	case errors.Is(err, state.ErrNotFound):
		return record{VIN: vin}, nil
	case errors.Is(err, state.ErrInvalidKey):
		// Not a name a car can have: no needs either.
		return record{VIN: vin}, nil
	case err != nil:
		return record{}, fmt.Errorf("%w: %w", ErrStore, err)
	}
	return r, nil
}

// Read returns a car's needs from store without a Book: what the scout
// reads (read-only) to know when a need asks for a cycle.
func Read(ctx context.Context, store state.Store, vin string) ([]Need, error) {
	r, err := (&Book{store: store}).load(ctx, vin)
	return r.Needs, err
}

// updateRounds is how many times a change retries state.Update when it
// gave up on conflicts: a burst of writers on one car (a test's fifty
// goroutines, a script adding needs in a loop) outlasts Update's own
// attempts, and a person's add should not fail because of it.
const updateRounds = 8

// update applies fn to the car's record with compare-and-swap, prunes the
// finished needs, and writes only when something changed.
func (b *Book) update(ctx context.Context, vin string, fn func(r *record, now time.Time) error) error {
	key := Key(vin)
	var err, fnErr error
	for range updateRounds {
		_, err = state.Update(ctx, b.store, key, func(cur *record, exists bool) (*record, error) {
			fnErr = nil
			r := record{VIN: vin}
			if exists {
				r = *cur
			}
			before, err := json.Marshal(r)
			if err != nil {
				return nil, err
			}
			now := b.clock.Now()
			if fnErr = fn(&r, now); fnErr != nil {
				return nil, fnErr
			}
			r.prune(now)
			after, err := json.Marshal(r)
			if err != nil {
				return nil, err
			}
			if exists && bytes.Equal(before, after) {
				return nil, nil
			}
			return &r, nil
		})
		if !errors.Is(err, state.ErrConflict) {
			break
		}
	}
	// Identity, not errors.Is: fn's own error goes back as is.
	if fnErr != nil && err == fnErr {
		return err
	}
	return storeError(key, err)
}

// addToIndex puts vin in the index unless it is there.
func (b *Book) addToIndex(ctx context.Context, vin string) error {
	var err error
	for range updateRounds {
		_, err = state.Update(ctx, b.store, IndexKey, func(cur *index, exists bool) (*index, error) {
			if exists && slices.Contains(cur.VINs, vin) {
				return nil, nil
			}
			next := index{}
			if exists {
				next = *cur
			}
			next.VINs = append(next.VINs, vin)
			slices.Sort(next.VINs)
			return &next, nil
		})
		if !errors.Is(err, state.ErrConflict) {
			break
		}
	}
	return storeError(IndexKey, err)
}

// storeError marks the state store's failures with ErrStore.
func storeError(key string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, state.ErrInvalidKey):
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	default:
		return fmt.Errorf("%w: %s: %w", ErrStore, key, err)
	}
}
