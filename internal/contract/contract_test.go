package contract_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/server"
)

// Every body survives encoding and the worker's strict decoding (unknown
// fields and trailing data refused) unchanged.
func TestEveryTypeRoundTrips(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	for _, v := range []any{
		&contract.RefreshRequest{Reason: "token expiring", RequestedBy: "scout", Force: true, RejectedVersion: "7"},
		&contract.TokenActionResponse{Status: contract.StatusOK, Action: "refreshed", ExpiresAt: &at, Version: "8", Unrotated: true, Legacy: "adopted"},
		&contract.CycleRequest{VIN: "5YJ3E7EB0KF000001", Reason: "arrived_home_ready"},
		&contract.CycleRequest{VIN: "5YJ3E7EB0KF000001", Observed: map[string]any{"at_home": true}},
		&contract.CycleResponse{Status: contract.StatusOK, VIN: "5YJ3E7EB0KF000001",
			Plan:     []contract.PlanWindow{{Start: at, End: at.Add(2 * time.Hour)}},
			Commands: contract.CommandCounts{Added: 2, Removed: 1, Path: "signed"},
			Woke:     true, Changed: true, Asleep: true, AtHome: true, LocationMissing: true,
			Planner: "builtin", Shortfall: "30m0s", Note: contract.NoteLocationMissing},
		&contract.ErrorBody{Status: contract.StatusError, Error: contract.ErrorDetail{Code: contract.CodeKeyNotPaired, Message: "pair the key"}},
	} {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := server.DecodeStrict(data, back); err != nil {
			t.Errorf("%T: %s does not decode strictly: %v", v, data, err)
			continue
		}
		if !reflect.DeepEqual(back, v) {
			t.Errorf("%T: %s came back as %+v", v, data, back)
		}
	}
}

// The names on the wire are the contract: a renamed field must fail here,
// not pass silently as a value the other side never sees.
func TestWireNames(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		v    any
		want string
	}{
		{contract.RefreshRequest{Reason: "r", RequestedBy: "scout", Force: true, RejectedVersion: "7"},
			`{"reason":"r","requested_by":"scout","force":true,"rejected_version":"7"}`},
		{contract.CycleRequest{VIN: "5YJ3E7EB0KF000001", Reason: "first_seen"}, `{"vin":"5YJ3E7EB0KF000001","reason":"first_seen"}`},
		{contract.CycleResponse{Status: "ok", VIN: "V", Plan: []contract.PlanWindow{}, LocationMissing: true},
			`{"status":"ok","vin":"V","plan":[],"commands":{"added":0,"removed":0},"woke":false,"changed":false,"asleep":false,"at_home":false,"location_missing":true}`},
		{contract.TokenActionResponse{Status: "ok", Action: "none"}, `{"status":"ok","action":"none","expires_at":null}`},
		{contract.ErrorBody{Status: "error", Error: contract.ErrorDetail{Code: "busy", Message: "m"}}, `{"status":"error","error":{"code":"busy","message":"m"}}`},
	} {
		got, err := json.Marshal(c.v)
		if err != nil || string(got) != c.want {
			t.Errorf("%T = %s (%v), want %s", c.v, got, err, c.want)
		}
	}
}

func TestValidVIN(t *testing.T) {
	t.Parallel()
	for vin, want := range map[string]bool{
		"5YJ3E7EB0KF000001":     true,
		"5YJ3E7EB0KF00000I":     false, // I, O and Q are never in a VIN
		"5YJ3E7EB0KF00000O":     false,
		"5YJ3E7EB0KF00000Q":     false,
		"5yj3e7eb0kf000001":     false, // callers upper-case user input first
		"5YJ3E7EB0KF00001":      false,
		"5YJ3E7EB0KF0000011":    false,
		" 5YJ3E7EB0KF000001":    false,
		"5YJ3E7EB0KF000001\n":   false,
		"":                      false,
		strings.Repeat("A", 17): true,
	} {
		if got := contract.ValidVIN(vin); got != want {
			t.Errorf("ValidVIN(%q) = %v, want %v", vin, got, want)
		}
	}
}

func TestNeedsOperator(t *testing.T) {
	t.Parallel()
	for _, code := range []string{contract.CodeKeyNotPaired, contract.CodeKeyMissing, contract.CodeKeyInvalid,
		contract.CodeKeyRejected, contract.CodeSigningDisabled, contract.CodeAppUnregistered} {
		if !contract.NeedsOperator(code) {
			t.Errorf("%s: a person must act, NeedsOperator says no", code)
		}
	}
	// Transient, or with a meaning of their own: never given up on as the operator's.
	for _, code := range []string{contract.CodeReauthRequired, contract.CodeSessionRejected, contract.CodeCarBusy,
		contract.CodeBusy, contract.CodeUpstreamUnavailable, contract.CodeStoreUnavailable, contract.CodeBadRequest, ""} {
		if contract.NeedsOperator(code) {
			t.Errorf("%q is not the operator's to fix", code)
		}
	}
}
