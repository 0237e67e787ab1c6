// Package fleetctl is the operator CLI: log in to Tesla, show the stored
// token pair, refresh, migrate and prune it, make the command key, register
// the app's domain with Tesla, pair the key with the cars, diagnose a
// deployment, and manage charge needs (need add|list|rm). It
// builds the same secret store and the same tokens.Manager as the worker
// from the same environment variables, so the CLI and the worker can never
// disagree about the token format or the rules. Run is the whole program;
// cmd/fleetctl only hands it the process's arguments, environment and
// standard streams.
package fleetctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/offpeak-charging/offpeak/internal/backends"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/httpclient"
	"github.com/offpeak-charging/offpeak/internal/logging"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// Exit codes. Scripts branch on them; --help and the README document them.
const (
	ExitOK      = 0 // the command did what was asked
	ExitFailure = 1 // it failed (store, network, Tesla, a doctor check)
	ExitUsage   = 2 // unknown command, bad flag or argument, invalid configuration
	ExitReauth  = 3 // Tesla accepts no stored refresh token: run `fleetctl login`
)

const exitCodesHelp = `Exit codes:
  0  ok
  1  failure (secret store, network, Tesla, a doctor check; keygen refusing to
     replace a key; pair timing out with cars not paired)
  2  usage: unknown command, bad flag, invalid configuration
  3  log in again: Tesla rejects every stored refresh token (run fleetctl login)`

// Runner runs fleetctl. Its zero value is the production program; tests
// set fields to put the CLI on a manual clock or an in-memory store.
type Runner struct {
	// Clock is the time source for token expiry and version ages; default clock.Real.
	Clock clock.Clock
	// HTTPClient is used for Tesla's token endpoint and the Fleet API;
	// default a client with a 20 s timeout.
	HTTPClient *http.Client
	// Store replaces the configured secret backend (tests with secrets.Memory).
	Store secrets.Store
	// ManagerConfig adjusts the token manager after the environment's
	// settings are applied (tests shorten its waits).
	ManagerConfig func(*tokens.Config)
	// OpenBrowser opens a URL for `login --open`; default xdg-open / open.
	OpenBrowser func(url string) error
	// Sleep waits between the polls of `pair`; default a timer that ends
	// early with ctx. Tests advance their manual clock instead.
	Sleep func(ctx context.Context, d time.Duration) error
	// DomainBaseURL maps the app's domain to the base URL its public key is
	// fetched from (register and pair check what it serves); default
	// https://<domain>. Tests point it at a loopback server.
	DomainBaseURL func(domain string) string
	// PartnerRegions are the Fleet API base URLs `register --all-regions`
	// registers in besides TESLA_FLEET_API_URL; default NA and EU (China
	// needs an app of its own on developer.tesla.cn).
	PartnerRegions []string
	// Version is fleetctl's, sent to the Fleet API in the User-Agent
	// (offpeak-fleetctl/<version>); default "dev".
	Version string
}

// Run is fleetctl: args without the program name, lookup reads the
// environment (envconfig.OsLookuper(); a map in tests), and the result is
// the exit code.
func Run(ctx context.Context, args []string, lookup envconfig.Lookuper, stdin io.Reader, stdout, stderr io.Writer) int {
	return Runner{}.Run(ctx, args, lookup, stdin, stdout, stderr)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	args    string // shown after the command name in usage
	help    string
	// maxArgs is how many positional arguments it takes (before, between
	// or after the flags; in session.args); others reject any.
	maxArgs int
	// flags registers the command's own flags and returns what run needs.
	flags func(fs *flag.FlagSet) any
	run   func(ctx context.Context, s *session, opts any) error
}

func commands() []*command {
	return []*command{loginCommand(), statusCommand(), refreshCommand(), migrateCommand(), pruneCommand(),
		keygenCommand(), registerCommand(), pairCommand(), doctorCommand(),
		needAddCommand(), needListCommand(), needRemoveCommand()}
}

// lookupCommand finds the command args start with: one word ("status") or
// two ("need add"), and returns the arguments after its name.
func lookupCommand(args []string) (*command, []string) {
	if c := findCommand(args[0]); c != nil {
		return c, args[1:]
	}
	if len(args) > 1 {
		if c := findCommand(args[0] + " " + args[1]); c != nil {
			return c, args[2:]
		}
	}
	return nil, nil
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Run runs one fleetctl invocation.
func (r Runner) Run(ctx context.Context, args []string, lookup envconfig.Lookuper, stdin io.Reader, stdout, stderr io.Writer) int {
	if lookup == nil {
		lookup = envconfig.MapLookuper(nil)
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	if len(args) == 0 {
		writeTopUsage(stderr)
		return ExitUsage
	}
	switch name := args[0]; name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(args) > 1 {
			c, _ := lookupCommand(args[1:])
			if c == nil {
				fmt.Fprintf(stderr, "fleetctl help: unknown command %q\n\n", args[1])
				writeTopUsage(stderr)
				return ExitUsage
			}
			fs, _, _, _ := c.flagSet()
			writeCommandUsage(stdout, c, fs)
			return ExitOK
		}
		writeTopUsage(stdout)
		return ExitOK
	}
	c, rest := lookupCommand(args)
	if c == nil {
		if strings.HasPrefix(args[0], "-") {
			fmt.Fprintf(stderr, "fleetctl: flags go after the command (fleetctl <command> %s)\n\n", args[0])
		} else {
			fmt.Fprintf(stderr, "fleetctl: unknown command %q\n\n", args[0])
		}
		writeTopUsage(stderr)
		return ExitUsage
	}
	return r.runCommand(ctx, c, rest, lookup, stdin, stdout, stderr)
}

// common are the flags every command has besides the configuration.
type common struct {
	json    bool
	verbose bool
}

func (c *command) flagSet() (*flag.FlagSet, *configFlags, *common, any) {
	fs := flag.NewFlagSet("fleetctl "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var opts any
	if c.flags != nil {
		opts = c.flags(fs)
	}
	cm := &common{}
	fs.BoolVar(&cm.json, "json", false, "print one JSON object on stdout instead of text")
	fs.BoolVar(&cm.verbose, "v", false, "log what the token manager does (to stderr)")
	cf := addConfigFlags(fs)
	return fs, cf, cm, opts
}

func (r Runner) runCommand(ctx context.Context, c *command, args []string, lookup envconfig.Lookuper, stdin io.Reader, stdout, stderr io.Writer) int {
	fs, cf, cm, opts := c.flagSet()
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				writeCommandUsage(stdout, c, fs)
				return ExitOK
			}
			fmt.Fprintf(stderr, "fleetctl %s: %v\n\n", c.name, err)
			writeCommandUsage(stderr, c, fs)
			return ExitUsage
		}
		// flag stops at the first argument that is not a flag: take it
		// and parse on, so `need rm ID --json` works as `need rm --json ID`.
		if fs.NArg() == 0 || len(positional) >= c.maxArgs {
			break
		}
		positional, args = append(positional, fs.Arg(0)), fs.Args()[1:]
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fleetctl %s: unexpected argument %q\n\n", c.name, fs.Arg(0))
		writeCommandUsage(stderr, c, fs)
		return ExitUsage
	}
	s := &session{
		runner: r, name: c.name, json: cm.json, lookup: lookup, args: positional,
		stdin: stdin, out: stdout, errOut: stderr, clock: r.Clock,
	}
	if s.clock == nil {
		s.clock = clock.Real{}
	}
	level := zapcore.WarnLevel
	if cm.verbose {
		level = zapcore.InfoLevel
	}
	s.log = logging.New(logging.Options{Format: logging.FormatConsole, Level: level, Output: stderr})
	defer func() { _ = s.log.Sync() }()
	defer s.close()

	cfg, problems := cf.load(ctx, lookup)
	s.cfg = cfg
	s.configProblems = problems
	if len(problems) > 0 && c.name != "doctor" {
		return s.fail(usageError{errors.Join(problems...)})
	}
	if err := c.run(ctx, s, opts); err != nil {
		return s.fail(err)
	}
	return ExitOK
}

// usageError is reported with ExitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// errChecksFailed ends doctor with ExitFailure after it printed its findings.
var errChecksFailed = errors.New("some checks failed")

// exitCode maps an error onto the documented exit codes.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.Is(err, tokens.ErrReauthRequired):
		return ExitReauth
	default:
		return ExitFailure
	}
}

// fail reports err (on stderr; with --json also as an object on stdout) and
// returns its exit code. Errors of the packages used here never carry token
// values, so printing them is safe.
func (s *session) fail(err error) int {
	code := exitCode(err)
	if errors.Is(err, errChecksFailed) {
		return code
	}
	msg := err.Error()
	fmt.Fprintf(s.errOut, "fleetctl %s: %s\n", s.name, strings.ReplaceAll(msg, "\n", "\n  "))
	if code == ExitReauth && !strings.Contains(msg, "fleetctl login") {
		fmt.Fprintln(s.errOut, "  Log in again: fleetctl login")
	}
	if s.json && !s.printedJSON { // stdout stays one object
		kind := map[int]string{ExitFailure: "failure", ExitUsage: "usage", ExitReauth: "reauth_required"}[code]
		s.printJSON(map[string]any{"ok": false, "error": msg, "kind": kind, "exit_code": code})
	}
	return code
}

func writeTopUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString(`fleetctl: operator CLI for the Tesla side of the off-peak charging system.
It uses the worker's secret store and token manager, configured by the
worker's environment variables; flags override them.

Usage: fleetctl <command> [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
	}
	b.WriteString("  help      show a command's flags: fleetctl help <command> (or fleetctl <command> --help)\n\nConfiguration (environment variable, flag, default):\n")
	for _, v := range settings() {
		fl := ""
		if name := flagOf(v.Name); name != "" {
			fl = "--" + name
		}
		def := v.Default
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(&b, "  %-28s %-16s %s\n", v.Name, fl, def)
	}
	b.WriteString("\nEvery command takes --json (one JSON object on stdout) and -v (log to stderr).\nToken values and the private key are never printed.\n\n")
	b.WriteString(exitCodesHelp)
	b.WriteString("\n")
	_, _ = io.WriteString(w, b.String())
}

func writeCommandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: fleetctl %s%s [flags]\n\n%s\n\nFlags:\n", c.name, c.args, strings.TrimSpace(c.help))
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprintf(w, "\n%s\n", exitCodesHelp)
}

// session is one command's run: configuration, streams and the parts built
// from them.
type session struct {
	runner         Runner
	name           string
	json           bool
	lookup         envconfig.Lookuper
	args           []string // positional arguments (command.maxArgs)
	stdin          io.Reader
	out, errOut    io.Writer
	clock          clock.Clock
	log            *zap.Logger
	cfg            Config
	configProblems []error
	printedJSON    bool
	store          secrets.Store
	closers        []func() error
}

func (s *session) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i]()
	}
}

// openStore opens the configured secret backend once.
func (s *session) openStore(ctx context.Context) (secrets.Store, error) {
	if s.store != nil {
		return s.store, nil
	}
	if s.runner.Store != nil {
		s.store = s.runner.Store
		return s.store, nil
	}
	st, closeFn, err := backends.OpenSecrets(ctx, backends.Secrets{Kind: s.cfg.Secrets.Backend, Dir: s.cfg.Secrets.Dir, Project: s.cfg.Secrets.Project}, s.clock)
	if err != nil {
		return nil, fmt.Errorf("open the %s secret backend: %w", s.cfg.Secrets.Backend, err)
	}
	s.store = st
	s.closers = append(s.closers, closeFn)
	return st, nil
}

// httpClient serves every Tesla call (token endpoint, partner token, Fleet
// API). It follows no redirect: Go re-sends a POST body on 307/308, and the
// token endpoint's body holds the client secret and a refresh token.
func (s *session) httpClient() *http.Client {
	if s.runner.HTTPClient != nil {
		return httpclient.NoRedirects(s.runner.HTTPClient)
	}
	return httpclient.New(20 * time.Second)
}

// fleetClient is a Fleet API client at base with fleetctl's HTTP client,
// clock and User-Agent (offpeak-fleetctl/<version>).
func (s *session) fleetClient(base string, tok fleet.TokenSource) *fleet.Client {
	return fleet.New(base, tok, fleet.WithHTTPClient(s.httpClient()), fleet.WithClock(s.clock),
		fleet.WithUserAgent(fleet.UserAgent("fleetctl", s.runner.Version)))
}

func (s *session) exchanger() *tokens.Exchanger {
	return &tokens.Exchanger{TokenURL: s.cfg.TeslaAuthURL, AuthorizeURL: s.cfg.TeslaAuthorizeURL, HTTPClient: s.httpClient()}
}

// managerConfig is the worker's mapping of the configuration, with a holder
// id that says the CLI took the lease, then the runner's adjustments.
func (s *session) managerConfig() tokens.Config {
	host, _ := os.Hostname()
	mcfg := s.cfg.managerConfig(fmt.Sprintf("fleetctl-%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()))
	if s.runner.ManagerConfig != nil {
		s.runner.ManagerConfig(&mcfg)
	}
	return mcfg
}

// manager builds the token manager the way the worker does.
func (s *session) manager(store secrets.Store, mcfg tokens.Config) *tokens.Manager {
	return tokens.New(store, s.exchanger(), s.clock, s.log.Named("tokens"), mcfg)
}
