package fleetctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/offpeak-charging/offpeak/internal/backends"
	"github.com/offpeak-charging/offpeak/internal/envcfg"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/needs"
)

// `fleetctl need add|list|rm` work on the charge needs the worker plans
// for, through the same internal/needs code and the same state store (the
// worker's STATE_BACKEND, STATE_DIR, STATE_BUCKET), not through the
// worker's HTTP API: an operator with the store can manage needs while the
// worker is down, and the rules cannot differ.

const needStoreHelp = `The needs are kept in the worker's state store, opened from the worker's
variables STATE_BACKEND (file or gcs), STATE_DIR and STATE_BUCKET; local
times are read in TIMEZONE (default Europe/Warsaw).`

type needAddOptions struct {
	vin, by, note string
	target        int
}

func needAddCommand() *command {
	return &command{
		name:    "need add",
		summary: "add a charge need: a car at a level by a time",
		help: `Adds a charge need: the car is to be at --target percent by --by. --by is an
RFC 3339 time (2026-12-05T08:00:00+01:00) or a local time "YYYY-MM-DD HH:MM"
in TIMEZONE; on the spring-forward day a time inside the skipped hour is
refused, on the fall-back day the first of the two is taken. The rules are
the worker's: target 50-100, by in the future and at most 14 days ahead, a
car of the account (one GET /api/1/vehicles, with the stored tokens), a
note of at most 200 characters, at most 20 pending needs per car. Adding
the same need again (same car, target and time) changes nothing and says
so. Exit code 2 for a need that breaks a rule.

` + needStoreHelp,
		flags: func(fs *flag.FlagSet) any {
			o := &needAddOptions{}
			fs.StringVar(&o.vin, "vin", "", "the car (required)")
			fs.IntVar(&o.target, "target", 0, "the level wanted, percent (50-100, required)")
			fs.StringVar(&o.by, "by", "", `when: RFC 3339, or local "YYYY-MM-DD HH:MM" in TIMEZONE (required)`)
			fs.StringVar(&o.note, "note", "", "what it is for (optional, at most 200 characters)")
			return o
		},
		run: runNeedAdd,
	}
}

type needListOptions struct{ vin string }

func needListCommand() *command {
	return &command{
		name:    "need list",
		summary: "list the charge needs (pending, finished, cancelled)",
		help: `Lists the charge needs, soonest first: pending ones, those finished in the
last 30 days with their outcome, and cancelled ones that still wait for the
car's charge limit to be put back. --vin shows one car's.

` + needStoreHelp,
		flags: func(fs *flag.FlagSet) any {
			o := &needListOptions{}
			fs.StringVar(&o.vin, "vin", "", "only this car's needs")
			return o
		},
		run: runNeedList,
	}
}

func needRemoveCommand() *command {
	return &command{
		name:    "need rm",
		summary: "delete a charge need by its id",
		args:    " ID",
		maxArgs: 1,
		help: `Deletes the charge need ID (as need list shows it). If the worker has raised
the car's charge limit for it, the need stays, cancelled, until the next
cycle puts the limit back. Exit code 1 if there is no such need.

` + needStoreHelp,
		run: runNeedRemove,
	}
}

// needsEnv is what the need commands read besides Config: the worker's
// state store and zone, by the worker's own variables and defaults
// (envcfg.State is the section the services share; a test compares
// TIMEZONE's default with the worker's).
type needsEnv struct {
	State    envcfg.State
	Timezone string `env:"TIMEZONE, default=Europe/Warsaw"`
}

// Validate checks the store section and the zone.
func (e *needsEnv) Validate() error {
	var tzErr error
	if _, err := time.LoadLocation(e.Timezone); err != nil {
		tzErr = envcfg.Errorf("TIMEZONE", "%q: %v", e.Timezone, err)
	}
	return errors.Join(e.State.Validate(), tzErr)
}

// openNeeds builds the book the worker builds, over the configured store.
// The account's cars are listed only when a need is added.
func (s *session) openNeeds(ctx context.Context) (*needs.Book, error) {
	var ne needsEnv
	if err := envcfg.Load(ctx, s.lookup, &ne); err != nil {
		return nil, usageError{err}
	}
	loc, err := time.LoadLocation(ne.Timezone)
	if err != nil {
		return nil, usageError{err}
	}
	store, closeFn, err := backends.OpenState(ctx, backends.State{Kind: ne.State.Backend, Dir: ne.State.Dir, Bucket: ne.State.Bucket})
	if err != nil {
		return nil, fmt.Errorf("open the %s state store: %w", ne.State.Backend, err)
	}
	s.closers = append(s.closers, closeFn)
	return needs.NewBook(store, accountCars{s}, s.clock, needs.Config{Location: loc})
}

// accountCars lists the account's cars with the stored tokens, as the
// worker does, when the book asks (only an add does).
type accountCars struct{ s *session }

func (a accountCars) VINs(ctx context.Context) ([]string, error) {
	store, err := a.s.openStore(ctx)
	if err != nil {
		return nil, err
	}
	m := a.s.manager(store, a.s.managerConfig())
	client := fleet.New(a.s.cfg.TeslaFleetAPIURL, m, fleet.WithHTTPClient(a.s.httpClient()), fleet.WithClock(a.s.clock))
	cars, err := client.Vehicles(ctx)
	if err != nil {
		return nil, explainUserCall("list the account's cars", err)
	}
	vins := make([]string, len(cars))
	for i, c := range cars {
		vins[i] = c.VIN
	}
	return vins, nil
}

// needReport is a need in --json output: the stored record and its state.
type needReport struct {
	needs.Need
	State needs.Status `json:"state"`
}

func runNeedAdd(ctx context.Context, s *session, opts any) error {
	o := opts.(*needAddOptions)
	book, err := s.openNeeds(ctx)
	if err != nil {
		return err
	}
	n, created, err := book.Add(ctx, needs.Request{VIN: o.vin, TargetPercent: o.target, By: o.by, Note: o.note})
	if errors.Is(err, needs.ErrInvalid) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if s.json {
		s.printJSON(map[string]any{"ok": true, "created": created, "need": needReport{n, book.StatusOf(n)}})
		return nil
	}
	verb := "Added"
	if !created {
		verb = "Already there, unchanged:"
	}
	s.printf("%s %s: %s at %d %% by %s (%s).", verb, n.ID, n.VIN, n.TargetPercent, localStamp(n.By), relative(n.By, s.clock.Now()))
	return nil
}

func runNeedList(ctx context.Context, s *session, opts any) error {
	o := opts.(*needListOptions)
	book, err := s.openNeeds(ctx)
	if err != nil {
		return err
	}
	var list []needs.Need
	if o.vin != "" {
		list, err = book.ListVIN(ctx, o.vin)
	} else {
		list, err = book.List(ctx)
	}
	if errors.Is(err, needs.ErrInvalid) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if s.json {
		reports := make([]needReport, len(list))
		for i, n := range list {
			reports[i] = needReport{n, book.StatusOf(n)}
		}
		s.printJSON(map[string]any{"ok": true, "needs": reports})
		return nil
	}
	if len(list) == 0 {
		s.printf("No charge needs.")
		return nil
	}
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVIN\tTARGET\tBY\tSTATE\tNOTE")
	for _, n := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d %%\t%s\t%s\t%s\n", n.ID, n.VIN, n.TargetPercent, localStamp(n.By), stateText(n, book.StatusOf(n)), n.Note)
	}
	return tw.Flush()
}

func runNeedRemove(ctx context.Context, s *session, _ any) error {
	if len(s.args) != 1 {
		return usageError{errors.New("which need? fleetctl need rm ID (need list shows the ids)")}
	}
	book, err := s.openNeeds(ctx)
	if err != nil {
		return err
	}
	n, err := book.Delete(ctx, s.args[0])
	if errors.Is(err, needs.ErrNotFound) {
		return fmt.Errorf("%w (fleetctl need list shows the ids)", err)
	}
	if err != nil {
		return err
	}
	if s.json {
		s.printJSON(map[string]any{"ok": true, "need": needReport{n, book.StatusOf(n)}})
		return nil
	}
	s.printf("Deleted %s.", n.ID)
	if n.RestorePending() {
		s.printf("The car's charge limit goes back to %d %% on its next cycle.", n.Limit.PreviousPercent)
	}
	return nil
}

// stateText adds what people ask next: the level reached, a limit to restore.
func stateText(n needs.Need, st needs.Status) string {
	switch {
	case n.Outcome != nil:
		return fmt.Sprintf("%s (%d %%)", st, n.Outcome.SoCPercent)
	case st == needs.StatusCancelled && n.RestorePending():
		return fmt.Sprintf("%s (limit back to %d %% pending)", st, n.Limit.PreviousPercent)
	}
	return string(st)
}

// localStamp is a time as people in TIMEZONE read it.
func localStamp(t time.Time) string { return t.Format("2006-01-02 15:04 MST") }
