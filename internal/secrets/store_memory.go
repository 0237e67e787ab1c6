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
// operation. Safe for concurrent use.
type Memory struct {
	clk clock.Clock

	mu      sync.Mutex
	secrets map[string][]memVersion // index i holds version i+1
	leases  map[string]memLeaseState
	faults  map[string]memFault
	calls   map[string]int
}

type memVersion struct {
	payload []byte
	created time.Time
	state   VersionState
}

type memLeaseState struct {
	holder string
	expiry time.Time
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
		calls:   make(map[string]int),
	}
}

// FailNext makes the next n calls of op (one of the Op… constants: "latest",
// "get", "add", "versions", "destroy", "lease") fail with err, wrapped, before
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
	return checkSecretName(secret)
}

// Latest returns the highest-numbered version; ErrVersionUnavailable if that
// version is destroyed (as Secret Manager does), ErrNotFound if there is none.
func (m *Memory) Latest(ctx context.Context, secret string) (Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin(ctx, OpLatest, secret); err != nil {
		return Version{}, err
	}
	versions := m.secrets[secret]
	if len(versions) == 0 {
		return Version{}, fmt.Errorf("latest %s: %w", secret, ErrNotFound)
	}
	return m.read(secret, int64(len(versions)))
}

// Get returns version id; ErrVersionUnavailable if it is destroyed.
func (m *Memory) Get(ctx context.Context, secret, id string) (Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin(ctx, OpGet, secret); err != nil {
		return Version{}, err
	}
	n, err := parseVersionID(secret, id)
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
	if err := checkPayloadSize(secret, payload); err != nil {
		return "", err
	}
	p := slices.Clone(payload)
	if p == nil {
		p = []byte{}
	}
	m.secrets[secret] = append(m.secrets[secret], memVersion{payload: p, created: m.clk.Now(), state: StateEnabled})
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
	for i := len(versions) - 1; i >= 0; i-- {
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
	n, err := parseVersionID(secret, id)
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
	if err := checkLeaseArgs(secret, holder, ttl); err != nil {
		return nil, err
	}
	now := m.clk.Now()
	if cur, ok := m.leases[secret]; ok && cur.holder != holder && now.Before(cur.expiry) {
		return nil, fmt.Errorf("lease %s: %w", secret, ErrLeaseHeld)
	}
	m.leases[secret] = memLeaseState{holder: holder, expiry: now.Add(ttl)}
	return &memLease{m: m, secret: secret, holder: holder}, nil
}

type memLease struct {
	m      *Memory
	secret string
	holder string
}

// Release gives the lease up if this holder still has it; otherwise it does nothing.
func (l *memLease) Release(context.Context) error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if cur, ok := l.m.leases[l.secret]; ok && cur.holder == l.holder {
		delete(l.m.leases, l.secret)
	}
	return nil
}
