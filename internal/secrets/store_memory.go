package secrets

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

var _ Store = (*Memory)(nil)

// Memory is an in-process Store for tests. It follows Secret Manager's rules
// (versions 1, 2, …; a destroyed version keeps its number but loses its
// payload; latest is the highest number whatever its state) with two
// conveniences: Add creates an unknown secret, and faults can be injected per
// operation — before it touches state (FailNext) or after it committed
// (FailNextAfterCommit, an ambiguous failure). SetLag makes latest and the
// listing eventually consistent, as Secret Manager's are; the lease is
// judged on the store's clock (one clock for every client) unless
// SetClientClock gives a holder its own. Safe for concurrent use.
type Memory struct {
	clk clock.Clock

	mu        sync.Mutex
	secrets   map[string][]memVersion // index i holds version i+1
	leases    map[string]memLeaseState
	faults    map[string]memFault
	after     map[string]memFault // faults that strike after the operation committed
	calls     map[string]int
	leaseSeq  int64
	lag       time.Duration
	clients   map[string]clock.Clock // holder → its own clock (SetClientClock)
	sightings map[string]memSighting // observer holder + secret → the lease as first seen
}

type memSighting struct {
	seq    int64
	expiry time.Time
	at     time.Time
}

// SetClientClock makes holder's leases client-judged, as Secret Manager's
// annotation lease is (see secretmanager.Store.TryLease): from now on the leases holder
// takes and renews are written with clk's time, and holder judges the
// others' on clk alone, with DefaultLeaseSkew. Tests give instances clocks
// that are off this way; without it the store's own clock judges every
// lease.
func (m *Memory) SetClientClock(holder string, clk clock.Clock) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.clients == nil {
		m.clients = map[string]clock.Clock{}
		m.sightings = map[string]memSighting{}
	}
	m.clients[holder] = clk
}

// holderNow is holder's time. Callers hold m.mu.
func (m *Memory) holderNow(holder string) (time.Time, bool) {
	if c, ok := m.clients[holder]; ok {
		return c.Now(), true
	}
	return m.clk.Now(), false
}

type memVersion struct {
	payload []byte
	created time.Time
	state   VersionState
}

type memLeaseState struct {
	holder string
	expiry time.Time
	ttl    time.Duration
	seq    int64 // which TryLease took it: a re-take by the same holder is a new lease
}

type memFault struct {
	err error
	n   int
}

// Operation names for Memory.FailNext and Memory.Calls.
const (
	OpLatest   = "latest"
	OpGet      = "get"
	OpAdd      = "add"
	OpVersions = "versions"
	OpDestroy  = "destroy"
	OpLease    = "lease"
	OpRenew    = "renew" // Lease.Renew
)

// NewMemory returns an empty Memory store whose leases expire on clk.
func NewMemory(clk clock.Clock) *Memory {
	if clk == nil {
		clk = clock.Real{}
	}
	return &Memory{
		clk:     clk,
		secrets: make(map[string][]memVersion),
		leases:  make(map[string]memLeaseState),
		faults:  make(map[string]memFault),
		after:   make(map[string]memFault),
		calls:   make(map[string]int),
	}
}

// FailNextAfterCommit makes the next n calls of op do their work and then
// fail with err, as a call whose deadline passed after the store committed
// does: the caller cannot tell whether it happened. n <= 0 clears it.
func (m *Memory) FailNextAfterCommit(op string, err error, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n <= 0 || err == nil {
		delete(m.after, op)
		return
	}
	m.after[op] = memFault{err: err, n: n}
}

// afterCommit returns the injected after-commit fault for op, if any.
// Callers hold m.mu.
func (m *Memory) afterCommit(op, secret string) error {
	f, ok := m.after[op]
	if !ok {
		return nil
	}
	if f.n--; f.n <= 0 {
		delete(m.after, op)
	} else {
		m.after[op] = f
	}
	return fmt.Errorf("memory %s %s: after commit: %w", op, secret, f.err)
}

// SetLag makes Latest and Versions eventually consistent: they see only
// the versions added at least d ago on the store's clock (and a newer
// version's destruction not at all), as Secret Manager's latest alias and
// listing may for minutes, even hours
// (https://cloud.google.com/secret-manager/docs/reference/consistency).
// Get by number always sees everything. 0 turns it off.
func (m *Memory) SetLag(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lag = max(d, 0)
}

// visible is how many versions latest and the listing see. Callers hold m.mu.
func (m *Memory) visible(secret string) int {
	versions := m.secrets[secret]
	if m.lag <= 0 {
		return len(versions)
	}
	cut := m.clk.Now().Add(-m.lag)
	n := len(versions)
	for n > 0 && versions[n-1].created.After(cut) {
		n--
	}
	return n
}

// Delete deletes the secret with all its versions, as an operator may to
// drop billed versions; Add creates it again, numbered from 1.
func (m *Memory) Delete(secret string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.secrets, secret)
	delete(m.leases, secret)
}

// FailNext makes the next n calls of op (one of the Op… constants: "latest",
// "get", "add", "versions", "destroy", "lease", "renew") fail with err, wrapped, before
// they touch any state. A later FailNext for the same op replaces the earlier.
func (m *Memory) FailNext(op string, err error, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n <= 0 || err == nil {
		delete(m.faults, op)
		return
	}
	m.faults[op] = memFault{err: err, n: n}
}

// Calls reports how many times op was called, failed calls included.
func (m *Memory) Calls(op string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[op]
}

// begin counts the call and returns an injected fault, if any. Callers hold m.mu.
func (m *Memory) begin(ctx context.Context, op, secret string) error {
	m.calls[op]++
	if f, ok := m.faults[op]; ok {
		f.n--
		if f.n <= 0 {
			delete(m.faults, op)
		} else {
			m.faults[op] = f
		}
		return fmt.Errorf("memory %s %s: %w", op, secret, f.err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory %s %s: %w", op, secret, err)
	}
	return ValidateName(secret)
}

// Latest returns the highest-numbered version; ErrVersionUnavailable if that
// version is destroyed (as Secret Manager does), ErrNotFound if there is none.
func (m *Memory) Latest(ctx context.Context, secret string) (Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin(ctx, OpLatest, secret); err != nil {
		return Version{}, err
	}
	n := m.visible(secret)
	if n == 0 {
		return Version{}, fmt.Errorf("latest %s: %w", secret, ErrNotFound)
	}
	return m.read(secret, int64(n))
}

// Get returns version id; ErrVersionUnavailable if it is destroyed.
func (m *Memory) Get(ctx context.Context, secret, id string) (Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin(ctx, OpGet, secret); err != nil {
		return Version{}, err
	}
	n, err := ParseVersionID(secret, id)
	if err != nil {
		return Version{}, err
	}
	return m.read(secret, n)
}

// read returns a copy of version n. Callers hold m.mu.
func (m *Memory) read(secret string, n int64) (Version, error) {
	versions := m.secrets[secret]
	if n > int64(len(versions)) {
		return Version{}, fmt.Errorf("get %s/%d: %w", secret, n, ErrNotFound)
	}
	v := versions[n-1]
	if v.state != StateEnabled {
		return Version{}, fmt.Errorf("get %s/%d: %w", secret, n, ErrVersionUnavailable)
	}
	return Version{Secret: secret, ID: strconv.FormatInt(n, 10), Payload: slices.Clone(v.payload), Created: v.created}, nil
}

// Add appends a copy of payload as the next version, creating the secret if needed.
func (m *Memory) Add(ctx context.Context, secret string, payload []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin(ctx, OpAdd, secret); err != nil {
		return "", err
	}
	if err := ValidatePayload(secret, payload); err != nil {
		return "", err
	}
	p := slices.Clone(payload)
	if p == nil {
		p = []byte{}
	}
	m.secrets[secret] = append(m.secrets[secret], memVersion{payload: p, created: m.clk.Now(), state: StateEnabled})
	if err := m.afterCommit(OpAdd, secret); err != nil {
		return "", err
	}
	return strconv.Itoa(len(m.secrets[secret])), nil
}

// Versions lists the versions that are not destroyed, newest first.
func (m *Memory) Versions(ctx context.Context, secret string) ([]VersionInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin(ctx, OpVersions, secret); err != nil {
		return nil, err
	}
	versions, ok := m.secrets[secret]
	if !ok {
		return nil, fmt.Errorf("versions %s: %w", secret, ErrNotFound)
	}
	var infos []VersionInfo
	for i := m.visible(secret) - 1; i >= 0; i-- {
		if versions[i].state == StateDestroyed {
			continue
		}
		infos = append(infos, VersionInfo{ID: strconv.Itoa(i + 1), Created: versions[i].created, State: versions[i].state})
	}
	return infos, nil
}

// Destroy drops the payload of version id for good; destroying it again
// fails with ErrVersionUnavailable, as in Secret Manager.
func (m *Memory) Destroy(ctx context.Context, secret, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin(ctx, OpDestroy, secret); err != nil {
		return err
	}
	n, err := ParseVersionID(secret, id)
	if err != nil {
		return err
	}
	versions := m.secrets[secret]
	if n > int64(len(versions)) {
		return fmt.Errorf("destroy %s/%d: %w", secret, n, ErrNotFound)
	}
	if versions[n-1].state == StateDestroyed {
		return fmt.Errorf("destroy %s/%d: already destroyed: %w", secret, n, ErrVersionUnavailable)
	}
	versions[n-1] = memVersion{created: versions[n-1].created, state: StateDestroyed}
	return nil
}

// ActiveVersions counts the versions that are not destroyed (what Secret
// Manager bills), so tests can check that pruning keeps the count bounded.
func (m *Memory) ActiveVersions(secret string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, v := range m.secrets[secret] {
		if v.state != StateDestroyed {
			n++
		}
	}
	return n
}

// TryLease takes the lease unless another holder has an unexpired one; the
// same holder may take it again (which extends it). The secret need not exist.
func (m *Memory) TryLease(ctx context.Context, secret, holder string, ttl time.Duration) (Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin(ctx, OpLease, secret); err != nil {
		return nil, err
	}
	if err := ValidateLeaseArgs(secret, holder, ttl); err != nil {
		return nil, err
	}
	now, client := m.holderNow(holder)
	if cur, ok := m.leases[secret]; ok && cur.holder != holder {
		if !client {
			if now.Before(cur.expiry) {
				return nil, fmt.Errorf("lease %s: %w", secret, ErrLeaseHeld)
			}
		} else {
			key := holder + "\x00" + secret
			first := now
			if s, ok := m.sightings[key]; ok && s.seq == cur.seq && s.expiry.Equal(cur.expiry) {
				first = s.at
			} else {
				m.sightings[key] = memSighting{seq: cur.seq, expiry: cur.expiry, at: now}
			}
			over, fixed := JudgeLease(LeaseClaim{Holder: cur.holder, Expiry: cur.expiry, TTL: cur.ttl}, first, now, ttl, DefaultLeaseSkew)
			if fixed != nil {
				cur.expiry = fixed.Expiry
				m.leases[secret] = cur
				m.sightings[key] = memSighting{seq: cur.seq, expiry: cur.expiry, at: now}
			}
			if !over {
				return nil, fmt.Errorf("lease %s held by %s: %w", secret, cur.holder, ErrLeaseHeld)
			}
		}
	}
	m.leaseSeq++
	m.leases[secret] = memLeaseState{holder: holder, expiry: now.Add(ttl), ttl: ttl, seq: m.leaseSeq}
	// An earlier lease of the same holder is superseded: its Renew fails.
	return &memLease{m: m, secret: secret, holder: holder, ttl: ttl, seq: m.leaseSeq}, nil
}

type memLease struct {
	m      *Memory
	secret string
	holder string
	ttl    time.Duration
	seq    int64
}

// Renew extends the lease if nobody took it over, even after it expired:
// only another TryLease or a Release ends it for its holder.
func (l *memLease) Renew(ctx context.Context) error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if err := l.m.begin(ctx, OpRenew, l.secret); err != nil {
		return err
	}
	cur, ok := l.m.leases[l.secret]
	if !ok || cur.seq != l.seq {
		return fmt.Errorf("renew lease %s: %w", l.secret, ErrLeaseLost)
	}
	now, _ := l.m.holderNow(l.holder)
	cur.expiry = now.Add(l.ttl)
	l.m.leases[l.secret] = cur
	return nil
}

// Release gives the lease up if this holder still has it; otherwise it does nothing.
func (l *memLease) Release(context.Context) error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if cur, ok := l.m.leases[l.secret]; ok && cur.seq == l.seq {
		delete(l.m.leases, l.secret)
	}
	return nil
}
