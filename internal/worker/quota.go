package worker

import (
	"context"
	"fmt"

	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/state"
)

// PlannerQuota counts the external planner's calls per day in the state
// store, so that a cold start or a second instance sees what the others
// have spent (a charging.MemoryQuota starts from zero in every process, and
// Cloud Run starts one for nearly every cycle). One object under the
// worker's plans/ prefix, plannerQuotaKey: {"day":"2026-12-01","used":3};
// a new day starts from zero.
//
// Taking a call is a compare-and-swap (state.Update), so two instances
// never both take the last one. A write that keeps colliding fails the
// Take, which the planner answers by falling back to the built-in planner:
// the quota is never exceeded, at worst a call is left unspent.
type PlannerQuota struct {
	Store state.Store
}

var _ charging.QuotaCounter = PlannerQuota{}

// plannerQuotaKey cannot be a plan's key: those are plans/<VIN>.json, and
// a VIN has no lower-case letters.
const plannerQuotaKey = "plans/planner-quota.json"

type quotaRecord struct {
	Day  string `json:"day"` // YYYY-MM-DD, the planner's local day
	Used int    `json:"used"`
}

// Take implements charging.QuotaCounter.
func (q PlannerQuota) Take(ctx context.Context, day string, limit int) (bool, error) {
	var took bool
	_, err := state.Update(ctx, q.Store, plannerQuotaKey, func(cur *quotaRecord, exists bool) (*quotaRecord, error) {
		next := quotaRecord{Day: day}
		if exists && cur.Day >= day {
			// Today's count; or a caller whose clock is behind counts
			// against the newer day, so the record never steps back and
			// midnight cannot reset it twice.
			next = *cur
		}
		took = next.Used < limit
		if !took {
			return nil, nil
		}
		next.Used++
		return &next, nil
	})
	if err != nil {
		return false, fmt.Errorf("planner quota: %w", err)
	}
	return took, nil
}
