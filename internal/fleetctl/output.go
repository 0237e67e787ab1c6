package fleetctl

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// printJSON writes v as one indented JSON object on stdout.
func (s *session) printJSON(v any) {
	s.printedJSON = true
	enc := json.NewEncoder(s.out)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// printf writes a line of human output on stdout.
func (s *session) printf(format string, args ...any) {
	fmt.Fprintf(s.out, format+"\n", args...)
}

// notef writes a progress or hint line on stderr, so that stdout carries
// only the result (and stays one JSON object with --json).
func (s *session) notef(format string, args ...any) {
	fmt.Fprintf(s.errOut, format+"\n", args...)
}

// relative says how far t is from now: "in 6h12m" or "3m ago".
func relative(t, now time.Time) string {
	d := t.Sub(now)
	if d > -time.Second && d < time.Second {
		return "just now"
	}
	if d >= 0 {
		return "in " + humanDuration(d)
	}
	return humanDuration(-d) + " ago"
}

// humanDuration rounds d to what an operator needs: days and hours, hours
// and minutes, minutes, or seconds.
func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		d = d.Round(time.Hour)
		if d%(24*time.Hour) == 0 {
			return fmt.Sprintf("%dd", d/(24*time.Hour))
		}
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		d = d.Round(time.Minute)
		if d%time.Hour == 0 {
			return fmt.Sprintf("%dh", d/time.Hour)
		}
		return fmt.Sprintf("%dh%dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", d/time.Second)
	}
}

// stamp formats a time for humans: RFC 3339 in UTC.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// timePtr is nil for the zero time, so JSON omits unknown times.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// secondsUntil is the signed number of whole seconds from now to t (nil if t is unknown).
func secondsUntil(t, now time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := int64(t.Sub(now) / time.Second)
	return &n
}

// missingScopes lists the project's scopes that granted lacks.
func missingScopes(required, granted []string) []string {
	have := map[string]bool{}
	for _, g := range granted {
		have[g] = true
	}
	var out []string
	for _, r := range required {
		if !have[r] {
			out = append(out, r)
		}
	}
	return out
}

// joinOr is list joined with spaces, or alt when empty.
func joinOr(list []string, alt string) string {
	if len(list) == 0 {
		return alt
	}
	return strings.Join(list, " ")
}
