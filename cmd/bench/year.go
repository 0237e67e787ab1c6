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
// internal/faults.YearReport) that the bench prints: the token chain's and
// the arrivals' counters, and what the charging was worth.
type yearCounters struct {
	Seed           uint64 `json:"seed"`
	Relogins       int    `json:"relogins"`
	Refreshes      int    `json:"refreshes"`
	GraceReuses    int    `json:"grace_reuses"`
	LostRotations  int    `json:"lost_rotations"`
	Arrivals       int    `json:"arrivals"`
	MissedArrivals int    `json:"missed_arrivals"`
	ScoutWakes     int    `json:"scout_wakes"`
	Wakes          int    `json:"wakes"`
	WakesMaxPerDay int    `json:"wakes_max_per_day"`

	EnergyKWh                    float64 `json:"energy_kwh"`
	EnergyOffpeakPercent         float64 `json:"energy_offpeak_percent"`
	EnergyCost                   float64 `json:"energy_cost"`
	DrivenKm                     float64 `json:"driven_km"`
	NightsChecked                int     `json:"nights_checked"`
	NightsTargetMissed           int     `json:"nights_target_missed"`
	NightsUnreachable            int     `json:"nights_unreachable"`
	NightsStayed                 int     `json:"nights_stayed"`
	PricePeak                    float64 `json:"price_peak"`
	PriceOffpeak                 float64 `json:"price_offpeak"`
	PriceGapPercent              float64 `json:"price_gap_percent"`
	BaselinePluginEnergyKWh      float64 `json:"baseline_plugin_energy_kwh"`
	BaselinePluginOffpeakPercent float64 `json:"baseline_plugin_energy_offpeak_percent"`
	BaselinePluginEnergyCost     float64 `json:"baseline_plugin_energy_cost"`
	SavingVsPluginPercent        float64 `json:"saving_vs_plugin_percent"`
	Needs                        int     `json:"needs"`
	NeedsMet                     int     `json:"needs_met"`
	NeedPeakKWh                  float64 `json:"need_peak_kwh"`
	LimitsLeftRaised             int     `json:"limits_left_raised"`
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
	b.add("year_wakes", float64(y.Wakes), "wakes",
		fmt.Sprintf("wake_up calls of any service over the year: the worker wakes a sleeping car for a charge need's step (raise, restore), or when it fell asleep mid-cycle, once each; at most %d in one day", y.WakesMaxPerDay))
	b.add("year_energy_kwh", y.EnergyKWh, "kWh",
		fmt.Sprintf("energy the simulated car drew from its charger over that year, charging by itself by the schedules the worker set (%.0f km driven at 16 kWh/100 km; 75 kWh battery, 11 kW, 90 %% efficiency)", y.DrivenKm))
	b.add("year_energy_offpeak_percent", y.EnergyOffpeakPercent, "%",
		"share of it drawn in cheap hours (`TARIFF_WINDOWS` and the weekend windows, each clock hour classified by the worker's tariff): G12, 22:00–06:00 and 13:00–15:00")
	b.add("year_nights_target_missed", float64(y.NightsTargetMissed), "mornings",
		fmt.Sprintf("of %d mornings plugged in at home at `READY_BY`, those below the target although the cheap hours since the plug-in could have reached it (%d could not; %d were mornings after a night already plugged in, in three holidays at home with no new cycle)", y.NightsChecked, y.NightsUnreachable, y.NightsStayed))
	b.add("year_energy_cost", y.EnergyCost, "PLN",
		fmt.Sprintf("that energy at `TARIFF_PRICE_OFFPEAK` %.2f and `TARIFF_PRICE_PEAK` %.2f per kWh (G12 2026, gross)", y.PriceOffpeak, y.PricePeak))
	b.add("baseline_plugin_energy_cost", y.BaselinePluginEnergyCost, "PLN",
		fmt.Sprintf("the same script with no controller, the car charging as soon as it is plugged in, as it does by itself: %.1f kWh, %.1f %% of it off-peak", y.BaselinePluginEnergyKWh, y.BaselinePluginOffpeakPercent))
	b.add("year_saving_vs_plugin_percent", y.SavingVsPluginPercent, "%",
		fmt.Sprintf("saving per kWh against that baseline; the price gap, the most moving the charge can save, is %.1f %%", y.PriceGapPercent))
	b.add("year_needs", float64(y.Needs), "needs", "charge needs of the year: every Monday the owner asks for 90 % by Saturday 09:00 (`POST /charge-needs`, `fleetctl need add`)")
	b.add("year_needs_met", float64(y.NeedsMet), "needs", "of those, the car at the target at the need's time (its recorded outcome)")
	b.add("year_need_peak_kwh", y.NeedPeakKWh, "kWh", "energy drawn at peak in the 24 h before the needs' times: what the cheap hours could not hold")
	b.add("year_limits_left_raised", float64(y.LimitsLeftRaised), "needs", "needs after which the charge limit was not back at its daily setting 6 h after the need's time")
	if testErr != nil {
		return fmt.Errorf("the simulated year failed its assertions: %v\n%s", testErr, out)
	}
	return nil
}
