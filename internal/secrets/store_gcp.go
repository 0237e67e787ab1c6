package secrets

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

var _ Store = (*GCP)(nil)

// LeaseAnnotation is the annotation on a Secret that holds the writer lease
// as "holder|<RFC 3339 expiry>". Secret Manager has no compare-and-swap on
// AddSecretVersion, but UpdateSecret honours the secret's etag, which makes
// the annotation a lock.
const LeaseAnnotation = "offpeak-lease"

// DefaultCallTimeout bounds each Secret Manager call unless GCP.CallTimeout
// says otherwise; the client's own default (60 s) is too long for a request
// handler or Cloud Run's 10 s shutdown.
const DefaultCallTimeout = 10 * time.Second

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// GCP is the Google Secret Manager backend. Safe for concurrent use once
// configured.
type GCP struct {
	client  *secretmanager.Client
	project string
	owned   bool // Close closes the client only if NewGCP made it

	// CallTimeout bounds every RPC (context.WithTimeout); a shorter deadline
	// on the caller's context still wins. Set before first use.
	CallTimeout time.Duration
	// Clock times lease expiry. Set before first use.
	Clock clock.Clock
	// LeaseSkew is how far apart the clocks of the lease's clients may be
	// (default DefaultLeaseSkew). Set before first use.
	LeaseSkew time.Duration

	seenMu  sync.Mutex
	seen    map[string]leaseSighting           // lease annotations as first seen, by secret
	written map[string]*secretmanagerpb.Secret // each secret as our last lease write left it
}

// NewGCP dials Secret Manager for project (id or number). opts go to the
// client, e.g. smfake's ClientOptions in tests.
func NewGCP(ctx context.Context, project string, opts ...option.ClientOption) (*GCP, error) {
	if project == "" {
		return nil, errors.New("secret manager: project not set")
	}
	c, err := secretmanager.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("secret manager client: %w", err)
	}
	g := NewGCPFromClient(c, project)
	g.owned = true
	return g, nil
}

// NewGCPFromClient uses an existing client, which stays the caller's to close.
func NewGCPFromClient(client *secretmanager.Client, project string) *GCP {
	return &GCP{client: client, project: project, CallTimeout: DefaultCallTimeout, Clock: clock.Real{}}
}

// Close closes the client if NewGCP created it.
func (g *GCP) Close() error {
	if !g.owned {
		return nil
	}
	return g.client.Close()
}

func (g *GCP) secretName(secret string) string {
	return "projects/" + g.project + "/secrets/" + secret
}

func (g *GCP) versionName(secret, version string) string {
	return g.secretName(secret) + "/versions/" + version
}

func (g *GCP) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	d := g.CallTimeout
	if d <= 0 {
		d = DefaultCallTimeout
	}
	return context.WithTimeout(ctx, d)
}

func (g *GCP) now() time.Time {
	if g.Clock == nil {
		return time.Now()
	}
	return g.Clock.Now()
}

// Latest accesses …/versions/latest and reports the version it resolved to.
// Secret Manager resolves latest whatever the state: a destroyed or disabled
// newest version is ErrVersionUnavailable, not the next one down.
func (g *GCP) Latest(ctx context.Context, secret string) (Version, error) {
	if err := checkSecretName(secret); err != nil {
		return Version{}, err
	}
	return g.access(ctx, secret, "latest")
}

// Get accesses one version by number.
func (g *GCP) Get(ctx context.Context, secret, id string) (Version, error) {
	if err := checkSecretName(secret); err != nil {
		return Version{}, err
	}
	if _, err := parseVersionID(secret, id); err != nil {
		return Version{}, err
	}
	return g.access(ctx, secret, id)
}

func (g *GCP) access(ctx context.Context, secret, version string) (Version, error) {
	ctx, cancel := g.callCtx(ctx)
	defer cancel()
	name := g.versionName(secret, version)
	resp, err := g.client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name})
	if err != nil {
		return Version{}, mapGCPErr("access "+name, err, ErrVersionUnavailable)
	}
	data := resp.GetPayload().GetData()
	// Secret Manager always sends the checksum; a response without one is
	// accepted (there is nothing to check), a wrong one is not.
	if want := resp.GetPayload().DataCrc32C; want != nil && int64(crc32.Checksum(data, castagnoli)) != *want {
		return Version{}, fmt.Errorf("access %s: CRC32C mismatch: %w", name, ErrCorrupt)
	}
	id := lastSegment(resp.GetName())
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		return Version{}, fmt.Errorf("access %s: response names no version number (%q): %w", name, resp.GetName(), ErrUnavailable)
	}
	if data == nil {
		data = []byte{}
	}
	return Version{Secret: secret, ID: id, Payload: data}, nil
}

// Add appends a version with its CRC32C, so Secret Manager rejects a payload
// damaged on the way. The secret must exist (creating one needs the admin
// role and a replication policy: that is deployment's job).
func (g *GCP) Add(ctx context.Context, secret string, payload []byte) (string, error) {
	if err := checkSecretName(secret); err != nil {
		return "", err
	}
	if err := checkPayloadSize(secret, payload); err != nil {
		return "", err
	}
	ctx, cancel := g.callCtx(ctx)
	defer cancel()
	parent := g.secretName(secret)
	sum := int64(crc32.Checksum(payload, castagnoli))
	v, err := g.client.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent:  parent,
		Payload: &secretmanagerpb.SecretPayload{Data: payload, DataCrc32C: &sum},
	})
	if err != nil {
		return "", mapGCPErr("add version to "+parent, err, nil)
	}
	return lastSegment(v.GetName()), nil
}

// Versions lists enabled and disabled versions (both are billed), newest
// first by number.
func (g *GCP) Versions(ctx context.Context, secret string) ([]VersionInfo, error) {
	if err := checkSecretName(secret); err != nil {
		return nil, err
	}
	ctx, cancel := g.callCtx(ctx)
	defer cancel()
	parent := g.secretName(secret)
	it := g.client.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{
		Parent: parent,
		Filter: "state:(ENABLED OR DISABLED)",
	})
	type numbered struct {
		n    int64
		info VersionInfo
	}
	var found []numbered
	for {
		v, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, mapGCPErr("list versions of "+parent, err, nil)
		}
		var state VersionState
		switch v.GetState() {
		case secretmanagerpb.SecretVersion_ENABLED:
			state = StateEnabled
		case secretmanagerpb.SecretVersion_DISABLED:
			state = StateDisabled
		default:
			continue // destroyed: a fake or an old server may ignore the filter
		}
		if v.GetScheduledDestroyTime() != nil {
			// Destroyed already, with Secret Manager's delayed destruction:
			// disabled until then, never to be enabled or destroyed by us.
			continue
		}
		id := lastSegment(v.GetName())
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			continue
		}
		info := VersionInfo{ID: id, State: state}
		if ct := v.GetCreateTime(); ct != nil {
			info.Created = ct.AsTime()
		}
		found = append(found, numbered{n, info})
	}
	slices.SortFunc(found, func(a, b numbered) int { return cmp.Compare(b.n, a.n) })
	out := make([]VersionInfo, len(found))
	for i, f := range found {
		out[i] = f.info
	}
	return out, nil
}

// Destroy destroys one version; destroying it again is ErrVersionUnavailable.
func (g *GCP) Destroy(ctx context.Context, secret, id string) error {
	if err := checkSecretName(secret); err != nil {
		return err
	}
	if _, err := parseVersionID(secret, id); err != nil {
		return err
	}
	ctx, cancel := g.callCtx(ctx)
	defer cancel()
	name := g.versionName(secret, id)
	if _, err := g.client.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: name}); err != nil {
		return mapGCPErr("destroy "+name, err, ErrVersionUnavailable)
	}
	return nil
}

// DefaultLeaseSkew is how far apart two clients' clocks may be before the
// lease stops protecting them from each other (see TryLease).
const DefaultLeaseSkew = 30 * time.Second

// MaxLeaseTTL caps the time to live a lease annotation may claim: a value
// written with a longer one (a misconfigured or hostile client) is judged
// as if it said MaxLeaseTTL.
const MaxLeaseTTL = 15 * time.Minute

// TryLease writes the lease annotation, "holder|expiry|ttl", with the etag
// just read, so of two writers racing for it exactly one wins; the other
// sees ErrLeaseHeld. The same holder may take it again, which extends it.
//
// Another holder's lease is judged on this client's clock alone, never by
// comparing it with the writer's: it is over once this client has seen the
// annotation unchanged for the lease's ttl plus LeaseSkew (its holder
// stopped renewing), or once its written expiry is more than ttl plus
// LeaseSkew in the past (a lease left by a crash long ago, judged safely
// while the two clocks are less than ttl plus LeaseSkew apart). An expiry
// further ahead than ttl plus LeaseSkew can only come from a clock that is
// fast (a laptop an hour ahead): it is rewritten, same holder, to this
// client's now plus ttl, so a crashed holder with a fast clock blocks
// others for about one ttl, not for as long as its clock is wrong.
func (g *GCP) TryLease(ctx context.Context, secret, holder string, ttl time.Duration) (Lease, error) {
	if err := checkLeaseArgs(secret, holder, ttl); err != nil {
		return nil, err
	}
	ctx, cancel := g.callCtx(ctx)
	defer cancel()
	name := g.secretName(secret)
	s, err := g.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name})
	if err != nil {
		return nil, mapGCPErr("read lease on "+name, err, nil)
	}
	lease, err := g.takeLease(ctx, secret, holder, ttl, s)
	if err != nil && errors.Is(err, ErrLeaseHeld) {
		// Secret metadata reads are eventually consistent: if our own last
		// write is newer than what the read showed, its etag is the current
		// one. Judge and try again on it (the etag decides).
		if w := g.lastWritten(secret); w != nil && w.GetEtag() != s.GetEtag() {
			if l, werr := g.takeLease(ctx, secret, holder, ttl, w); werr == nil {
				return l, nil
			}
		}
	}
	return lease, err
}

// takeLease judges the lease annotation of s (as read) and, if it is free
// or ours, writes ours with s's etag.
func (g *GCP) takeLease(ctx context.Context, secret, holder string, ttl time.Duration, s *secretmanagerpb.Secret) (Lease, error) {
	name := g.secretName(secret)
	now := g.now()
	value := s.GetAnnotations()[LeaseAnnotation]
	if l, ok := parseLeaseValue(value); ok && l.holder != holder {
		over, fixed := judgeLease(l, g.sighting(secret, value, now), now, ttl, g.leaseSkew())
		if fixed != nil {
			if _, err := g.writeLease(ctx, s, fixed.String()); err == nil {
				g.sighting(secret, fixed.String(), now)
			}
			return nil, fmt.Errorf("lease on %s held by %s (its expiry, %s, was ahead of this clock by more than the allowance: judged as until %s): %w",
				name, l.holder, l.expiry.Format(time.RFC3339), fixed.expiry.Format(time.RFC3339), ErrLeaseHeld)
		}
		if !over {
			return nil, fmt.Errorf("lease on %s held by %s (expiry %s as written): %w", name, l.holder, l.expiry.Format(time.RFC3339), ErrLeaseHeld)
		}
	}
	lease := &gcpLease{g: g, secret: secret, holder: holder, ttl: ttl}
	updated, err := g.writeLease(ctx, s, lease.value(now))
	if err != nil {
		return nil, err
	}
	lease.last = updated
	return lease, nil
}

// lastWritten is the secret as our last lease write left it (nil if none).
func (g *GCP) lastWritten(secret string) *secretmanagerpb.Secret {
	g.seenMu.Lock()
	defer g.seenMu.Unlock()
	return g.written[secret]
}

func (g *GCP) leaseSkew() time.Duration {
	if g.LeaseSkew > 0 {
		return g.LeaseSkew
	}
	return DefaultLeaseSkew
}

// sighting returns when this client first saw value as the secret's lease
// annotation (now, if it never did before or saw another value since).
func (g *GCP) sighting(secret, value string, now time.Time) time.Time {
	g.seenMu.Lock()
	defer g.seenMu.Unlock()
	if g.seen == nil {
		g.seen = map[string]leaseSighting{}
	}
	if s, ok := g.seen[secret]; ok && s.value == value {
		return s.at
	}
	g.seen[secret] = leaseSighting{value: value, at: now}
	return now
}

type leaseSighting struct {
	value string
	at    time.Time
}

// writeLease sets (or, with value "", removes) the lease annotation, keeping
// the other annotations, guarded by the etag s was read with. It returns the
// secret as written (its new etag).
func (g *GCP) writeLease(ctx context.Context, s *secretmanagerpb.Secret, value string) (*secretmanagerpb.Secret, error) {
	ann := maps.Clone(s.GetAnnotations())
	if ann == nil {
		ann = map[string]string{}
	}
	if value == "" {
		delete(ann, LeaseAnnotation)
	} else {
		ann[LeaseAnnotation] = value
	}
	updated, err := g.client.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: s.GetName(), Etag: s.GetEtag(), Annotations: ann},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"annotations"}},
	})
	if err == nil {
		g.seenMu.Lock()
		if g.written == nil {
			g.written = map[string]*secretmanagerpb.Secret{}
		}
		g.written[lastSegment(s.GetName())] = updated
		g.seenMu.Unlock()
		return updated, nil
	}
	if c := status.Code(err); c == codes.FailedPrecondition || c == codes.Aborted {
		return nil, fmt.Errorf("lease on %s: changed since read (etag): %w", s.GetName(), &gcpError{kind: ErrLeaseHeld, cause: err})
	}
	return nil, mapGCPErr("write lease on "+s.GetName(), err, nil)
}

type gcpLease struct {
	g      *GCP
	secret string
	holder string
	ttl    time.Duration

	mu   sync.Mutex
	last *secretmanagerpb.Secret // as our last write of the annotation left it (its etag)
}

func (l *gcpLease) value(now time.Time) string {
	return leaseValue{holder: l.holder, expiry: now.Add(l.ttl), ttl: l.ttl}.String()
}

// Renew rewrites the annotation with a new expiry, guarded by the etag of
// our last write: only a write tells for sure, since reads of a secret's
// metadata are eventually consistent. If the etag moved (another annotation
// changed, or someone took the lease) the secret is read again, and the
// lease renewed only if it still names this holder; otherwise, or if the
// etag keeps moving, it is ErrLeaseLost.
func (l *gcpLease) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, cancel := l.g.callCtx(ctx)
	defer cancel()
	name := l.g.secretName(l.secret)
	s := l.last
	for attempt := 0; ; attempt++ {
		updated, err := l.g.writeLease(ctx, s, l.value(l.g.now()))
		if err == nil {
			l.last = updated
			return nil
		}
		if !errors.Is(err, ErrLeaseHeld) {
			return err
		}
		if attempt == 2 {
			return fmt.Errorf("renew lease on %s: the secret keeps changing: %w", name, ErrLeaseLost)
		}
		if s, err = l.g.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name}); err != nil {
			return mapGCPErr("renew lease on "+name, err, nil)
		}
		if cur, ok := parseLeaseValue(s.GetAnnotations()[LeaseAnnotation]); !ok || cur.holder != l.holder {
			return fmt.Errorf("renew lease on %s: taken over: %w", name, ErrLeaseLost)
		}
	}
}

// Release removes the annotation if this holder still has it (after expiry
// someone else may); a concurrent edit of other annotations is retried.
func (l *gcpLease) Release(ctx context.Context) error {
	ctx, cancel := l.g.callCtx(ctx)
	defer cancel()
	name := l.g.secretName(l.secret)
	// First with the secret as our last write left it: metadata reads lag,
	// and if nothing changed since, its etag is the current one.
	l.mu.Lock()
	last := l.last
	l.mu.Unlock()
	if last != nil {
		if _, err := l.g.writeLease(ctx, last, ""); err == nil || !errors.Is(err, ErrLeaseHeld) {
			return err
		}
	}
	var err error
	for range 3 {
		var s *secretmanagerpb.Secret
		s, err = l.g.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name})
		if err != nil {
			return mapGCPErr("release lease on "+name, err, nil)
		}
		if cur, ok := parseLeaseValue(s.GetAnnotations()[LeaseAnnotation]); !ok || cur.holder != l.holder {
			return nil // expired and taken over, or already released
		}
		if _, err = l.g.writeLease(ctx, s, ""); err == nil || !errors.Is(err, ErrLeaseHeld) {
			return err
		}
	}
	return fmt.Errorf("release lease on %s: %w", name, err)
}

// judgeLease judges another holder's lease l on the observer's clock alone
// (now), first seen unchanged at firstSeen: over once watched unchanged for
// its ttl plus skew, or once its written expiry is more than its ttl plus
// skew past; an expiry further ahead than that came from a fast clock, and
// fixed is the value to write back (same holder, the observer's now + ttl),
// the lease judged held meanwhile. fallbackTTL is for values that carry no
// ttl; a ttl above MaxLeaseTTL counts as MaxLeaseTTL.
func judgeLease(l leaseValue, firstSeen, now time.Time, fallbackTTL, skew time.Duration) (over bool, fixed *leaseValue) {
	ttl := l.ttl
	if ttl <= 0 {
		ttl = fallbackTTL // written by an older version of this code
	}
	ttl = min(ttl, MaxLeaseTTL)
	switch {
	case l.expiry.After(now.Add(ttl + skew)):
		return false, &leaseValue{holder: l.holder, expiry: now.Add(ttl), ttl: ttl}
	case now.Sub(firstSeen) >= ttl+skew, now.After(l.expiry.Add(ttl + skew)):
		return true, nil // its holder stopped renewing, or it ended long ago
	default:
		return false, nil
	}
}

// leaseValue is the annotation's content.
type leaseValue struct {
	holder string
	expiry time.Time
	ttl    time.Duration // 0 when written by an older version ("holder|expiry")
}

func (v leaseValue) String() string {
	return v.holder + "|" + v.expiry.UTC().Format(time.RFC3339Nano) + "|" + v.ttl.String()
}

// parseLeaseValue reads "holder|expiry|ttl" or the older "holder|expiry". A
// value that does not parse is treated as no lease, so a damaged annotation
// cannot lock the secret forever.
func parseLeaseValue(v string) (leaseValue, bool) {
	var out leaseValue
	if i := strings.LastIndexByte(v, '|'); i > 0 {
		if d, err := time.ParseDuration(v[i+1:]); err == nil && d > 0 {
			out.ttl = d
			v = v[:i]
		}
	}
	i := strings.LastIndexByte(v, '|')
	if i <= 0 {
		return leaseValue{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v[i+1:])
	if err != nil {
		return leaseValue{}, false
	}
	out.holder, out.expiry = v[:i], t
	return out, true
}

// gcpError carries both the package's error kind and the original gRPC error,
// so errors.Is(err, ErrNotFound) and status.Code(err) both work and the
// status text stays in the message.
type gcpError struct {
	kind  error
	cause error
}

func (e *gcpError) Error() string   { return e.kind.Error() + ": " + e.cause.Error() }
func (e *gcpError) Unwrap() []error { return []error{e.kind, e.cause} }

// mapGCPErr maps a client error onto the package's kinds. onPrecondition is
// the kind for FAILED_PRECONDITION, whose meaning depends on the call (a
// destroyed or disabled version on access and destroy); nil leaves it
// unmapped. Secret Manager's messages name resources, never payloads.
func mapGCPErr(op string, err error, onPrecondition error) error {
	var kind error
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.NotFound:
			kind = ErrNotFound
		case codes.FailedPrecondition:
			kind = onPrecondition
		case codes.PermissionDenied, codes.Unauthenticated:
			kind = ErrPermissionDenied
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted,
			codes.Internal, codes.Aborted, codes.Unknown:
			kind = ErrUnavailable
		case codes.DataLoss:
			kind = ErrCorrupt
		}
	} else if errors.Is(err, context.DeadlineExceeded) {
		// The client's retry loop gives up with the bare context error when
		// the deadline falls inside a backoff pause.
		kind = ErrUnavailable
	}
	if kind == nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w", op, &gcpError{kind: kind, cause: err})
}

func lastSegment(name string) string {
	return name[strings.LastIndexByte(name, '/')+1:]
}
