package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// yearCounters are the fields of the simulated year's report (see
// internal/faults.YearReport) that the bench prints.
type yearCounters struct {
	Seed           uint64 `json:"seed"`
	Relogins       int    `json:"relogins"`
	Refreshes      int    `json:"refreshes"`
	GraceReuses    int    `json:"grace_reuses"`
	LostRotations  int    `json:"lost_rotations"`
	Arrivals       int    `json:"arrivals"`
	MissedArrivals int    `json:"missed_arrivals"`
	ScoutWakes     int    `json:"scout_wakes"`
}

// benchYear runs the simulated year of internal/faults (a test, so the
// code that makes `make test` pass is the code measured) and prints its
// counters.
func benchYear(ctx context.Context, b *bench) error {
	path := filepath.Join(b.dir, "year.json")
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "^TestSimulatedYear$", "-timeout", "10m",
		"github.com/offpeak-charging/offpeak/internal/faults")
	cmd.Env = append(os.Environ(), "FAULTS_YEAR_REPORT="+path)
	out, testErr := cmd.CombinedOutput()
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("the simulated year wrote no report (%v):\n%s", testErr, out)
	}
	var y yearCounters
	if err := json.Unmarshal(raw, &y); err != nil {
		return fmt.Errorf("year report: %w", err)
	}
	b.add("year_relogins", float64(y.Relogins), "logins",
		fmt.Sprintf("simulated year (35,040 ticks, seeded faults, seed %d): times a person had to log in again", y.Seed))
	b.add("year_refreshes", float64(y.Refreshes), "refreshes",
		fmt.Sprintf("token pairs Tesla issued over that year, %d of them by spending a stored token again inside the 24 h grace", y.GraceReuses))
	b.add("year_lost_rotations", float64(y.LostRotations), "ticks", "ticks after which the stored refresh token was one Tesla rejects")
	b.add("year_missed_arrivals", float64(y.MissedArrivals), "arrivals",
		fmt.Sprintf("of %d arrivals home, those without a charging cycle within two ticks of everything being reachable again", y.Arrivals))
	b.add("year_scout_wakes", float64(y.ScoutWakes), "wakes", "cars woken by the scout over the year")
	if testErr != nil {
		return fmt.Errorf("the simulated year failed its assertions: %v\n%s", testErr, out)
	}
	return nil
}
