package charging

import (
	"errors"
	"fmt"
	"sort"
)

// ErrTooManySchedules: the desired schedules do not fit in the car's
// max_num_charge_schedules even after our stale ones are removed. Nothing is
// sent in that case: half a plan could charge at the wrong time.
var ErrTooManySchedules = errors.New("charge schedules would exceed the car's maximum")

// Reconcile compares the car's schedules with the desired ones by content:
// days, start, end, one_time, the enabled flags, and the position within
// PositionTolerance (the car keeps float32).
//
//   - A desired schedule that some existing one already matches is not added.
//     One of ours must also carry the desired id, which encodes the start
//     date: a one-time schedule from last week with the same hours is stale,
//     not a match. A foreign one at home with the same content also counts
//     (adding a twin would only use up a slot); so if a car ever did not keep
//     our ids, its schedules would look foreign and still match by content.
//   - Ours at home that match nothing desired are removed (stale), as are
//     duplicates of ours — except one whose id a desired schedule carries:
//     adding with an existing id modifies that schedule (reference/
//     charging.md), so it is changed in place by the add (a standing
//     schedule whose days change), one command instead of two.
//   - Foreign schedules (ids outside our range) and any not at home are left
//     alone.
//   - max > 0 is the car's limit: the count after removals and additions must
//     fit, else ErrTooManySchedules and nothing to do. max ≤ 0 means unknown.
//
// add keeps the order of desired; remove is sorted by id.
func Reconcile(existing, desired []Schedule, home LatLon, max int) (add []Schedule, remove []int64, err error) {
	matched := make([]bool, len(desired))
	match := func(s Schedule, sameID bool) bool {
		for i, d := range desired {
			if !matched[i] && sameContent(s, d) && (!sameID || s.ID == d.ID) {
				matched[i] = true
				return true
			}
		}
		return false
	}

	byID := append([]Schedule(nil), existing...)
	sort.SliceStable(byID, func(i, j int) bool { return byID[i].ID < byID[j].ID })
	var foreignAtHome []Schedule
	var changed []int64 // ours at home that a desired schedule's id will modify
	for _, s := range byID {
		if !samePlace(s.Lat, s.Lon, home.Lat, home.Lon) {
			continue // not at home: not ours to judge
		}
		if !IsOurs(s.ID) {
			foreignAtHome = append(foreignAtHome, s)
			continue
		}
		if !match(s, true) {
			changed = append(changed, s.ID)
		}
	}
	for _, s := range foreignAtHome {
		match(s, false)
	}
	modifies := map[int64]bool{}
	for i, d := range desired {
		if !matched[i] {
			add = append(add, d)
			modifies[d.ID] = true
		}
	}
	modified := 0
	for _, id := range changed {
		if modifies[id] {
			modifies[id] = false // one existing schedule per id is modified; any twin goes
			modified++
			continue
		}
		remove = append(remove, id)
	}
	if max > 0 {
		if after := len(existing) - len(remove) + len(add) - modified; after > max {
			return nil, nil, fmt.Errorf("%w: %d existing, %d stale to remove, %d to add, car allows %d",
				ErrTooManySchedules, len(existing), len(remove), len(add), max)
		}
	}
	return add, remove, nil
}
