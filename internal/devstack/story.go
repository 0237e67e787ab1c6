package devstack

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

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
}

// Play runs the scripted day against st, printing a story to out.
func Play(ctx context.Context, st *Stack, out io.Writer, o PlayOptions) (Summary, error) {
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
	steps := WorkdaySteps(VIN)
	start := st.Clock.Now()
	if o.PairLate && st.Key != nil {
		if err := st.Sim.UnpairKey(VIN, st.Key.Public); err != nil {
			return Summary{}, err
		}
	}
	st.Sim.RunScript(start, steps)
	sum := Summary{Triggers: map[string]int{}}
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	_, firstVersion, _ := st.StoredPair(ctx)
	lastVersion := firstVersion
	nextNote := 0
	for i := 0; i < o.Ticks; i++ {
		if err := ctx.Err(); err != nil {
			return sum, nil
		}
		now := st.Clock.Now()
		for nextNote < len(steps) && !start.Add(steps[nextNote].At).After(now) {
			say("%s  🚗 %s", now.In(o.Location).Format("15:04"), steps[nextNote].Note)
			nextNote++
		}
		wakesBefore := st.Sim.Counters().Fleet[VIN]["wake"]
		signedBefore := st.Sim.SignedRequests(VIN)
		res, err := st.Tick(ctx)
		sum.Ticks++
		stamp := st.Clock.Now().In(o.Location).Format("15:04")
		switch {
		case err != nil:
			sum.FailedTicks++
			say("%s  scout: tick failed: %v", stamp, err)
		case res.Status != 200:
			sum.FailedTicks++
			say("%s  scout: tick answered %d: %s", stamp, res.Status, strings.TrimSpace(string(res.Raw)))
		default:
			for _, v := range res.Body.Vehicles {
				say("%s  scout: %s", stamp, describe(v))
				if v.Action == patrol.ActionTriggered {
					sum.Triggers[v.Reason]++
					say("%s  worker: charging cycle ran%s → car now has %s", stamp, describeSigned(signedBefore, st.Sim.SignedRequests(VIN)),
						describeSchedules(st.Sim.Schedules(VIN), o.Location))
				} else if st.Sim.Counters().Fleet[VIN]["wake"] > wakesBefore {
					sum.ScoutWakes++
				}
				if v.Action == patrol.ActionPending && strings.Contains(v.Error, "key_not_paired") && st.Key != nil {
					sum.KeyRefusals++
					say("%s  🔑 the car does not know the worker's key yet; the owner opens https://tesla.com/_ak/<domain> in the Tesla app and approves", stamp)
					if err := st.Sim.PairKey(VIN, st.Key.Public); err != nil {
						return sum, err
					}
				}
			}
		}
		if _, v, err := st.StoredPair(ctx); err == nil && v != lastVersion {
			p, _, _ := st.StoredPair(ctx)
			say("%s  worker: refreshed the Tesla tokens (fleet-tokens version %s, valid until %s)", stamp, v, p.ExpiresAt.In(o.Location).Format("15:04"))
			lastVersion = v
		}
		st.Clock.Advance(o.Step)
		st.Sim.Tick()
		if o.Pause > 0 {
			select {
			case <-ctx.Done():
				return sum, nil
			case <-time.After(o.Pause):
			}
		}
	}
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
	if versions, err := st.Secrets.Versions(ctx, "fleet-tokens"); err == nil && len(versions) > 0 {
		sum.VersionsWritten = versionNumber(versions[0].ID) - versionNumber(firstVersion)
	}
	say("\nsummary: %d ticks, triggers %v, %d token refreshes, %d billed data requests, %d wakes, %d signed commands verified by the car (%d handshakes), %d failed ticks",
		sum.Ticks, sum.Triggers, sum.TokenExchanges, sum.DataRequests, sum.Wakes, sum.SignedCommands, sum.Handshakes, sum.FailedTicks)
	return sum, nil
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

func describeSchedules(list []fleetsim.ChargeSchedule, loc *time.Location) string {
	if len(list) == 0 {
		return "no charge schedules"
	}
	sort.Slice(list, func(i, j int) bool { return list[i].StartTime < list[j].StartTime })
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = fmt.Sprintf("%02d:%02d–%02d:%02d", s.StartTime/60, s.StartTime%60, s.EndTime/60, s.EndTime%60)
	}
	return fmt.Sprintf("%d charge schedule(s): %s", len(list), strings.Join(parts, ", "))
}

func versionNumber(id string) int {
	n, _ := strconv.Atoi(id)
	return n
}
