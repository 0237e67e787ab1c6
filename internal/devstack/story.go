package devstack

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
)

// Work is where the simulated car spends the day (about 8 km from home).
var Work = struct{ Lat, Lon float64 }{52.1672, 20.9679}

// StoryStart is the scripted day's first moment: a Tuesday, 06:00 in Warsaw.
var StoryStart = time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)

// WorkdaySteps is a realistic weekday for one car, starting at 06:00 local:
// plugged in at home in the morning, unplugged, a drive to work, a day
// asleep in the car park, the drive home, plugged in, asleep, charging in the
// night's cheap window. The script only moves the car, sets its battery
// after each drive and plugs it in: the simulated car charges by itself,
// by the charge schedules the worker put on it (fleetsim), from 22:00 until
// it reaches its limit.
func WorkdaySteps(vin string) []fleetsim.TripStep {
	h := func(hh, mm int) time.Duration { return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute }
	return []fleetsim.TripStep{
		{At: 0, VIN: vin, Note: "06:00 the car is at home, plugged in, charged to 80 %", Apply: func(c *fleetsim.CarState) {
			c.State, c.Latitude, c.Longitude = fleetsim.StateOnline, Home.Lat, Home.Lon
			c.ConnChargeCable, c.ChargingState, c.BatteryLevel = fleetsim.CableIEC, fleetsim.ChargingComplete, 80
		}},
		{At: h(1, 25), VIN: vin, Note: "07:25 the owner unplugs the car", Apply: func(c *fleetsim.CarState) {
			c.State, c.ConnChargeCable, c.ChargingState = fleetsim.StateOnline, fleetsim.CableUnplugged, fleetsim.ChargingDisconnected
		}},
		{At: h(1, 40), VIN: vin, Note: "07:40 the car leaves home", Apply: func(c *fleetsim.CarState) {
			c.State, c.Latitude, c.Longitude, c.BatteryLevel = fleetsim.StateOnline, 52.2050, 20.9900, 78
		}},
		{At: h(2, 10), VIN: vin, Note: "08:10 the car parks at work", Apply: func(c *fleetsim.CarState) {
			c.State, c.Latitude, c.Longitude, c.BatteryLevel = fleetsim.StateOnline, Work.Lat, Work.Lon, 74
		}},
		{At: h(10, 40), VIN: vin, Note: "16:40 the owner drives home", Apply: func(c *fleetsim.CarState) {
			c.State, c.Latitude, c.Longitude, c.BatteryLevel = fleetsim.StateOnline, 52.2000, 20.9950, 70
		}},
		{At: h(11, 10), VIN: vin, Note: "17:10 the car arrives home at 41 % after the day's errands (not plugged in yet)", Apply: func(c *fleetsim.CarState) {
			c.State, c.Latitude, c.Longitude, c.BatteryLevel = fleetsim.StateOnline, Home.Lat, Home.Lon, 41
		}},
		// Only the cable: the car decides. Its standing schedules (the
		// tariff's cheap hours) apply at home, so it waits for 22:00.
		{At: h(11, 20), VIN: vin, Note: "17:20 the owner plugs the car in; it waits for its charge schedule", Apply: func(c *fleetsim.CarState) {
			c.State, c.ConnChargeCable = fleetsim.StateOnline, fleetsim.CableIEC
		}},
	}
}

// PlayOptions configure Play.
type PlayOptions struct {
	Ticks    int           // default 96: one day of 15-minute ticks
	Step     time.Duration // simulated time per tick; default 15 min
	Pause    time.Duration // real time between ticks (0 in tests)
	Location *time.Location
	// PairLate starts the day with the owner's key not yet paired with the
	// car, to show once what that looks like: the first cycle that must
	// change the car is refused (key_not_paired), the owner pairs the key,
	// and the scout's retry of its pending trigger succeeds.
	PairLate bool
}

// Summary counts what happened.
type Summary struct {
	Ticks           int
	Triggers        map[string]int // by reason
	FailedTicks     int
	TokenExchanges  int
	ScoutWakes      int // wakes while no cycle ran: must stay 0
	DataRequests    int
	Wakes           int
	SchedulesAtEnd  int
	VersionsWritten int
	// Signed messages the car verified: handshakes and commands.
	Handshakes, SignedCommands int
	KeyRefusals                int // cycles refused because the key was not paired
	// What the charging was worth, at the worker's tariff and prices, and
	// what the same day costs with no controller (the car charging at
	// plug-in, as it does by itself).
	Energy, Baseline PricedEnergy
}

// Play runs the scripted day against st, printing a story to out.
func Play(ctx context.Context, st *Stack, out io.Writer, o PlayOptions) (Summary, error) {
	p, err := newPlayer(ctx, st, out, o.withDefaults())
	if err != nil {
		return Summary{}, err
	}
	for i := 0; i < p.o.Ticks; i++ {
		if ctx.Err() != nil {
			return p.sum, nil
		}
		if err := p.tick(); err != nil {
			return p.sum, err
		}
		if !p.wait() {
			return p.sum, nil
		}
	}
	return p.finish(), nil
}

func (o PlayOptions) withDefaults() PlayOptions {
	if o.Ticks <= 0 {
		o.Ticks = 96
	}
	if o.Step <= 0 {
		o.Step = 15 * time.Minute
	}
	if o.Location == nil {
		o.Location = time.UTC
		if loc, err := time.LoadLocation("Europe/Warsaw"); err == nil {
			o.Location = loc
		}
	}
	return o
}

// player tells the day's story one tick at a time.
type player struct {
	ctx     context.Context
	st      *Stack
	o       PlayOptions
	say     func(format string, a ...any)
	steps   []fleetsim.TripStep
	start   time.Time
	initial fleetsim.CarState // before the script: the baseline starts here
	sum     Summary

	firstVersion, lastVersion string
	nextNote                  int
	charging                  string  // the car's charging_state at the last look
	chargeFrom                float64 // kWh drawn when the current charge began
	planEnd                   string  // local end of the plan's last window, "" when none
}

func newPlayer(ctx context.Context, st *Stack, out io.Writer, o PlayOptions) (*player, error) {
	p := &player{ctx: ctx, st: st, o: o, steps: WorkdaySteps(VIN), start: st.Clock.Now(),
		sum: Summary{Triggers: map[string]int{}}}
	p.say = func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	if o.PairLate && st.Key != nil {
		if err := st.Sim.UnpairKey(VIN, st.Key.Public); err != nil {
			return nil, err
		}
	}
	p.initial, _ = st.Sim.Car(VIN)
	st.Sim.RunScript(p.start, p.steps)
	_, p.firstVersion, _ = st.StoredPair(ctx)
	p.lastVersion = p.firstVersion
	return p, nil
}

// tick narrates the script and the car, then ticks the scout as Cloud
// Scheduler would.
func (p *player) tick() error {
	now := p.st.Clock.Now()
	for p.nextNote < len(p.steps) && !p.start.Add(p.steps[p.nextNote].At).After(now) {
		p.say("%s  🚗 %s", p.clock(now), p.steps[p.nextNote].Note)
		p.nextNote++
	}
	p.narrateCharging(now)
	wakesBefore := p.st.Sim.Counters().Fleet[VIN]["wake"]
	signedBefore := p.st.Sim.SignedRequests(VIN)
	res, err := p.st.Tick(p.ctx)
	p.sum.Ticks++
	stamp := p.clock(p.st.Clock.Now())
	switch {
	case err != nil:
		p.sum.FailedTicks++
		p.say("%s  scout: tick failed: %v", stamp, err)
	case res.Status != 200:
		p.sum.FailedTicks++
		p.say("%s  scout: tick answered %d: %s", stamp, res.Status, strings.TrimSpace(string(res.Raw)))
	default:
		for _, v := range res.Body.Vehicles {
			if err := p.narrateVehicle(stamp, v, wakesBefore, signedBefore); err != nil {
				return err
			}
		}
	}
	p.narrateTokens(stamp)
	return nil
}

// narrateVehicle tells one car's report, and plays the owner pairing the
// key when the worker says it is not paired yet.
func (p *player) narrateVehicle(stamp string, v patrol.VehicleReport, wakesBefore int, signedBefore fleetsim.SignedCounters) error {
	p.say("%s  scout: %s", stamp, describe(v))
	switch {
	case v.Action == patrol.ActionTriggered:
		p.sum.Triggers[v.Reason]++
		list := p.st.Sim.Schedules(VIN)
		p.planEnd = planEnd(list)
		p.say("%s  worker: charging cycle ran%s → car now has %s", stamp, describeSigned(signedBefore, p.st.Sim.SignedRequests(VIN)),
			describeSchedules(list))
	case p.st.Sim.Counters().Fleet[VIN]["wake"] > wakesBefore:
		p.sum.ScoutWakes++
	}
	if v.Action == patrol.ActionPending && strings.Contains(v.Error, "key_not_paired") && p.st.Key != nil {
		p.sum.KeyRefusals++
		p.say("%s  🔑 the car does not know the worker's key yet; the owner opens https://tesla.com/_ak/<domain> in the Tesla app and approves", stamp)
		return p.st.Sim.PairKey(VIN, p.st.Key.Public)
	}
	return nil
}

// narrateCharging says when the car itself starts and stops charging, so
// the story shows the plan's window and the charge's end side by side.
func (p *player) narrateCharging(now time.Time) {
	car, ok := p.st.Sim.Car(VIN)
	if !ok || car.ChargingState == p.charging {
		return
	}
	was := p.charging
	p.charging = car.ChargingState
	e, _ := p.st.Sim.Energy(VIN)
	switch {
	case car.ChargingState == fleetsim.ChargingCharging:
		p.chargeFrom = e.GridKWh
		p.say("%s  🔋 the car starts charging at %d %%", p.clock(now), car.BatteryLevel)
	case was == fleetsim.ChargingCharging:
		how := "stopped (its schedule window ended)"
		if car.ChargingState == fleetsim.ChargingComplete {
			how = "complete (its charge limit reached)"
		}
		ended := ""
		if at, ok := chargeEnd(e, car); ok {
			ended = " at " + p.clock(at)
		}
		plan := ""
		if p.planEnd != "" {
			plan = "; the plan's window ends at " + p.planEnd
		}
		p.say("%s  🔋 charging %s%s, %d %%, %.1f kWh from the charger%s", p.clock(now), how, ended, car.BatteryLevel, e.GridKWh-p.chargeFrom, plan)
	}
}

func (p *player) narrateTokens(stamp string) {
	pair, v, err := p.st.StoredPair(p.ctx)
	if err != nil || v == p.lastVersion {
		return
	}
	p.say("%s  worker: refreshed the Tesla tokens (fleet-tokens version %s, valid until %s)", stamp, v, p.clock(pair.ExpiresAt))
	p.lastVersion = v
}

// wait moves the simulated clock on and, in `make run`, lets a person read.
func (p *player) wait() bool {
	p.st.Clock.Advance(p.o.Step)
	p.st.Sim.Tick()
	if p.o.Pause <= 0 {
		return true
	}
	select {
	case <-p.ctx.Done():
		return false
	case <-time.After(p.o.Pause):
		return true
	}
}

func (p *player) clock(t time.Time) string { return t.In(p.o.Location).Format("15:04") }

// finish counts the day and prints its summary.
func (p *player) finish() Summary {
	st, sum := p.st, &p.sum
	c := st.Sim.Counters()
	for outcome, n := range c.TokenExchanges {
		if strings.HasSuffix(outcome, "_ok") || outcome == "grace_reuse" {
			sum.TokenExchanges += n
		}
	}
	sum.DataRequests = c.Fleet[VIN]["data"]
	sum.Wakes = c.Fleet[VIN]["wake"]
	sum.SchedulesAtEnd = len(st.Sim.Schedules(VIN))
	signed := st.Sim.SignedRequests(VIN)
	sum.Handshakes, sum.SignedCommands = signed.HandshakeOutcomes[fleetsim.OutcomeVerified], signed.CommandOutcomes[fleetsim.OutcomeVerified]
	if versions, err := st.Secrets.Versions(p.ctx, "fleet-tokens"); err == nil && len(versions) > 0 {
		sum.VersionsWritten = versionNumber(versions[0].ID) - versionNumber(p.firstVersion)
	}
	p.say("\nsummary: %d ticks, triggers %v, %d token refreshes, %d billed data requests, %d wakes, %d signed commands verified by the car (%d handshakes), %d failed ticks",
		sum.Ticks, sum.Triggers, sum.TokenExchanges, sum.DataRequests, sum.Wakes, sum.SignedCommands, sum.Handshakes, sum.FailedTicks)
	p.priceTheDay()
	return *sum
}

// priceTheDay prices the energy the car drew at the worker's tariff, and
// the same day with no controller.
func (p *player) priceTheDay() {
	cc := p.st.WorkerConfig.Charging
	tariff, err := charging.ParseTariff(cc.TariffWindows, cc.TariffWindowsWeekend, p.o.Location)
	if err == nil {
		tariff, err = tariff.WithHolidays(cc.TariffHolidays)
	}
	if err != nil {
		p.say("energy: not priced: %v", err)
		return
	}
	e, _ := p.st.Sim.Energy(VIN)
	p.sum.Energy = PriceHours(e.Hours, tariff, cc.TariffPricePeak, cc.TariffPriceOffpeak)
	base := PluginBaseline(p.initial, p.start, p.st.Clock.Now(), p.o.Location, p.steps)
	p.sum.Baseline = PriceHours(base.Hours, tariff, cc.TariffPricePeak, cc.TariffPriceOffpeak)
	p.say("energy: %.1f kWh from the charger, %.0f %% of it in cheap hours, %.2f at %.2f/%.2f per kWh (off-peak/peak)",
		p.sum.Energy.KWh, p.sum.Energy.OffpeakPercent(), p.sum.Energy.Cost, cc.TariffPriceOffpeak, cc.TariffPricePeak)
	p.say("without the controller the car charges at plug-in: %.1f kWh, %.0f %% in cheap hours, %.2f — %.1f %% saved per kWh",
		p.sum.Baseline.KWh, p.sum.Baseline.OffpeakPercent(), p.sum.Baseline.Cost, p.sum.Energy.SavingPercent(p.sum.Baseline))
}

// chargeEnd is when the last charge ended, to the minute (the tick sees it
// up to 15 minutes late): the last hour in the ledger, filled at the car's
// charging power from the hour's start.
func chargeEnd(e fleetsim.EnergyStats, car fleetsim.CarState) (time.Time, bool) {
	kw := min(car.ChargerKW, car.MaxACKW)
	if len(e.Hours) == 0 || kw <= 0 {
		return time.Time{}, false
	}
	last := e.Hours[len(e.Hours)-1]
	return last.Start.Add(time.Duration(last.GridKWh / kw * float64(time.Hour))).Round(time.Minute), true
}

// planEnd is the local end of the latest one-time schedule (the plan's; the
// recurring ones are the standing cheap hours).
func planEnd(list []fleetsim.ChargeSchedule) string {
	end := -1
	for _, s := range list {
		if s.OneTime && s.Enabled && s.EndEnabled {
			// Windows are the same night: a start after noon ends past midnight.
			e := s.EndTime
			if s.EndTime < s.StartTime {
				e += 24 * 60
			}
			end = max(end, e)
		}
	}
	if end < 0 {
		return ""
	}
	end %= 24 * 60
	return fmt.Sprintf("%02d:%02d", end/60, end%60)
}

func describe(v patrol.VehicleReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is %s", v.VIN[len(v.VIN)-4:], v.State)
	if v.BatteryLevel != nil {
		where := "away"
		if v.AtHome {
			where = "at home"
		}
		plug := "unplugged"
		if v.Ready {
			plug = "plugged in"
		}
		fmt.Fprintf(&b, ", %s, %s, %d %%", where, plug, *v.BatteryLevel)
	}
	switch v.Action {
	case patrol.ActionTriggered:
		fmt.Fprintf(&b, " → asked the worker to run the charging cycle (%s)", v.Reason)
	case patrol.ActionPending:
		fmt.Fprintf(&b, " → trigger pending (%s): %s", v.Reason, v.Error)
	case patrol.ActionAsleep:
		b.WriteString(" → left to sleep (no data call, no wake)")
	case patrol.ActionError:
		fmt.Fprintf(&b, " → error: %s", v.Error)
	default:
		b.WriteString(" → nothing to do")
	}
	return b.String()
}

// describeSigned says what the car verified between two counter readings.
func describeSigned(before, after fleetsim.SignedCounters) string {
	cmds := after.CommandOutcomes[fleetsim.OutcomeVerified] - before.CommandOutcomes[fleetsim.OutcomeVerified]
	hs := after.HandshakeOutcomes[fleetsim.OutcomeVerified] - before.HandshakeOutcomes[fleetsim.OutcomeVerified]
	if cmds == 0 && hs == 0 {
		return ""
	}
	out := fmt.Sprintf(": %d signed command(s), verified by the car", cmds)
	if hs > 0 {
		out += fmt.Sprintf(" (after %d handshake)", hs)
	}
	return out
}

func describeSchedules(list []fleetsim.ChargeSchedule) string {
	if len(list) == 0 {
		return "no charge schedules"
	}
	sort.Slice(list, func(i, j int) bool { return list[i].StartTime < list[j].StartTime })
	var plan, standing []string
	for _, s := range list {
		w := fmt.Sprintf("%02d:%02d–%02d:%02d", s.StartTime/60, s.StartTime%60, s.EndTime/60, s.EndTime%60)
		if s.OneTime {
			plan = append(plan, w)
		} else {
			standing = append(standing, w)
		}
	}
	out := fmt.Sprintf("%d charge schedule(s): ", len(list))
	if len(plan) > 0 {
		out += "tonight's plan " + strings.Join(plan, ", ")
		if len(standing) > 0 {
			out += "; "
		}
	}
	if len(standing) > 0 {
		out += "standing cheap hours " + strings.Join(standing, ", ")
	}
	return out
}

func versionNumber(id string) int {
	n, _ := strconv.Atoi(id)
	return n
}
