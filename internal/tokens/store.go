package tokens

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/secrets"
)

// VersionReader is the read side of a secret store (secrets.Store fits).
type VersionReader interface {
	Latest(ctx context.Context, secret string) (secrets.Version, error)
	Get(ctx context.Context, secret, id string) (secrets.Version, error)
}

// Newest is what ReadNewest found.
type Newest struct {
	// Version is the newest version seen: ID set whenever its number is
	// known, Payload only when it could be read.
	Version secrets.Version
	// Problem says why the newest version is not readable (secrets.ErrNotFound:
	// none; ErrVersionUnavailable: destroyed or disabled; ErrCorrupt); nil
	// when it is.
	Problem error
	// Restarted: a version number seen before does not exist any more, so
	// the secret was deleted and created again (its numbers restarted).
	Restarted bool
}

// maxProbe bounds how far past the newest known version ReadNewest looks.
const maxProbe = 20

// ReadNewest reads the newest version of secret it can be sure of. Secret
// Manager promises strong consistency only for a version read by its number
// (https://cloud.google.com/secret-manager/docs/reference/consistency):
// latest, listing and secret metadata can lag for minutes, even hours. So
// when latest names a version older than known (a number the caller saw,
// wrote or was told of), known is read by number instead; and with probe,
// the numbers after it are tried one by one until one does not exist (a
// writer under the lease does this: another may just have added one). A
// known number that no longer exists means the secret was recreated: its
// numbers restarted, and latest is believed again. The error is the store's
// (unreachable, denied); Newest.Problem is the newest version's own.
func ReadNewest(ctx context.Context, r VersionReader, secret, known string, probe bool) (Newest, error) {
	var out Newest
	v, err := r.Latest(ctx, secret)
	switch {
	case err == nil:
		out.Version = v
	case isVersionProblem(err):
		out.Problem = err
	default:
		return Newest{}, err
	}
	n := versionNumber(out.Version.ID)
	if k := versionNumber(known); k > n && k > 0 {
		kv, kerr := r.Get(ctx, secret, known)
		switch {
		case kerr == nil:
			out.Version, out.Problem, n = kv, nil, k
		case errors.Is(kerr, secrets.ErrNotFound):
			out.Restarted = true
		case isVersionProblem(kerr):
			out.Version, out.Problem, n = secrets.Version{Secret: secret, ID: known}, kerr, k
		default:
			return Newest{}, kerr
		}
	}
	if probe && (n > 0 || errors.Is(out.Problem, secrets.ErrNotFound)) {
		for next := max(n, 0) + 1; next <= max(n, 0)+maxProbe; next++ {
			id := strconv.FormatInt(next, 10)
			nv, nerr := r.Get(ctx, secret, id)
			if errors.Is(nerr, secrets.ErrNotFound) {
				break
			}
			if nerr != nil && !isVersionProblem(nerr) {
				return Newest{}, nerr
			}
			if nerr != nil {
				nv = secrets.Version{Secret: secret, ID: id}
			}
			out.Version, out.Problem = nv, nerr
		}
	}
	return out, nil
}

func isVersionProblem(err error) bool {
	return errors.Is(err, secrets.ErrNotFound) || errors.Is(err, secrets.ErrVersionUnavailable) || errors.Is(err, secrets.ErrCorrupt)
}

// seen is the newest pair this process read or wrote, and its version
// number: reads never step back below it (see ReadNewest).
type seen struct {
	pair    *Pair
	version string
}

// read reads and parses the newest version (see ReadNewest; probe under the
// lease). Store trouble is ErrStoreUnavailable (retry later); a missing,
// destroyed, corrupt or unusable newest version is reported with its own
// error, and its number (when known) as the version, so Ensure can recover
// on top of it.
func (m *Manager) read(ctx context.Context, probe bool) (Pair, string, error) {
	m.mu.Lock()
	known := m.seen.version
	m.mu.Unlock()
	got, err := ReadNewest(ctx, m.store, m.cfg.FleetSecret, known, probe)
	if err != nil {
		return Pair{}, "", storeErr("read", m.cfg.FleetSecret, err)
	}
	if got.Restarted {
		m.log.Warn("the token secret was recreated: version numbers restarted; forgetting the versions seen before",
			zap.String("known_version", known), zap.String("latest", got.Version.ID))
		m.forgetVersions()
	}
	if got.Problem != nil {
		id := got.Version.ID
		if id == "" && probe && !errors.Is(got.Problem, secrets.ErrNotFound) {
			// latest is destroyed or corrupt and its number unknown: the
			// listing tells the number to write after.
			id, err = m.highestListed(ctx)
			if err != nil {
				return Pair{}, "", err
			}
		}
		m.noteMissing()
		return Pair{}, id, fmt.Errorf("read %s: %w", m.cfg.FleetSecret, got.Problem)
	}
	v := got.Version
	p, err := ParsePair(v.Payload)
	if err != nil {
		m.noteMissing()
		return p, v.ID, fmt.Errorf("%s version %s: %w", m.cfg.FleetSecret, v.ID, err)
	}
	m.observe(p, v.ID)
	return p, v.ID, nil
}

// highestListed is the highest version number the listing shows ("" if none).
func (m *Manager) highestListed(ctx context.Context) (string, error) {
	versions, err := m.store.Versions(ctx, m.cfg.FleetSecret)
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return "", storeErr("list versions", m.cfg.FleetSecret, err)
	}
	best := int64(0)
	for _, v := range versions {
		best = max(best, versionNumber(v.ID))
	}
	// Probe past the listing too: it lags like latest does, and leaves out
	// destroyed versions.
	for n := best + 1; n <= best+maxProbe; n++ {
		if _, err := m.store.Get(ctx, m.cfg.FleetSecret, strconv.FormatInt(n, 10)); errors.Is(err, secrets.ErrNotFound) {
			break
		} else if err != nil && !isVersionProblem(err) {
			return "", storeErr("read", m.cfg.FleetSecret, err)
		}
		best = n
	}
	if best == 0 {
		return "", nil
	}
	return strconv.FormatInt(best, 10), nil
}

// observe records p as the newest pair seen, unless an older version than
// one already seen.
func (m *Manager) observe(p Pair, version string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if versionNumber(version) < versionNumber(m.seen.version) {
		return
	}
	cp := p
	m.seen = seen{pair: &cp, version: version}
	m.health.checked = m.clock.Now()
	m.health.missing = false
	if p.FreshAt(m.health.checked, 0) {
		m.health.reauth = false
	}
}

// forgetVersions drops what was seen of a secret that was recreated.
func (m *Manager) forgetVersions() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = seen{}
}

func (m *Manager) noteMissing() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.health.checked = m.clock.Now()
	m.health.missing = true
	// The pair seen stays as the floor for the next read (a corrupt or
	// destroyed newest version does not make an older one newest again),
	// but it is no longer served.
	m.seen.pair = nil
}
