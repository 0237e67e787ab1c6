package fleetctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/offpeak-charging/offpeak/internal/tokens"
)

type refreshOptions struct{ force bool }

func refreshCommand() *command {
	return &command{
		name:    "refresh",
		summary: "refresh the token pair if it is due (--force: now), as the worker does",
		help: `Runs the worker's token manager once (Ensure): if the stored access token has
less than TOKEN_REFRESH_BEFORE left, spend the refresh token, store the new
pair as a new version of fleet-tokens, and prune old versions. If Tesla
rejects the stored refresh token, older versions and the legacy secret are
tried (inside Tesla's 24 h grace one of them may still work). It takes the
same writer lease as the worker, so the two never refresh at once.
Exit code 3 means no stored refresh token works: run fleetctl login.`,
		flags: func(fs *flag.FlagSet) any {
			o := &refreshOptions{}
			fs.BoolVar(&o.force, "force", false, "refresh even if the access token is still valid")
			return o
		},
		run: func(ctx context.Context, s *session, opts any) error {
			o := opts.(*refreshOptions)
			store, err := s.openStore(ctx)
			if err != nil {
				return err
			}
			m := s.manager(store, s.managerConfig())
			res, err := m.Ensure(ctx, tokens.EnsureOptions{Force: o.force})
			if err != nil {
				return err
			}
			s.printResult(res, m.Config())
			return nil
		},
	}
}

func migrateCommand() *command {
	return &command{
		name:    "migrate",
		summary: "adopt the legacy refresh token, or recover the chain from older versions",
		help: `Runs the worker's migration (Migrate): if the legacy secret
(LEGACY_REFRESH_TOKEN_SECRET, the old system's raw refresh token) holds a
token that was never stored or spent, exchange it and store the pair as a
new version of fleet-tokens. Otherwise make sure the stored chain works,
falling back to older versions and the legacy token. Safe to run twice: a
legacy token that was already adopted is not spent again.`,
		run: func(ctx context.Context, s *session, _ any) error {
			store, err := s.openStore(ctx)
			if err != nil {
				return err
			}
			m := s.manager(store, s.managerConfig())
			res, err := m.Migrate(ctx)
			if err != nil {
				return err
			}
			s.printResult(res, m.Config())
			return nil
		},
	}
}

// printResult reports what Ensure or Migrate did; a Result carries no token.
func (s *session) printResult(res tokens.Result, mcfg tokens.Config) {
	now := s.clock.Now()
	if s.json {
		out := map[string]any{
			"ok": true, "action": string(res.Action), "secret": mcfg.FleetSecret, "version": res.Version,
			"expires_at": timePtr(res.ExpiresAt), "expires_in_seconds": secondsUntil(res.ExpiresAt, now),
		}
		if res.Legacy != "" {
			out["legacy"] = string(res.Legacy)
		}
		if res.Action != tokens.ActionNone && !res.Rotated {
			out["unrotated"] = true
		}
		s.printJSON(out)
		return
	}
	expiry := "unknown expiry"
	if !res.ExpiresAt.IsZero() {
		expiry = fmt.Sprintf("expires %s (%s)", stamp(res.ExpiresAt), relative(res.ExpiresAt, now))
	}
	switch res.Action {
	case tokens.ActionRefreshed:
		s.printf("refreshed: stored %s version %s, %s", mcfg.FleetSecret, res.Version, expiry)
	case tokens.ActionMigrated:
		s.printf("migrated: stored %s version %s from a recovered refresh token, %s", mcfg.FleetSecret, res.Version, expiry)
	default:
		s.printf("nothing to do: %s version %s is valid, %s", mcfg.FleetSecret, res.Version, expiry)
		if s.name == "refresh" {
			s.notef("(it is refreshed when less than %s is left; --force refreshes now)", humanDuration(mcfg.RefreshBefore))
		}
	}
	if res.Action != tokens.ActionNone && !res.Rotated {
		s.notef("Tesla answered without a new refresh token: the stored one stays in use and is spent again within %s of its first use", humanDuration(mcfg.RotateWithin))
	}
	switch res.Legacy {
	case tokens.LegacyAbsent:
		s.notef("legacy secret %s: none (nothing to adopt)", mcfg.LegacySecret)
	case tokens.LegacyKnown:
		s.notef("legacy secret %s: its token was adopted before; not spent again", mcfg.LegacySecret)
	case tokens.LegacyRejected:
		s.notef("legacy secret %s: Tesla no longer accepts its token", mcfg.LegacySecret)
	}
}

type pruneOptions struct{ keep optionalInt }

// optionalInt is an int flag that knows whether it was given.
type optionalInt struct {
	n   int
	set bool
}

func (o *optionalInt) String() string {
	if o == nil || !o.set {
		return ""
	}
	return strconv.Itoa(o.n)
}

func (o *optionalInt) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("not a whole number")
	}
	o.n, o.set = n, true
	return nil
}

func pruneCommand() *command {
	return &command{
		name:    "prune",
		summary: "destroy old versions of fleet-tokens, keeping what Tesla's 24 h grace may need",
		help: `Runs the worker's prune: Secret Manager bills every version that is not
destroyed. It keeps the newest --keep versions whatever their age; whatever
--keep says, every version whose refresh token was spent less than 25 h ago
(the version after it is younger than 25 h: a crash may need that token
inside Tesla's 24 h grace); and never a version newer than the newest good
one. Destroying is permanent.`,
		flags: func(fs *flag.FlagSet) any {
			o := &pruneOptions{}
			fs.Var(&o.keep, "keep", "keep the newest `N` versions whatever their age (default TOKEN_KEEP_VERSIONS)")
			return o
		},
		run: func(ctx context.Context, s *session, opts any) error {
			o := opts.(*pruneOptions)
			if o.keep.set && o.keep.n < 1 {
				return usageError{errors.New("--keep must be at least 1")}
			}
			store, err := s.openStore(ctx)
			if err != nil {
				return err
			}
			mcfg := s.managerConfig()
			if o.keep.set {
				mcfg.KeepVersions = o.keep.n
			}
			m := s.manager(store, mcfg)
			mcfg = m.Config()
			destroyed, perr := m.Prune(ctx)
			remaining, lerr := store.Versions(ctx, mcfg.FleetSecret)
			kept := make([]string, 0, len(remaining))
			keptNames := make([]string, 0, len(remaining))
			for _, v := range remaining {
				kept = append(kept, v.ID)
				keptNames = append(keptNames, "v"+v.ID)
			}
			if s.json {
				out := map[string]any{"ok": perr == nil, "secret": mcfg.FleetSecret, "destroyed": nonNil(destroyed),
					"keep_versions": mcfg.KeepVersions, "grace_keep_seconds": int64(mcfg.GraceKeep.Seconds())}
				if lerr == nil {
					out["kept"] = kept
				}
				if perr != nil {
					out["error"] = perr.Error()
				}
				s.printJSON(out)
			} else {
				if len(destroyed) == 0 {
					s.printf("destroyed nothing")
				} else {
					s.printf("destroyed %d version(s) of %s: v%s", len(destroyed), mcfg.FleetSecret, strings.Join(destroyed, ", v"))
				}
				if lerr == nil && len(kept) > 0 {
					s.printf("kept %d: %s (the newest %d, and every version whose refresh token was spent less than %s ago)",
						len(kept), strings.Join(keptNames, ", "), mcfg.KeepVersions, humanDuration(mcfg.GraceKeep))
				}
			}
			if perr != nil {
				return perr
			}
			return nil
		},
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
