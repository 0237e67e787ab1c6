package charging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/httpclient"
)

// The external planner is the "OFF-Peak Charge" service the Python system
// used (its docs/api/off-peak-api.md): POST JSON, API key in X-API-Key, 30
// requests a day per key.
//
// Request:
//
//	{"batteryLevel": 65, "batteryCapacity": 75, "consumption": 18.5, "dailyMileage": 120,
//	 "chargeLimits": {"optimalUpper": 0.8, "optimalLower": 0.5, "chargingRate": 11}}
//
// Answer (fields we do not use are ignored):
//
//	{"success": true, "data": {"chargingSchedule": [
//	  {"start_time": "2024-01-15T22:00:00.000Z", "end_time": "2024-01-15T23:00:00.000Z", "charge_amount": 2.75}]}}
type externalRequest struct {
	BatteryLevel    int            `json:"batteryLevel"`
	BatteryCapacity float64        `json:"batteryCapacity"`
	Consumption     float64        `json:"consumption"`
	DailyMileage    float64        `json:"dailyMileage"`
	ChargeLimits    externalLimits `json:"chargeLimits"`
}

type externalLimits struct {
	OptimalUpper float64 `json:"optimalUpper"`
	OptimalLower float64 `json:"optimalLower"`
	ChargingRate float64 `json:"chargingRate"`
}

type externalResponse struct {
	Success *bool `json:"success"`
	Data    *struct {
		ChargingSchedule *[]externalSlot `json:"chargingSchedule"`
	} `json:"data"`
}

type externalSlot struct {
	StartTime    string   `json:"start_time"`
	EndTime      string   `json:"end_time"`
	ChargeAmount *float64 `json:"charge_amount"`
}

// QuotaCounter counts calls to the external planner per day. Take reports
// whether one more call fits under limit on day (YYYY-MM-DD, local) and, if
// so, counts it; it must never let two callers take the last call. The
// worker's PlannerQuota keeps the count in the state store, across
// instances and cold starts; MemoryQuota counts in this process only.
type QuotaCounter interface {
	Take(ctx context.Context, day string, limit int) (bool, error)
}

// MemoryQuota is a QuotaCounter in memory, safe for concurrent use.
type MemoryQuota struct {
	mu   sync.Mutex
	day  string
	used int
}

var _ QuotaCounter = (*MemoryQuota)(nil)

// Take implements QuotaCounter; a new day starts from zero.
func (q *MemoryQuota) Take(_ context.Context, day string, limit int) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.day != day {
		q.day, q.used = day, 0
	}
	if q.used >= limit {
		return false, nil
	}
	q.used++
	return true, nil
}

// ExternalPlannerConfig configures NewExternalPlanner.
type ExternalPlannerConfig struct {
	URL    string // PLANNER_URL
	APIKey string // secret value; sent only in the X-API-Key header
	Tariff *Tariff
	Clock  clock.Clock
	// DailyQuota is the number of calls allowed per local day (default 30).
	DailyQuota int
	Quota      QuotaCounter  // default: a MemoryQuota (this process only)
	Timeout    time.Duration // per call (default 10 s)
	HTTPClient *http.Client  // default: http.DefaultClient's transport with Timeout; never follows redirects
	// ConsumptionKWhPer100km and DailyKm feed the planner's own forecast
	// (defaults 18.5 and 50).
	ConsumptionKWhPer100km float64
	DailyKm                float64
}

// ExternalPlanner asks an HTTP planner for slots and checks its answer: past
// parts and parts after the deadline are dropped, and parts outside cheap
// windows are clipped away except, when SoC < floor, the earliest of them up
// to the time the floor needs. Any failure is an error, so that a
// FallbackPlanner turns to the built-in planner.
type ExternalPlanner struct {
	cfg ExternalPlannerConfig
}

var _ Planner = (*ExternalPlanner)(nil)

// NewExternalPlanner checks cfg and fills its defaults.
func NewExternalPlanner(cfg ExternalPlannerConfig) (*ExternalPlanner, error) {
	if cfg.URL == "" {
		return nil, &ConfigError{Var: "PLANNER_URL", Token: "", Reason: "empty"}
	}
	if cfg.APIKey == "" {
		return nil, &ConfigError{Var: "PLANNER_API_KEY", Token: "", Reason: "the planner's API key secret is empty"}
	}
	if cfg.Tariff == nil {
		return nil, fmt.Errorf("%w: external planner needs the tariff", ErrInvalidConfig)
	}
	if cfg.Clock == nil {
		return nil, fmt.Errorf("%w: external planner needs a clock", ErrInvalidConfig)
	}
	if cfg.DailyQuota == 0 {
		cfg.DailyQuota = 30
	}
	if cfg.DailyQuota < 0 {
		return nil, &ConfigError{Var: "PLANNER_DAILY_QUOTA", Token: fmt.Sprint(cfg.DailyQuota), Reason: "must be positive"}
	}
	if cfg.Quota == nil {
		cfg.Quota = &MemoryQuota{}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	// No redirects: Go forwards X-API-Key to wherever a redirect points.
	cfg.HTTPClient = httpclient.NoRedirects(cfg.HTTPClient)
	if cfg.ConsumptionKWhPer100km == 0 {
		cfg.ConsumptionKWhPer100km = 18.5
	}
	if cfg.DailyKm == 0 {
		cfg.DailyKm = 50
	}
	return &ExternalPlanner{cfg: cfg}, nil
}

// Plan implements Planner.
func (p *ExternalPlanner) Plan(ctx context.Context, in PlanInput) (Plan, error) {
	if err := in.validate(); err != nil {
		return Plan{}, err
	}
	loc := p.cfg.Tariff.Location()
	plan := Plan{Source: SourceExternal, Deadline: in.ReadyBy.Next(in.Now, loc)}
	if in.SoC >= in.TargetPercent {
		// Nothing to charge: do not spend a call of the quota on it.
		return plan, nil
	}
	plan.Needed = in.chargeTime(in.TargetPercent - in.SoC)

	day := p.cfg.Clock.Now().In(loc).Format(time.DateOnly)
	ok, err := p.cfg.Quota.Take(ctx, day, p.cfg.DailyQuota)
	if err != nil {
		return Plan{}, fmt.Errorf("%w: quota counter: %w", ErrPlanner, err)
	}
	if !ok {
		return Plan{}, fmt.Errorf("%w: %d calls on %s", ErrPlannerQuota, p.cfg.DailyQuota, day)
	}

	slots, err := p.call(ctx, in)
	if err != nil {
		return Plan{}, err
	}

	start := in.Now.Truncate(time.Minute)
	var asked []Interval
	for _, s := range slots {
		// Minute edges, outward: the schedule cannot say seconds.
		iv := Interval{later(s.Start.Truncate(time.Minute), start), earlier(ceilMinute(s.End), plan.Deadline)}
		if iv.Start.Before(iv.End) {
			asked = append(asked, iv)
		}
	}
	asked = mergeIntervals(asked)
	cheap := p.cfg.Tariff.CheapIntervals(start, plan.Deadline)
	kept := intersectIntervals(asked, cheap)
	// Outside cheap time only what the floor needs, earliest first.
	budget := in.floorTime()
	for _, iv := range subtractIntervals(asked, cheap) {
		if budget <= 0 {
			break
		}
		take := min(budget, iv.Duration())
		kept = append(kept, Interval{iv.Start, iv.Start.Add(take)})
		budget -= take
	}
	plan.Windows = toWindows(mergeIntervals(kept))
	plan.Shortfall = max(plan.Needed-plan.Planned(), 0)
	return plan, nil
}

func ceilMinute(t time.Time) time.Time {
	if tr := t.Truncate(time.Minute); !tr.Equal(t) {
		return tr.Add(time.Minute)
	}
	return t
}

// call posts the request and returns the validated slots.
func (p *ExternalPlanner) call(ctx context.Context, in PlanInput) ([]Interval, error) {
	body, err := json.Marshal(externalRequest{
		BatteryLevel:    in.SoC,
		BatteryCapacity: in.BatteryKWh,
		Consumption:     p.cfg.ConsumptionKWhPer100km,
		DailyMileage:    p.cfg.DailyKm,
		ChargeLimits: externalLimits{
			OptimalUpper: float64(in.TargetPercent) / 100,
			OptimalLower: float64(in.FloorPercent) / 100,
			ChargingRate: in.ChargerKW,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: encode request: %w", ErrPlanner, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: build request: %w", ErrPlanner, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-API-Key", p.cfg.APIKey)
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		var redirect *httpclient.RedirectError
		if errors.As(err, &redirect) {
			return nil, fmt.Errorf("%w: %w (check PLANNER_URL)", ErrPlanner, redirect)
		}
		return nil, fmt.Errorf("%w: %w", ErrPlanner, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: read answer: %w", ErrPlanner, err)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, fmt.Errorf("%w: the planner says 429", ErrPlannerQuota)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: HTTP %d", ErrPlanner, resp.StatusCode)
	}
	return parseExternalAnswer(raw)
}

func parseExternalAnswer(raw []byte) ([]Interval, error) {
	var r externalResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPlannerResponse, err)
	}
	if r.Success == nil || !*r.Success {
		return nil, fmt.Errorf("%w: success is not true", ErrPlannerResponse)
	}
	if r.Data == nil || r.Data.ChargingSchedule == nil {
		return nil, fmt.Errorf("%w: no data.chargingSchedule", ErrPlannerResponse)
	}
	var out []Interval
	for i, s := range *r.Data.ChargingSchedule {
		start, err1 := time.Parse(time.RFC3339Nano, s.StartTime)
		end, err2 := time.Parse(time.RFC3339Nano, s.EndTime)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%w: slot %d: %w", ErrPlannerResponse, i, err)
		}
		if !start.Before(end) {
			return nil, fmt.Errorf("%w: slot %d ends before it starts", ErrPlannerResponse, i)
		}
		if end.Sub(start) > 48*time.Hour {
			return nil, fmt.Errorf("%w: slot %d lasts %v", ErrPlannerResponse, i, end.Sub(start))
		}
		if s.ChargeAmount == nil || *s.ChargeAmount < 0 || math.IsNaN(*s.ChargeAmount) || math.IsInf(*s.ChargeAmount, 0) {
			return nil, fmt.Errorf("%w: slot %d has no usable charge_amount", ErrPlannerResponse, i)
		}
		out = append(out, Interval{start, end})
	}
	return out, nil
}
