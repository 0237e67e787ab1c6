package worker

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/logging"
	"github.com/offpeak-charging/offpeak/internal/server"
	"github.com/offpeak-charging/offpeak/internal/svcauth"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// TokenService is what the handlers need of the token manager.
type TokenService interface {
	Ensure(ctx context.Context, opts tokens.EnsureOptions) (tokens.Result, error)
	Migrate(ctx context.Context) (tokens.Result, error)
	Status() tokens.Status
	Check(ctx context.Context) (tokens.Status, error)
}

// CommandPaths is what the handlers tell of how commands travel
// (*carcmd.Router fits).
type CommandPaths interface {
	Mode() carcmd.Mode
	Signer() *carcmd.Signer
	LastPath(vin string) carcmd.Path
}

// Deps are the handlers' collaborators.
type Deps struct {
	Tokens    TokenService
	Cycle     CycleRunner  // nil: /run-cycle answers 503
	Commands  CommandPaths // nil: /health says nothing of commands
	Needs     NeedBook     // nil: /charge-needs answers 503
	Auth      svcauth.Policy
	Logger    *zap.Logger
	ProjectID string
	Version   string
}

// NewHandler builds the worker's routes. /health is open (Cloud Run's
// probes carry no credentials); everything that acts needs an authenticated
// caller.
func NewHandler(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	h := &handlers{Deps: d}
	r := server.NewRouter(d.Logger, d.ProjectID)
	r.Get("/health", h.health)
	r.Group(func(r chi.Router) {
		r.Use(d.Auth.Middleware(d.Logger))
		r.Post("/refresh-tokens", h.refreshTokens)
		r.Post("/sync-tokens", h.syncTokens)
		r.Post("/run-cycle", h.runCycle)
		r.Post("/charge-needs", h.addNeed)
		r.Get("/charge-needs", h.listNeeds)
		r.Delete("/charge-needs/{id}", h.deleteNeed)
	})
	return r
}

type handlers struct{ Deps }

// HealthResponse is GET /health's answer.
type HealthResponse struct {
	Status   string          `json:"status"`
	Service  string          `json:"service"`
	Version  string          `json:"version"`
	Tokens   TokensHealth    `json:"tokens"`
	Commands *CommandsHealth `json:"commands,omitempty"`
}

// CommandsHealth says how commands travel and whether the signing key is
// usable; the key itself never appears, only its public fingerprint.
type CommandsHealth struct {
	Mode string `json:"mode"` // sign, proxy or rest
	// Signing is ok, key_missing, key_invalid or not_loaded (sign mode only).
	Signing        string `json:"signing,omitempty"`
	PublicKeySHA   string `json:"public_key_sha256,omitempty"`
	SignedRequests int64  `json:"signed_requests"`
}

// TokensHealth describes the stored pair without any token value.
type TokensHealth struct {
	State         string     `json:"state"`
	ExpiresAt     *time.Time `json:"expires_at"`
	LastRefreshAt *time.Time `json:"last_refresh_at"`
	LastError     string     `json:"last_error"`
	CheckedAt     *time.Time `json:"checked_at,omitempty"`
	// UnrotatedSince: Tesla answered a refresh without a new refresh token;
	// the stored one was first spent then, and its grace ends 24 h later.
	UnrotatedSince *time.Time `json:"refresh_token_unrotated_since,omitempty"`
}

func (h *handlers) health(w http.ResponseWriter, r *http.Request) {
	// From memory by default: a liveness probe must not cost a Secret
	// Manager access each time. ?check=store reads the store.
	st := h.Tokens.Status()
	if r.URL.Query().Get("check") == "store" {
		var err error
		if st, err = h.Tokens.Check(r.Context()); err != nil {
			logging.FromContext(r.Context()).Warn("health store check failed", zap.Error(err))
		}
	}
	server.WriteJSON(w, http.StatusOK, HealthResponse{
		Status: "ok", Service: "worker", Version: h.Version,
		Tokens: TokensHealth{
			State: string(st.State), ExpiresAt: timePtr(st.ExpiresAt), LastRefreshAt: timePtr(st.LastRefreshAt),
			LastError: st.LastError, CheckedAt: timePtr(st.CheckedAt), UnrotatedSince: timePtr(st.UnrotatedSince),
		},
		Commands: h.commandsHealth(),
	})
}

func (h *handlers) commandsHealth() *CommandsHealth {
	if h.Commands == nil {
		return nil
	}
	out := &CommandsHealth{Mode: string(h.Commands.Mode())}
	if sg := h.Commands.Signer(); sg != nil {
		out.Signing = sg.KeyState()
		if k := sg.PublicKey(); k != nil {
			out.PublicKeySHA = k.Fingerprint
		}
		out.SignedRequests = sg.Stats().Requests
	}
	return out
}

func (h *handlers) refreshTokens(w http.ResponseWriter, r *http.Request) {
	var req contract.RefreshRequest
	if !server.DecodeJSON(w, r, &req, true) {
		return
	}
	log := logging.FromContext(r.Context())
	log.Info("refresh requested", zap.String("reason", req.Reason), zap.String("requested_by", req.RequestedBy),
		zap.Bool("force", req.Force), zap.String("caller", svcauth.Caller(r.Context())))
	res, err := h.Tokens.Ensure(r.Context(), tokens.EnsureOptions{Force: req.Force, RejectedVersion: req.RejectedVersion})
	h.answerTokens(w, r, res, err)
}

func (h *handlers) syncTokens(w http.ResponseWriter, r *http.Request) {
	var req contract.RefreshRequest
	if !server.DecodeJSON(w, r, &req, true) {
		return
	}
	res, err := h.Tokens.Migrate(r.Context())
	h.answerTokens(w, r, res, err)
}

func (h *handlers) answerTokens(w http.ResponseWriter, r *http.Request, res tokens.Result, err error) {
	if err != nil {
		writeDomainError(w, r, err)
		return
	}
	logging.FromContext(r.Context()).Info("tokens ensured", zap.String("action", string(res.Action)),
		zap.Time("expires_at", res.ExpiresAt), zap.String("version", res.Version))
	server.WriteJSON(w, http.StatusOK, contract.TokenActionResponse{
		Status: contract.StatusOK, Action: string(res.Action), ExpiresAt: timePtr(res.ExpiresAt), Version: res.Version,
		Unrotated: res.Action != tokens.ActionNone && !res.Rotated, Legacy: string(res.Legacy),
	})
}

// retryAfter is what transient failures tell Scheduler and the scout.
const retryAfter = 30 * time.Second

// writeDomainError maps the domain's error kinds to the error shape. Domain
// errors never carry token values, so their text is safe to return.
func writeDomainError(w http.ResponseWriter, r *http.Request, err error) {
	log := logging.FromContext(r.Context())
	switch {
	case errors.Is(err, tokens.ErrReauthRequired):
		log.Error("tokens need a new login", zap.Error(err))
		// Not 5xx: retrying cannot help; a person must run the login.
		server.WriteError(w, http.StatusConflict, contract.CodeReauthRequired,
			"Tesla no longer accepts any stored refresh token; run `fleetctl login` to log in again")
	case errors.Is(err, tokens.ErrStoreUnavailable):
		log.Warn("token store unavailable", zap.Error(err))
		server.WriteRetryableError(w, http.StatusServiceUnavailable, contract.CodeStoreUnavailable, err.Error(), retryAfter)
	case errors.Is(err, tokens.ErrUpstreamUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		log.Warn("upstream unavailable", zap.Error(err))
		server.WriteRetryableError(w, http.StatusServiceUnavailable, contract.CodeUpstreamUnavailable, err.Error(), retryAfter)
	case errors.Is(err, tokens.ErrMisconfigured):
		log.Error("misconfigured", zap.Error(err))
		server.WriteError(w, http.StatusInternalServerError, contract.CodeInternal, err.Error())
	default:
		if werr := cycleError(w, err); werr {
			return
		}
		log.Error("request failed", zap.Error(err))
		server.WriteRetryableError(w, http.StatusInternalServerError, contract.CodeInternal, "internal error", retryAfter)
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
