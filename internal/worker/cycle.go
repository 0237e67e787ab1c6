package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/logging"
	"github.com/offpeak-charging/offpeak/internal/server"
)

// CycleRunner runs one charging cycle for a car (charging.Cycle fits).
type CycleRunner interface {
	Run(ctx context.Context, vin string) (charging.Result, error)
}

func (h *handlers) runCycle(w http.ResponseWriter, r *http.Request) {
	var req contract.CycleRequest
	if !server.DecodeJSON(w, r, &req, false) {
		return
	}
	if !contract.ValidVIN(req.VIN) {
		server.WriteError(w, http.StatusBadRequest, contract.CodeBadRequest, "vin: "+contract.VINRule+" required")
		return
	}
	if h.Cycle == nil {
		server.WriteRetryableError(w, http.StatusServiceUnavailable, contract.CodeUpstreamUnavailable, "charging cycle is not configured", retryAfter)
		return
	}
	log := logging.FromContext(r.Context()).With(zap.String("vin", req.VIN))
	log.Info("charging cycle requested", zap.String("reason", req.Reason))
	res, err := h.Cycle.Run(r.Context(), req.VIN)
	if err != nil {
		writeDomainError(w, r, err)
		return
	}
	out := contract.CycleResponse{
		Status: contract.StatusOK, VIN: req.VIN, Plan: []contract.PlanWindow{},
		Commands: contract.CommandCounts{Added: res.Added, Removed: res.Removed, Path: h.commandPath(req.VIN)},
		Woke:     res.Woke, Changed: res.Changed, Asleep: res.Asleep, AtHome: res.AtHome, Planner: res.PlannerUsed,
		LocationMissing: res.LocationMissing, Need: needAnswer(res.Need),
	}
	for _, win := range res.Plan {
		out.Plan = append(out.Plan, contract.PlanWindow{Start: win.Start.UTC(), End: win.End.UTC()})
	}
	if res.Shortfall > 0 {
		out.Shortfall = res.Shortfall.Round(time.Minute).String()
	}
	switch {
	case res.Asleep:
		out.Note = "car asleep: nothing changed; the scout triggers again when it wakes"
	case res.LocationMissing:
		out.Note = contract.NoteLocationMissing
		log.Warn("the car reported no position; nothing planned", zap.String("fix", "run fleetctl login and approve the vehicle_location scope"))
	case !res.AtHome:
		out.Note = "car not at home: home schedules left as they are"
	case res.Need.PeakKWh > 0:
		out.Note = fmt.Sprintf("charge need %s: the cheap hours before %s cannot hold it all; %.1f kWh will be bought at peak",
			res.Need.ID, res.Need.By.UTC().Format(time.RFC3339), res.Need.PeakKWh)
	}
	log.Info("charging cycle done", zap.Int("added", res.Added), zap.Int("removed", res.Removed),
		zap.Bool("woke", res.Woke), zap.Bool("changed", res.Changed), zap.Bool("asleep", res.Asleep))
	server.WriteJSON(w, http.StatusOK, out)
}

// needAnswer is the contract's view of what a cycle did about needs.
func needAnswer(r charging.NeedResult) *contract.NeedAnswer {
	if r.ID == "" && len(r.Restored)+len(r.Settled) == 0 {
		return nil
	}
	a := &contract.NeedAnswer{ID: r.ID, TargetPercent: r.TargetPercent, LimitRaised: r.LimitRaised,
		PeakKWh: math.Round(r.PeakKWh*100) / 100, Restored: r.Restored, Settled: r.Settled}
	if r.ID != "" {
		by := r.By.UTC()
		a.By = &by
	}
	if r.Shortfall > 0 {
		a.Shortfall = r.Shortfall.Round(time.Minute).String()
	}
	return a
}

// cycleError maps the charging cycle's and the Fleet client's errors; it
// returns false for errors it does not know.
func cycleError(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, charging.ErrCycleBusy):
		server.WriteRetryableError(w, http.StatusConflict, contract.CodeBusy, err.Error(), 15*time.Second)
	// The signed path's faults a person must fix: 409 (not 5xx), so no
	// caller retries them in a loop; the scout gives a pending trigger up
	// after a few such answers.
	case errors.Is(err, carcmd.ErrKeyNotPaired):
		server.WriteError(w, http.StatusConflict, contract.CodeKeyNotPaired, err.Error())
	case errors.Is(err, carcmd.ErrNoKey):
		server.WriteError(w, http.StatusConflict, contract.CodeKeyMissing, err.Error())
	case errors.Is(err, carcmd.ErrKeyInvalid):
		server.WriteError(w, http.StatusConflict, contract.CodeKeyInvalid, err.Error())
	case errors.Is(err, carcmd.ErrKeyRejected):
		server.WriteError(w, http.StatusConflict, contract.CodeKeyRejected, err.Error())
	case errors.Is(err, carcmd.ErrSigningDisabled):
		server.WriteError(w, http.StatusConflict, contract.CodeSigningDisabled, err.Error())
	case errors.Is(err, fleet.ErrPrecondition):
		server.WriteError(w, http.StatusConflict, contract.CodeAppUnregistered, err.Error())
	case errors.Is(err, carcmd.ErrSessionRejected):
		server.WriteRetryableError(w, http.StatusServiceUnavailable, contract.CodeSessionRejected, err.Error(), retryAfter)
	case errors.Is(err, carcmd.ErrCarBusy):
		server.WriteRetryableError(w, http.StatusServiceUnavailable, contract.CodeCarBusy, err.Error(), retryAfter)
	case errors.Is(err, fleet.ErrWrongRegion), errors.Is(err, fleet.ErrForbidden), errors.Is(err, fleet.ErrSigningRequired):
		// Configuration problems: retrying will not help.
		server.WriteError(w, http.StatusBadGateway, contract.CodeUpstreamUnavailable, err.Error())
	case errors.Is(err, charging.ErrVehicleRead), errors.Is(err, charging.ErrCommand), errors.Is(err, fleet.ErrUpstream),
		errors.Is(err, fleet.ErrRateLimited), errors.Is(err, charging.ErrAsleep):
		server.WriteRetryableError(w, http.StatusServiceUnavailable, contract.CodeUpstreamUnavailable, err.Error(), retryAfter)
	case errors.Is(err, charging.ErrPlanStore), errors.Is(err, charging.ErrNeeds):
		server.WriteRetryableError(w, http.StatusServiceUnavailable, contract.CodeStoreUnavailable, err.Error(), retryAfter)
	default:
		return false
	}
	return true
}

func (h *handlers) commandPath(vin string) string {
	if h.Commands == nil {
		return ""
	}
	return string(h.Commands.LastPath(vin))
}
