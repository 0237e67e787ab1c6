package charging

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// errProxyBadRequest is what the proxy answers (HTTP 400) to a parameter it
// refuses, e.g. days_of_week "TUE".
var errProxyBadRequest = errors.New("400 invalid days_of_week param")

// fakeCar behaves like a car behind tesla-http-proxy as charging.md
// describes it: asleep → every call but wake_up fails as "vehicle
// unavailable"; days go in as names and come back as a bitmask; lat/lon are
// kept as float32 and come back as latitude/longitude; a schedule without an
// id gets the Unix time; an existing id is modified; the car refuses
// (result:false) when its schedule slots are full.
type fakeCar struct {
	mu sync.Mutex

	asleep     bool
	lat, lon   float64
	noLocation bool
	battery    int
	limit      int
	max        int
	schedules  map[int64]Schedule
	unixNow    func() int64

	readErr     error
	rejectNext  int          // the next n commands answer result:false
	rejectAt    map[int]bool // command attempt n (1-based) answers result:false
	sleepBefore map[int]bool // the car falls asleep before command attempt n (1-based, retries count)
	wakeWorks   bool

	// blockRead, when set, makes VehicleData announce itself on readEntered
	// and wait for blockRead to close.
	readEntered chan struct{}
	blockRead   chan struct{}

	reads, wakes, waits, attempts, adds, removes int
	limitSets                                    int
	log                                          []string
}

func newFakeCar() *fakeCar {
	return &fakeCar{
		lat: home.Lat, lon: home.Lon, battery: 50, limit: 80, max: 10,
		schedules: map[int64]Schedule{},
		unixNow:   func() int64 { return 1768300000 },
		wakeWorks: true,
	}
}

var errUnavailable = fmt.Errorf("%w: vehicle unavailable: vehicle is offline or asleep", ErrAsleep)

func (c *fakeCar) VehicleData(ctx context.Context, vin string) (Snapshot, error) {
	c.mu.Lock()
	entered, block := c.readEntered, c.blockRead
	c.mu.Unlock()
	if block != nil {
		entered <- struct{}{}
		select {
		case <-block:
		case <-ctx.Done():
			return Snapshot{}, ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	if c.readErr != nil {
		return Snapshot{}, c.readErr
	}
	if c.asleep {
		return Snapshot{}, errUnavailable
	}
	snap := Snapshot{State: "online", BatteryLevel: c.battery, ChargeLimitSOC: c.limit, ChargingState: "Stopped",
		Plugged: true, Latitude: c.lat, Longitude: c.lon, HasLocation: !c.noLocation, MaxSchedules: c.max}
	if c.noLocation {
		snap.Latitude, snap.Longitude = 0, 0
	}
	for _, s := range c.schedules {
		snap.Schedules = append(snap.Schedules, s)
	}
	// The car's order is its own; make sure we do not depend on it.
	sort.Slice(snap.Schedules, func(i, j int) bool { return snap.Schedules[i].ID > snap.Schedules[j].ID })
	return snap, nil
}

func (c *fakeCar) WakeUp(ctx context.Context, vin string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wakes++
	c.log = append(c.log, "wake_up")
	if c.wakeWorks {
		c.asleep = false
	}
	return nil
}

func (c *fakeCar) WaitOnline(ctx context.Context, vin string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits++
	if c.asleep {
		return fmt.Errorf("still asleep: %w", context.DeadlineExceeded)
	}
	return nil
}

// command runs the checks every signed command meets.
func (c *fakeCar) command() error {
	c.attempts++
	if c.sleepBefore[c.attempts] {
		c.asleep = true
	}
	if c.asleep {
		return errUnavailable
	}
	if c.rejectNext > 0 || c.rejectAt[c.attempts] {
		c.rejectNext = max(c.rejectNext-1, 0)
		return fmt.Errorf("%w: reason \"busy\"", ErrCommandRejected)
	}
	return nil
}

// dayNames is the fleet client's half of the trip, done here only to
// check that the mask can be written as names the proxy accepts.
func dayNames(mask int) (string, error) {
	if mask <= 0 || mask > AllDays {
		return "", errProxyBadRequest
	}
	names := []string{"SUN", "MON", "TUES", "WED", "THURS", "FRI", "SAT"}
	var out []string
	for i, n := range names {
		if mask&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ","), nil
}

func (c *fakeCar) AddChargeSchedule(ctx context.Context, vin string, s Schedule) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.command(); err != nil {
		return err
	}
	if _, err := dayNames(s.DaysMask); err != nil {
		return err
	}
	if s.StartMin < 0 || s.StartMin >= minutesPerDay || s.EndMin < 0 || s.EndMin >= minutesPerDay {
		return errProxyBadRequest
	}
	if s.ID == 0 {
		s.ID = c.unixNow()
	}
	if _, exists := c.schedules[s.ID]; !exists && len(c.schedules) >= c.max {
		return fmt.Errorf("%w: reason \"max schedules reached\"", ErrCommandRejected)
	}
	s.Lat, s.Lon = float64(float32(s.Lat)), float64(float32(s.Lon))
	c.schedules[s.ID] = s
	c.adds++
	c.log = append(c.log, fmt.Sprintf("add %d", s.ID))
	return nil
}

func (c *fakeCar) RemoveChargeSchedule(ctx context.Context, vin string, id int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.command(); err != nil {
		return err
	}
	delete(c.schedules, id)
	c.removes++
	c.log = append(c.log, fmt.Sprintf("remove %d", id))
	return nil
}

func (c *fakeCar) SetChargeLimit(ctx context.Context, vin string, percent int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.command(); err != nil {
		return err
	}
	if percent < 50 || percent > 100 {
		return fmt.Errorf("%w: reason \"invalid limit\"", ErrCommandRejected)
	}
	c.limit = percent
	c.limitSets++
	c.log = append(c.log, fmt.Sprintf("limit %d", percent))
	return nil
}

func (c *fakeCar) put(ss ...Schedule) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range ss {
		s.Lat, s.Lon = float64(float32(s.Lat)), float64(float32(s.Lon))
		c.schedules[s.ID] = s
	}
}

func (c *fakeCar) set(f func(c *fakeCar)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func (c *fakeCar) counts() (reads, wakes, adds, removes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads, c.wakes, c.adds, c.removes
}

// fakeStore is a PlanStore with a create-only lease, like the state store's
// generation match.
type fakeStore struct {
	mu     sync.Mutex
	hashes map[string]string
	leases map[string]bool
	saves  int
}

func newFakeStore() *fakeStore {
	return &fakeStore{hashes: map[string]string{}, leases: map[string]bool{}}
}

func (s *fakeStore) LoadPlanHash(ctx context.Context, vin string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hashes[vin], nil
}

func (s *fakeStore) SavePlanHash(ctx context.Context, vin, hash string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hashes[vin] = hash
	s.saves++
	return nil
}

func (s *fakeStore) AcquireCycle(ctx context.Context, vin string, ttl time.Duration) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[vin] {
		return nil, ErrCycleBusy
	}
	s.leases[vin] = true
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.leases, vin)
	}, nil
}

func (s *fakeStore) state(vin string) (hash string, saves int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hashes[vin], s.saves
}
