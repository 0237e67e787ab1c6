package contract

import "time"

// The worker's routes the scout calls (POST, JSON, authenticated).
const (
	PathRefreshTokens = "/refresh-tokens"
	PathSyncTokens    = "/sync-tokens"
	PathRunCycle      = "/run-cycle"
)

// RefreshRequest is POST /refresh-tokens' optional body (and /sync-tokens',
// which reads none of it).
type RefreshRequest struct {
	Reason      string `json:"reason,omitempty"`
	RequestedBy string `json:"requested_by,omitempty"`
	Force       bool   `json:"force,omitempty"`
	// RejectedVersion: the version whose access token the Fleet API refused
	// the caller; refresh only if nothing newer is stored.
	RejectedVersion string `json:"rejected_version,omitempty"`
}

// TokenActionResponse answers /refresh-tokens and /sync-tokens. Version is
// the stored version the answer is about: readers read it by number
// (Secret Manager's latest may still show the one before).
type TokenActionResponse struct {
	Status    string     `json:"status"`
	Action    string     `json:"action"`
	ExpiresAt *time.Time `json:"expires_at"`
	Version   string     `json:"version,omitempty"`
	// Unrotated: Tesla answered without a new refresh token.
	Unrotated bool `json:"unrotated,omitempty"`
	// Legacy (sync only): absent, adopted, known or rejected.
	Legacy string `json:"legacy,omitempty"`
}

// CycleRequest is POST /run-cycle's body. VIN must be ValidVIN.
type CycleRequest struct {
	VIN    string `json:"vin"`
	Reason string `json:"reason,omitempty"`
	// Observed is what scouts before this contract sent of their own
	// reading. The worker never used it and must not: it decides from its
	// own vehicle_data read, made after the trigger. Nothing sends it any
	// more; it is still accepted (an object, ignored) so the worker does not
	// refuse a scout of the previous release while a deploy rolls out.
	// Remove it once every scout runs this contract.
	Observed map[string]any `json:"observed,omitempty"`
}

// CycleResponse answers POST /run-cycle.
type CycleResponse struct {
	Status   string        `json:"status"`
	VIN      string        `json:"vin"`
	Plan     []PlanWindow  `json:"plan"`
	Commands CommandCounts `json:"commands"`
	Woke     bool          `json:"woke"`
	Changed  bool          `json:"changed"`
	Asleep   bool          `json:"asleep"`
	AtHome   bool          `json:"at_home"`
	// LocationMissing: the car sent no position, so "at home" is unknown.
	LocationMissing bool   `json:"location_missing,omitempty"`
	Planner         string `json:"planner,omitempty"`
	Shortfall       string `json:"shortfall,omitempty"`
	Note            string `json:"note,omitempty"`
	// Need is what the cycle did about the car's charge needs.
	Need *NeedAnswer `json:"need,omitempty"`
}

// NeedAnswer tells what a cycle did about charge needs.
type NeedAnswer struct {
	// ID, TargetPercent, By: the need planned for now (its horizon began).
	ID            string     `json:"id,omitempty"`
	TargetPercent int        `json:"target_percent,omitempty"`
	By            *time.Time `json:"by,omitempty"`
	LimitRaised   bool       `json:"limit_raised,omitempty"`
	// PeakKWh is what the plan buys at peak because the cheap hours before
	// `by` cannot hold it all; Shortfall what even every minute cannot.
	PeakKWh   float64  `json:"peak_kwh,omitempty"`
	Shortfall string   `json:"shortfall,omitempty"`
	Restored  []string `json:"limit_restored,omitempty"`
	Settled   []string `json:"outcome_recorded,omitempty"`
}

// NoteLocationMissing is the answer's note for a car that sent no position.
const NoteLocationMissing = "car reported no position (the login lacks the vehicle_location scope?): nothing planned; run fleetctl login and approve every scope"

// PlanWindow is one planned charging window.
type PlanWindow struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// CommandCounts counts the schedule commands the car confirmed.
type CommandCounts struct {
	Added   int `json:"added"`
	Removed int `json:"removed"`
	// Path is how they travelled: signed, rest or proxy.
	Path string `json:"path,omitempty"`
}
