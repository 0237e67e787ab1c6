package tokens

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/logging"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

// want says when a stored pair is good enough for a flight.
type want struct {
	force           bool   // refresh whatever the stored pair
	rejected        string // the access token the Fleet API refused: refresh unless the store holds another
	rejectedVersion string // the version a reader's refused token came from: refresh unless a newer one is stored
}

// satisfied reports whether p, stored as version ver, needs no refresh:
// fresh for RefreshBefore, not the refused token, and not a refresh token
// Tesla left unrotated for so long that its grace is running out.
func (m *Manager) satisfied(p Pair, ver string, w want, now time.Time) bool {
	force := w.force
	if w.rejectedVersion != "" {
		if versionNumber(ver) <= versionNumber(w.rejectedVersion) {
			return false
		}
		force = false // someone else already replaced the refused version
	}
	if force || (w.rejected != "" && p.AccessToken == w.rejected) {
		return false
	}
	return p.FreshAt(now, m.cfg.RefreshBefore) && !p.RotationDue(now, m.cfg.RotateWithin)
}

func none(p Pair, ver string) Result {
	return Result{Action: ActionNone, ExpiresAt: p.ExpiresAt, Version: ver, Rotated: true}
}

func (m *Manager) ensure(ctx context.Context, w want) (Result, error) {
	cur, ver, err := m.read(ctx, false)
	if errors.Is(err, ErrStoreUnavailable) {
		return Result{}, err
	}
	if err == nil && m.satisfied(cur, ver, w, m.clock.Now()) {
		return none(cur, ver), nil
	}

	lease, done, err := m.acquire(ctx, w)
	if err != nil || done != nil {
		return deref(done), err
	}
	defer m.release(lease)

	// Re-read under the lease, by number past what latest shows: another
	// instance may just have refreshed, and latest is eventually consistent.
	cur, ver, err = m.read(ctx, true)
	if errors.Is(err, ErrStoreUnavailable) {
		return Result{}, err
	}
	if err == nil && m.satisfied(cur, ver, w, m.clock.Now()) {
		return none(cur, ver), nil
	}
	tried := map[string]bool{}
	if err == nil {
		res, rerr := m.refreshWith(ctx, lease, cur.RefreshToken, ver, cur, "refresh")
		if rerr == nil || !errors.Is(rerr, errLoginRequired) {
			return res, rerr
		}
		tried[cur.RefreshToken] = true
		m.log.Warn("stored refresh token rejected; trying older versions and the legacy secret",
			logging.Token("refresh_token", cur.RefreshToken), zap.String("version", ver))
	} else {
		m.log.Warn("stored token pair unusable; trying older versions and the legacy secret",
			zap.String("version", ver), zap.Error(err))
	}
	cands, err := m.candidates(ctx, cur)
	if err != nil {
		return Result{}, err
	}
	return m.tryCandidates(ctx, lease, cands, ver, cur, tried)
}

func (m *Manager) migrate(ctx context.Context) (Result, error) {
	lease, _, err := m.acquire(ctx, want{force: true})
	if err != nil {
		return Result{}, err
	}
	defer m.release(lease)

	cur, ver, rerr := m.read(ctx, true)
	if errors.Is(rerr, ErrStoreUnavailable) {
		return Result{}, rerr
	}
	cands, err := m.candidates(ctx, cur)
	if err != nil {
		return Result{}, err
	}
	tried := map[string]bool{}
	legacy := cands[len(cands)-1]
	outcome := LegacyKnown
	switch {
	case legacy.token == "":
		// Nothing to adopt: say so rather than spend an empty token.
		outcome = LegacyAbsent
	case !legacy.known:
		// A legacy token we have never adopted nor stored is news (a login
		// made with the old system's script): adopt it first.
		res, err := m.refreshWith(ctx, lease, legacy.token, ver, cur, sourceLegacy)
		if err == nil {
			res.Action, res.Legacy = ActionMigrated, LegacyAdopted
			return res, nil
		}
		if !errors.Is(err, errLoginRequired) {
			return Result{}, err
		}
		tried[legacy.token] = true
		outcome = LegacyRejected
	}
	if rerr == nil && cur.FreshAt(m.clock.Now(), m.cfg.RefreshBefore) {
		res := none(cur, ver)
		res.Legacy = outcome
		return res, nil
	}
	res, err := m.tryCandidates(ctx, lease, cands, ver, cur, tried)
	res.Legacy = outcome
	return res, err
}

const sourceLegacy = "migrate:legacy"

type candidate struct {
	token  string
	source string
	known  bool // the legacy token: adopted before, stored in a version, or spent for one
}

// candidates lists refresh tokens worth trying, newest first: the pair
// whose write failed, then the distinct tokens of the stored versions (one
// of them may still be inside Tesla's 24 h grace), then the legacy
// secret's. MaxRecoveryTries counts distinct tokens, not versions: copies of
// one dead pair (retried writes) do not hide an older good one. The legacy
// entry is always last (empty if absent).
func (m *Manager) candidates(ctx context.Context, cur Pair) ([]candidate, error) {
	var out []candidate
	m.mu.Lock()
	if m.pending != nil {
		out = append(out, candidate{token: m.pending.RefreshToken, source: "migrate:unstored"})
	}
	m.mu.Unlock()
	seen := map[string]bool{}  // refresh tokens stored in a version
	spent := map[string]bool{} // hashes of refresh tokens already exchanged
	adopted := map[string]bool{}
	for _, h := range m.adoptions(cur) {
		adopted[h] = true
	}
	versions, err := m.store.Versions(ctx, m.cfg.FleetSecret)
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return nil, storeErr("list versions", m.cfg.FleetSecret, err)
	}
	distinct := 0
	for i, v := range versions {
		// Bound the reads too: a secret can hold hundreds of copies.
		if distinct >= m.cfg.MaxRecoveryTries || i >= 5*m.cfg.MaxRecoveryTries {
			break
		}
		sv, err := m.store.Get(ctx, m.cfg.FleetSecret, v.ID)
		if err != nil {
			if isTransientStore(err) {
				return nil, storeErr("read version "+v.ID, m.cfg.FleetSecret, err)
			}
			continue
		}
		p, err := ParsePair(sv.Payload)
		if p.SpentRefreshHash != "" {
			spent[p.SpentRefreshHash] = true
		}
		for _, h := range p.AdoptedLegacy {
			adopted[h] = true
		}
		if p.RefreshToken == "" || seen[p.RefreshToken] {
			if err != nil {
				m.log.Warn("skipping unreadable token version", zap.String("version", v.ID), zap.Error(err))
			}
			continue
		}
		seen[p.RefreshToken] = true
		distinct++
		out = append(out, candidate{token: p.RefreshToken, source: "migrate:version-" + v.ID})
	}
	legacy := candidate{source: sourceLegacy}
	lv, err := m.store.Latest(ctx, m.cfg.LegacySecret)
	switch {
	case err == nil:
		legacy.token = trimToken(lv.Payload)
		h := HashToken(legacy.token)
		legacy.known = seen[legacy.token] || spent[h] || adopted[h] || cur.RefreshToken == legacy.token
	case isTransientStore(err):
		return nil, storeErr("read", m.cfg.LegacySecret, err)
	}
	return append(out, legacy), nil
}

func (m *Manager) tryCandidates(ctx context.Context, lease *heldLease, cands []candidate, base string, prev Pair, tried map[string]bool) (Result, error) {
	for _, c := range cands {
		if c.token == "" || tried[c.token] {
			continue
		}
		tried[c.token] = true
		res, err := m.refreshWith(ctx, lease, c.token, base, prev, c.source)
		if err == nil {
			res.Action = ActionMigrated
			m.log.Info("recovered the token chain", zap.String("from", c.source), zap.String("version", res.Version))
			return res, nil
		}
		if !errors.Is(err, errLoginRequired) {
			return Result{}, err
		}
		m.log.Info("candidate refresh token rejected", zap.String("from", c.source), logging.Token("refresh_token", c.token))
	}
	m.mu.Lock()
	m.health.reauth = true
	m.mu.Unlock()
	return Result{}, ErrReauthRequired
}

// refreshWith spends one refresh token and persists what Tesla answers.
func (m *Manager) refreshWith(ctx context.Context, lease *heldLease, refreshToken, base string, prev Pair, source string) (Result, error) {
	client, err := m.clientRegistration(ctx)
	if err != nil {
		return Result{}, err
	}
	// Spend nothing on a lease another writer has taken over meanwhile.
	if err := lease.checkRecent(ctx, recentProof); err != nil {
		return Result{}, err
	}
	iss, err := m.endpoint.Refresh(ctx, client, refreshToken)
	if err != nil {
		if errors.Is(err, ErrMisconfigured) {
			m.forgetClient()
		}
		return Result{}, err
	}
	now := m.clock.Now()
	pair := Pair{
		AccessToken:           iss.AccessToken,
		RefreshToken:          iss.RefreshToken,
		ExpiresAt:             m.expiry(iss, now),
		RefreshTokenCreatedAt: now,
		TokenType:             iss.TokenType,
		Scope:                 iss.Scope,
		UpdatedAt:             now,
		Source:                source,
		SpentRefreshHash:      HashToken(refreshToken),
		AdoptedLegacy:         m.adoptions(prev),
	}
	if source == sourceLegacy {
		pair.AdoptedLegacy = addAdoption(pair.AdoptedLegacy, HashToken(refreshToken))
	}
	// Compare with the token sent: the oauth2 library copies it into an
	// answer that carries none, so "no refresh token" never shows as empty.
	rotated := !iss.Unrotated && iss.RefreshToken != "" && iss.RefreshToken != refreshToken
	if !rotated {
		pair.RefreshToken = refreshToken
		pair.RefreshTokenUsedAt = now
		if prev.RefreshToken == refreshToken && !prev.RefreshTokenUsedAt.IsZero() {
			pair.RefreshTokenUsedAt = prev.RefreshTokenUsedAt // Tesla's grace runs from the first use
		}
		m.log.Warn("Tesla answered the refresh without a new refresh token: the one sent stays in use, and Tesla's grace for it runs out 24 h after its first use; it is spent again for a real rotation before then",
			zap.String("source", source), logging.Token("refresh_token", refreshToken),
			zap.Time("first_used_at", pair.RefreshTokenUsedAt), zap.Time("spent_again_after", pair.RefreshTokenUsedAt.Add(m.cfg.RotateWithin)))
	}
	if pair.RefreshToken == prev.RefreshToken && !prev.RefreshTokenCreatedAt.IsZero() {
		pair.RefreshTokenCreatedAt = prev.RefreshTokenCreatedAt
	}
	m.log.Info("Tesla issued a new token pair",
		zap.String("source", source), logging.Token("spent_refresh_token", refreshToken),
		logging.Token("refresh_token", pair.RefreshToken), zap.Bool("rotated", rotated), zap.Time("expires_at", pair.ExpiresAt))
	res, err := m.persist(ctx, lease, pair, base, prev)
	res.Rotated = rotated
	return res, err
}

// expiry prefers expires_in (on our clock), then the JWT's exp.
func (m *Manager) expiry(iss Issued, now time.Time) time.Time {
	if iss.ExpiresIn > 0 {
		return now.Add(iss.ExpiresIn).UTC()
	}
	if c, err := ParseClaims(iss.AccessToken); err == nil && !c.ExpiresAt.IsZero() {
		return c.ExpiresAt
	}
	return now.Add(8 * time.Hour).UTC()
}

// maxAdoptions bounds the adoption record carried in every version.
const maxAdoptions = 8

// adoptions is the record of adopted legacy tokens to carry into the next
// version: p's and the newest pair seen in memory (p may be unreadable).
func (m *Manager) adoptions(p Pair) []string {
	out := slices.Clone(p.AdoptedLegacy)
	if cur, ok := m.Current(); ok {
		for _, h := range cur.AdoptedLegacy {
			out = addAdoption(out, h)
		}
	}
	return out
}

func addAdoption(list []string, h string) []string {
	if slices.Contains(list, h) {
		return list
	}
	list = append(list, h)
	if len(list) > maxAdoptions {
		list = list[len(list)-maxAdoptions:]
	}
	return list
}
