package devstack

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
)

// TestChargeNeedEndToEnd: a need added over the worker's API, a car left
// plugged in at home (no arrival to trigger anything), real HTTP between
// scout, worker and simulator, signed commands verified by the simulated
// car. The scout asks for one cycle when the need's 24 h begin, the worker
// raises the limit (waking the car once), the car charges to the need in
// cheap hours, and after the need's time one more cycle records it met and
// puts the limit back.
func TestChargeNeedEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := Start(ctx, Options{Dir: t.TempDir(), Clock: clock.NewManual(StoryStart),
		Sim: fleetsim.Options{WakeDelay: -1}}) // the clock stands still inside a tick
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SeedTokens(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.SetCar(VIN, func(c *fleetsim.CarState) { c.ConnChargeCable = fleetsim.CableIEC }); err != nil {
		t.Fatal(err)
	}
	// Tuesday 06:00 in Warsaw; 90 % by Wednesday 08:00.
	status, body, err := st.post(ctx, st.WorkerURL+"/charge-needs", map[string]any{"vin": VIN, "target_percent": 90, "by": "2026-12-02 08:00", "note": "trip"})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("add the need: %d %s %v", status, body, err)
	}
	var added struct {
		Need struct{ ID string } `json:"need"`
	}
	if err := json.Unmarshal(body, &added); err != nil {
		t.Fatal(err)
	}

	reasons := map[string]int{}
	raisedAt, restoredAt := time.Time{}, time.Time{}
	for i := 0; i < 4*30; i++ { // to Wednesday noon
		res, err := st.Tick(ctx)
		if err != nil || res.Status != http.StatusOK {
			t.Fatalf("tick: %d %s %v", res.Status, res.Raw, err)
		}
		for _, v := range res.Body.Vehicles {
			if v.Action == patrol.ActionTriggered {
				reasons[v.Reason]++
			}
		}
		car, _ := st.Sim.Car(VIN)
		switch {
		case raisedAt.IsZero() && car.ChargeLimitSOC == 90:
			raisedAt = st.Clock.Now()
		case !raisedAt.IsZero() && restoredAt.IsZero() && car.ChargeLimitSOC == 80:
			restoredAt = st.Clock.Now()
			if car.BatteryLevel < 90 {
				t.Errorf("the limit is back at %s with the car at %d %%", restoredAt, car.BatteryLevel)
			}
		}
		st.Clock.Advance(15 * time.Minute)
		st.Sim.Tick()
	}
	if reasons[patrol.ReasonNeedWindow] != 1 || reasons[patrol.ReasonNeedDue] != 1 {
		t.Errorf("triggers %v: want one need_window and one need_due", reasons)
	}
	loc, _ := time.LoadLocation("Europe/Warsaw")
	if raisedAt.IsZero() || raisedAt.Before(time.Date(2026, 12, 1, 8, 0, 0, 0, loc)) {
		t.Errorf("limit raised at %v: want at the start of the need's 24 h (Tuesday 08:00)", raisedAt)
	}
	if restoredAt.IsZero() || restoredAt.Before(time.Date(2026, 12, 2, 8, 0, 0, 0, loc)) {
		t.Errorf("limit put back at %v: want after the need's time", restoredAt)
	}
	if w := st.Sim.Counters().Fleet[VIN]["wake"]; w > 2 {
		t.Errorf("%d wakes: at most one per step", w)
	}
	e, _ := st.Sim.Energy(VIN)
	for hour, kwh := range e.ByHourOfDay {
		if kwh > 0 && (hour >= 6 && hour < 13 || hour >= 15 && hour < 22) {
			t.Errorf("%.2f kWh drawn at %02d:00, in peak hours", kwh, hour)
		}
	}
	// The need, as the API tells it.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, st.WorkerURL+"/charge-needs?vin="+VIN, nil)
	req.Header.Set("Authorization", "Bearer "+AuthToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Needs []struct {
			ID, State string
		} `json:"needs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Needs) != 1 || list.Needs[0].ID != added.Need.ID || list.Needs[0].State != "met" {
		t.Errorf("GET /charge-needs: %+v %v; want the need, met", list, err)
	}
}
