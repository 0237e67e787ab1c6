package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/logging"
	"github.com/offpeak-charging/offpeak/internal/needs"
	"github.com/offpeak-charging/offpeak/internal/server"
	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// NeedBook is what the charge-need endpoints need (*needs.Book fits).
type NeedBook interface {
	Add(ctx context.Context, req needs.Request) (needs.Need, bool, error)
	List(ctx context.Context) ([]needs.Need, error)
	ListVIN(ctx context.Context, vin string) ([]needs.Need, error)
	Delete(ctx context.Context, id string) (needs.Need, error)
	StatusOf(n needs.Need) needs.Status
}

// NeedRequest is POST /charge-needs' body. By is RFC 3339 or a local
// "YYYY-MM-DD HH:MM" in TIMEZONE.
type NeedRequest struct {
	VIN           string `json:"vin"`
	TargetPercent int    `json:"target_percent"`
	By            string `json:"by"`
	Note          string `json:"note,omitempty"`
}

// NeedView is a need on the wire. It is its own type, not needs.Need, so
// the stored record can grow without changing the API.
type NeedView struct {
	ID            string     `json:"id"`
	VIN           string     `json:"vin"`
	TargetPercent int        `json:"target_percent"`
	By            time.Time  `json:"by"` // in TIMEZONE's offset
	Note          string     `json:"note,omitempty"`
	Created       time.Time  `json:"created"`
	State         string     `json:"state"` // pending, active, due, met, missed, cancelled
	Cancelled     *time.Time `json:"cancelled,omitempty"`
	// LimitPreviousPercent: the cycle raised the charge limit for the need
	// and will put this one back; LimitRestored: it has.
	LimitPreviousPercent *int       `json:"limit_previous_percent,omitempty"`
	LimitRestored        *time.Time `json:"limit_restored,omitempty"`
	Met                  *bool      `json:"met,omitempty"`
	SoCAtBy              *int       `json:"soc_at_by,omitempty"`
}

// NeedResponse answers POST /charge-needs (201 created, 200 already there)
// and DELETE /charge-needs/{id} (200).
type NeedResponse struct {
	Status  string   `json:"status"`
	Created bool     `json:"created,omitempty"`
	Need    NeedView `json:"need"`
	Note    string   `json:"note,omitempty"`
}

// NeedsResponse answers GET /charge-needs.
type NeedsResponse struct {
	Status string     `json:"status"`
	Needs  []NeedView `json:"needs"`
}

func (h *handlers) needView(n needs.Need) NeedView {
	v := NeedView{ID: n.ID, VIN: n.VIN, TargetPercent: n.TargetPercent, By: n.By, Note: n.Note, Created: n.Created,
		State: string(h.Needs.StatusOf(n)), Cancelled: n.Cancelled}
	if n.Limit != nil {
		prev := n.Limit.PreviousPercent
		v.LimitPreviousPercent, v.LimitRestored = &prev, n.Limit.RestoredAt
	}
	if n.Outcome != nil {
		met, soc := n.Outcome.Met, n.Outcome.SoCPercent
		v.Met, v.SoCAtBy = &met, &soc
	}
	return v
}

func (h *handlers) needsConfigured(w http.ResponseWriter) bool {
	if h.Needs == nil {
		server.WriteRetryableError(w, http.StatusServiceUnavailable, contract.CodeStoreUnavailable, "charge needs are not configured", retryAfter)
		return false
	}
	return true
}

func (h *handlers) addNeed(w http.ResponseWriter, r *http.Request) {
	var req NeedRequest
	if !h.needsConfigured(w) || !server.DecodeJSON(w, r, &req, false) {
		return
	}
	n, created, err := h.Needs.Add(r.Context(), needs.Request{VIN: req.VIN, TargetPercent: req.TargetPercent, By: req.By, Note: req.Note})
	if err != nil {
		writeNeedError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		logging.FromContext(r.Context()).Info("charge need added", zap.String("id", n.ID), zap.String("vin", n.VIN),
			zap.Int("target_percent", n.TargetPercent), zap.Time("by", n.By))
	}
	server.WriteJSON(w, status, NeedResponse{Status: "ok", Created: created, Need: h.needView(n)})
}

func (h *handlers) listNeeds(w http.ResponseWriter, r *http.Request) {
	if !h.needsConfigured(w) {
		return
	}
	var list []needs.Need
	var err error
	if vin := r.URL.Query().Get("vin"); vin != "" {
		list, err = h.Needs.ListVIN(r.Context(), vin)
	} else {
		list, err = h.Needs.List(r.Context())
	}
	if err != nil {
		writeNeedError(w, r, err)
		return
	}
	out := NeedsResponse{Status: "ok", Needs: make([]NeedView, 0, len(list))}
	for _, n := range list {
		out.Needs = append(out.Needs, h.needView(n))
	}
	server.WriteJSON(w, http.StatusOK, out)
}

func (h *handlers) deleteNeed(w http.ResponseWriter, r *http.Request) {
	if !h.needsConfigured(w) {
		return
	}
	n, err := h.Needs.Delete(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeNeedError(w, r, err)
		return
	}
	logging.FromContext(r.Context()).Info("charge need deleted", zap.String("id", n.ID), zap.Bool("restore_pending", n.RestorePending()))
	out := NeedResponse{Status: "ok", Need: h.needView(n)}
	if n.RestorePending() {
		out.Note = fmt.Sprintf("the charge limit raised for this need goes back to %d %% on the car's next cycle", n.Limit.PreviousPercent)
	}
	server.WriteJSON(w, http.StatusOK, out)
}

// writeNeedError maps the needs package's kinds; the rest (a Fleet or token
// failure behind the list of known cars) goes to writeDomainError.
func writeNeedError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, needs.ErrInvalid):
		server.WriteError(w, http.StatusBadRequest, contract.CodeBadRequest, err.Error())
	case errors.Is(err, needs.ErrNotFound):
		server.WriteError(w, http.StatusNotFound, contract.CodeNotFound, err.Error())
	case errors.Is(err, needs.ErrTooMany):
		server.WriteError(w, http.StatusConflict, contract.CodeTooManyNeeds, err.Error())
	case errors.Is(err, state.ErrCorrupt):
		logging.FromContext(r.Context()).Error("charge needs object corrupt", zap.Error(err))
		server.WriteError(w, http.StatusInternalServerError, contract.CodeInternal, err.Error())
	case errors.Is(err, needs.ErrStore):
		logging.FromContext(r.Context()).Warn("charge needs store failed", zap.Error(err))
		server.WriteRetryableError(w, http.StatusServiceUnavailable, contract.CodeStoreUnavailable, err.Error(), retryAfter)
	case errors.Is(err, needs.ErrCars) && !errors.Is(err, tokens.ErrReauthRequired):
		logging.FromContext(r.Context()).Warn("known cars unavailable", zap.Error(err))
		server.WriteRetryableError(w, http.StatusServiceUnavailable, contract.CodeUpstreamUnavailable, err.Error(), retryAfter)
	default:
		writeDomainError(w, r, err)
	}
}

// CarLister lists the account's cars (*fleet.Client fits).
type CarLister interface {
	Vehicles(ctx context.Context) ([]fleet.Vehicle, error)
}

// AccountCars are the cars a need may name: the Fleet account's, as the
// scout sees them without VEHICLE_VINS (the worker has no list of its
// own). The list is one GET /api/1/vehicles, which wakes nothing, kept for
// TTL so a burst of requests (or a typo tried again) costs one call; a new
// car is known after at most TTL. Only VINs that /run-cycle would accept
// are known: a need for any other could never be charged for.
type AccountCars struct {
	Lister CarLister
	Clock  clock.Clock   // nil means the wall clock
	TTL    time.Duration // 0 means 5 minutes

	mu   sync.Mutex
	vins []string
	at   time.Time
}

var _ needs.Cars = (*AccountCars)(nil)

// VINs implements needs.Cars.
func (a *AccountCars) VINs(ctx context.Context) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ttl := a.TTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	var now time.Time
	if a.Clock != nil {
		now = a.Clock.Now()
	} else {
		now = time.Now()
	}
	if a.vins != nil && now.Sub(a.at) < ttl {
		return a.vins, nil
	}
	cars, err := a.Lister.Vehicles(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the account's cars: %w", err)
	}
	vins := make([]string, 0, len(cars))
	for _, c := range cars {
		if contract.ValidVIN(c.VIN) {
			vins = append(vins, c.VIN)
		}
	}
	a.vins, a.at = vins, now
	return vins, nil
}

// buildNeeds is the charge-need book over the worker's state store, its
// known cars listed by a Fleet client of its own (the cycle's is built
// inside buildCycle; a client is only a few fields).
func buildNeeds(cfg Config, opts Options, tm *tokens.Manager) (*needs.Book, error) {
	loc, err := time.LoadLocation(cfg.Charging.Timezone)
	if err != nil {
		return nil, fmt.Errorf("TIMEZONE: %w", err)
	}
	client := fleet.New(cfg.TeslaFleetAPIURL, tm, fleet.WithHTTPClient(opts.HTTPClient), fleet.WithClock(opts.Clock),
		fleet.WithTokenRenewal(tm))
	return needs.NewBook(opts.State, &AccountCars{Lister: client, Clock: opts.Clock}, opts.Clock, needs.Config{Location: loc})
}
