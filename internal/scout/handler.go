package scout

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
	"github.com/offpeak-charging/offpeak/internal/server"
	"github.com/offpeak-charging/offpeak/internal/svcauth"
)

// Ticker is what the routes need of the patrol (*patrol.Patrol fits).
type Ticker interface {
	Tick(ctx context.Context) (patrol.Report, error)
	LastTick() (at time.Time, errText string)
}

// HandlerDeps are the scout's HTTP collaborators.
type HandlerDeps struct {
	Scout       Ticker
	Tokens      *TokenCache
	Auth        svcauth.Policy
	Logger      *zap.Logger
	ProjectID   string
	Version     string
	TickTimeout time.Duration
}

// NewHandler builds the scout's routes: POST /tick for Cloud Scheduler,
// GET /health for operators and probes.
func NewHandler(d HandlerDeps) http.Handler {
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	r := server.NewRouter(d.Logger, d.ProjectID)
	r.Get("/health", d.health)
	r.Group(func(r chi.Router) {
		r.Use(d.Auth.Middleware(d.Logger))
		r.Post("/tick", d.tick)
	})
	return r
}

// TickResponse is POST /tick's answer.
type TickResponse struct {
	Status   string                 `json:"status"`
	Vehicles []patrol.VehicleReport `json:"vehicles"`
}

func (d HandlerDeps) tick(w http.ResponseWriter, r *http.Request) {
	// Cloud Scheduler sends an empty body; anything else must at least be JSON.
	var ignored map[string]any
	if !server.DecodeJSON(w, r, &ignored, true) {
		return
	}
	timeout := d.TickTimeout
	if timeout <= 0 {
		timeout = 240 * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	rep, err := d.Scout.Tick(ctx)
	if err != nil && errors.Is(err, patrol.ErrNothingObserved) {
		// 5xx only when nothing at all could be observed, so Scheduler retries.
		server.WriteRetryableError(w, http.StatusServiceUnavailable, contract.CodeUpstreamUnavailable, err.Error(), time.Minute)
		return
	}
	server.WriteJSON(w, http.StatusOK, TickResponse{Status: contract.StatusOK, Vehicles: rep.Vehicles})
}

// HealthResponse is GET /health's answer; it makes no call to any store or API.
type HealthResponse struct {
	Status   string       `json:"status"`
	Service  string       `json:"service"`
	Version  string       `json:"version"`
	LastTick *LastTickDoc `json:"last_tick"`
	Tokens   TokenDoc     `json:"tokens"`
}

// LastTickDoc describes the last tick.
type LastTickDoc struct {
	At    time.Time `json:"at"`
	Error string    `json:"error,omitempty"`
}

// TokenDoc describes the cached token without its value.
type TokenDoc struct {
	Cached    bool       `json:"cached"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func (d HandlerDeps) health(w http.ResponseWriter, _ *http.Request) {
	resp := HealthResponse{Status: "ok", Service: "scout", Version: d.Version}
	if at, errText := d.Scout.LastTick(); !at.IsZero() {
		resp.LastTick = &LastTickDoc{At: at.UTC(), Error: errText}
	}
	if exp, ok := d.Tokens.Peek(); ok {
		e := exp.UTC()
		resp.Tokens = TokenDoc{Cached: true, ExpiresAt: &e}
	}
	server.WriteJSON(w, http.StatusOK, resp)
}
