// Package secretmanager is the secrets.Store backend on Google Secret
// Manager. It lives apart from package secrets so that code which only
// needs the Store interface (the token manager, the scout) does not link
// the Cloud client, gRPC and OpenTelemetry; the wiring (internal/backends)
// picks it when SECRETS_BACKEND=gcp.
package secretmanager

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

	smapi "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/sethvargo/go-retry"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

var _ secrets.Store = (*Store)(nil)

// LeaseAnnotation is the annotation on a Secret that holds the writer lease
// as "holder|<RFC 3339 expiry>". Secret Manager has no compare-and-swap on
// AddSecretVersion, but UpdateSecret honours the secret's etag, which makes
// the annotation a lock.
const LeaseAnnotation = "offpeak-lease"

// DefaultCallTimeout bounds each Secret Manager call unless Store.CallTimeout
// says otherwise; the client's own default (60 s) is too long for a request
// handler or Cloud Run's 10 s shutdown.
const DefaultCallTimeout = 10 * time.Second

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Store is the Google Secret Manager backend. Safe for concurrent use once
// configured.
type Store struct {
	client  *smapi.Client
	project string
	owned   bool // Close closes the client only if New made it

	// CallTimeout bounds every RPC (context.WithTimeout); a shorter deadline
	// on the caller's context still wins. Set before first use.
	CallTimeout time.Duration
	// Clock times lease expiry. Set before first use.
	Clock clock.Clock
	// LeaseSkew is how far apart the clocks of the lease's clients may be
	// (default secrets.DefaultLeaseSkew). Set before first use.
	LeaseSkew time.Duration

	seenMu  sync.Mutex
	seen    map[string]leaseSighting           // lease annotations as first seen, by secret
	written map[string]*secretmanagerpb.Secret // each secret as our last lease write left it
}

// New dials Secret Manager for project (id or number). opts go to the
// client, e.g. smfake's ClientOptions in tests.
func New(ctx context.Context, project string, opts ...option.ClientOption) (*Store, error) {
	if project == "" {
		return nil, errors.New("secret manager: project not set")
	}
	c, err := smapi.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("secret manager client: %w", err)
	}
	g := NewFromClient(c, project)
	g.owned = true
	return g, nil
}

// NewFromClient uses an existing client, which stays the caller's to close.
func NewFromClient(client *smapi.Client, project string) *Store {
	return &Store{client: client, project: project, CallTimeout: DefaultCallTimeout, Clock: clock.Real{}}
}

// Close closes the client if New created it.
func (g *Store) Close() error {
	if !g.owned {
		return nil
	}
	return g.client.Close()
}

func (g *Store) secretName(secret string) string {
	return "projects/" + g.project + "/secrets/" + secret
}

func (g *Store) versionName(secret, version string) string {
	return g.secretName(secret) + "/versions/" + version
}

func (g *Store) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	d := g.CallTimeout
	if d <= 0 {
		d = DefaultCallTimeout
	}
	return context.WithTimeout(ctx, d)
}

func (g *Store) now() time.Time {
	if g.Clock == nil {
		return time.Now()
	}
	return g.Clock.Now()
}

// Latest accesses …/versions/latest and reports the version it resolved to.
// Secret Manager resolves latest whatever the state: a destroyed or disabled
// newest version is secrets.ErrVersionUnavailable, not the next one down.
func (g *Store) Latest(ctx context.Context, secret string) (secrets.Version, error) {
	if err := secrets.ValidateName(secret); err != nil {
		return secrets.Version{}, err
	}
	return g.access(ctx, secret, "latest")
}

// Get accesses one version by number.
func (g *Store) Get(ctx context.Context, secret, id string) (secrets.Version, error) {
	if err := secrets.ValidateName(secret); err != nil {
		return secrets.Version{}, err
	}
	if _, err := secrets.ParseVersionID(secret, id); err != nil {
		return secrets.Version{}, err
	}
	return g.access(ctx, secret, id)
}

func (g *Store) access(ctx context.Context, secret, version string) (secrets.Version, error) {
	ctx, cancel := g.callCtx(ctx)
	defer cancel()
	name := g.versionName(secret, version)
	resp, err := g.client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name})
	if err != nil {
		return secrets.Version{}, mapGCPErr("access "+name, err, secrets.ErrVersionUnavailable)
	}
	data := resp.GetPayload().GetData()
	// Secret Manager always sends the checksum; a response without one is
	// accepted (there is nothing to check), a wrong one is not.
	if want := resp.GetPayload().DataCrc32C; want != nil && int64(crc32.Checksum(data, castagnoli)) != *want {
		return secrets.Version{}, fmt.Errorf("access %s: CRC32C mismatch: %w", name, secrets.ErrCorrupt)
	}
	id := lastSegment(resp.GetName())
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		return secrets.Version{}, fmt.Errorf("access %s: response names no version number (%q): %w", name, resp.GetName(), secrets.ErrUnavailable)
	}
	if data == nil {
		data = []byte{}
	}
	return secrets.Version{Secret: secret, ID: id, Payload: data}, nil
}

// Add appends a version with its CRC32C, so Secret Manager rejects a payload
// damaged on the way. The secret must exist (creating one needs the admin
// role and a replication policy: that is deployment's job).
func (g *Store) Add(ctx context.Context, secret string, payload []byte) (string, error) {
	if err := secrets.ValidateName(secret); err != nil {
		return "", err
	}
	if err := secrets.ValidatePayload(secret, payload); err != nil {
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
func (g *Store) Versions(ctx context.Context, secret string) ([]secrets.VersionInfo, error) {
	if err := secrets.ValidateName(secret); err != nil {
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
		info secrets.VersionInfo
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
		var state secrets.VersionState
		switch v.GetState() {
		case secretmanagerpb.SecretVersion_ENABLED:
			state = secrets.StateEnabled
		case secretmanagerpb.SecretVersion_DISABLED:
			state = secrets.StateDisabled
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
		info := secrets.VersionInfo{ID: id, State: state}
		if ct := v.GetCreateTime(); ct != nil {
			info.Created = ct.AsTime()
		}
		found = append(found, numbered{n, info})
	}
	slices.SortFunc(found, func(a, b numbered) int { return cmp.Compare(b.n, a.n) })
	out := make([]secrets.VersionInfo, len(found))
	for i, f := range found {
		out[i] = f.info
	}
	return out, nil
}

// Destroy destroys one version; destroying it again is secrets.ErrVersionUnavailable.
func (g *Store) Destroy(ctx context.Context, secret, id string) error {
	if err := secrets.ValidateName(secret); err != nil {
		return err
	}
	if _, err := secrets.ParseVersionID(secret, id); err != nil {
		return err
	}
	ctx, cancel := g.callCtx(ctx)
	defer cancel()
	name := g.versionName(secret, id)
	if _, err := g.client.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: name}); err != nil {
		return mapGCPErr("destroy "+name, err, secrets.ErrVersionUnavailable)
	}
	return nil
}

// TryLease writes the lease annotation, "holder|expiry|ttl", with the etag
// just read, so of two writers racing for it exactly one wins; the other
// sees secrets.ErrLeaseHeld. The same holder may take it again, which extends it.
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
func (g *Store) TryLease(ctx context.Context, secret, holder string, ttl time.Duration) (secrets.Lease, error) {
	if err := secrets.ValidateLeaseArgs(secret, holder, ttl); err != nil {
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
	if err != nil && errors.Is(err, secrets.ErrLeaseHeld) {
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
func (g *Store) takeLease(ctx context.Context, secret, holder string, ttl time.Duration, s *secretmanagerpb.Secret) (secrets.Lease, error) {
	name := g.secretName(secret)
	now := g.now()
	value := s.GetAnnotations()[LeaseAnnotation]
	if l, ok := parseLease(value); ok && l.Holder != holder {
		over, fixed := secrets.JudgeLease(l, g.sighting(secret, value, now), now, ttl, g.leaseSkew())
		if fixed != nil {
			if _, err := g.writeLease(ctx, s, formatLease(*fixed)); err == nil {
				g.sighting(secret, formatLease(*fixed), now)
			}
			return nil, fmt.Errorf("lease on %s held by %s (its expiry, %s, was ahead of this clock by more than the allowance: judged as until %s): %w",
				name, l.Holder, l.Expiry.Format(time.RFC3339), fixed.Expiry.Format(time.RFC3339), secrets.ErrLeaseHeld)
		}
		if !over {
			return nil, fmt.Errorf("lease on %s held by %s (expiry %s as written): %w", name, l.Holder, l.Expiry.Format(time.RFC3339), secrets.ErrLeaseHeld)
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
func (g *Store) lastWritten(secret string) *secretmanagerpb.Secret {
	g.seenMu.Lock()
	defer g.seenMu.Unlock()
	return g.written[secret]
}

func (g *Store) leaseSkew() time.Duration {
	if g.LeaseSkew > 0 {
		return g.LeaseSkew
	}
	return secrets.DefaultLeaseSkew
}

// sighting returns when this client first saw value as the secret's lease
// annotation (now, if it never did before or saw another value since).
func (g *Store) sighting(secret, value string, now time.Time) time.Time {
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
func (g *Store) writeLease(ctx context.Context, s *secretmanagerpb.Secret, value string) (*secretmanagerpb.Secret, error) {
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
		return nil, fmt.Errorf("lease on %s: changed since read (etag): %w", s.GetName(), &gcpError{kind: secrets.ErrLeaseHeld, cause: err})
	}
	return nil, mapGCPErr("write lease on "+s.GetName(), err, nil)
}

type gcpLease struct {
	g      *Store
	secret string
	holder string
	ttl    time.Duration

	mu   sync.Mutex
	last *secretmanagerpb.Secret // as our last write of the annotation left it (its etag)
}

func (l *gcpLease) value(now time.Time) string {
	return formatLease(secrets.LeaseClaim{Holder: l.holder, Expiry: now.Add(l.ttl), TTL: l.ttl})
}

// Renew rewrites the annotation with a new expiry, guarded by the etag of
// our last write: only a write tells for sure, since reads of a secret's
// metadata are eventually consistent. If the etag moved (another annotation
// changed, or someone took the lease) the secret is read again, and the
// lease renewed only if it still names this holder; otherwise, or if the
// etag keeps moving, it is secrets.ErrLeaseLost.
func (l *gcpLease) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, cancel := l.g.callCtx(ctx)
	defer cancel()
	name := l.g.secretName(l.secret)
	s := l.last
	var (
		attempts int
		settled  bool // the last try ended it: renewed, taken over, or a failure other than the etag moving
	)
	err := retry.Do(ctx, etagRetries(2), func(ctx context.Context) error {
		attempts++
		if attempts > 1 {
			var err error
			if s, err = l.g.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name}); err != nil {
				settled = true
				return mapGCPErr("renew lease on "+name, err, nil)
			}
			if cur, ok := parseLease(s.GetAnnotations()[LeaseAnnotation]); !ok || cur.Holder != l.holder {
				settled = true
				return fmt.Errorf("renew lease on %s: taken over: %w", name, secrets.ErrLeaseLost)
			}
		}
		updated, err := l.g.writeLease(ctx, s, l.value(l.g.now()))
		if err == nil {
			l.last = updated
		}
		settled = !errors.Is(err, secrets.ErrLeaseHeld)
		return retryIfEtagMoved(err)
	})
	switch {
	case settled:
		return err
	case errors.Is(err, secrets.ErrLeaseHeld):
		return fmt.Errorf("renew lease on %s: the secret keeps changing: %w", name, secrets.ErrLeaseLost)
	default: // ctx ended between two tries: what the next call would have said
		return mapGCPErr("renew lease on "+name, err, nil)
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
		if _, err := l.g.writeLease(ctx, last, ""); err == nil || !errors.Is(err, secrets.ErrLeaseHeld) {
			return err
		}
	}
	settled := false // the last try ended it: released, not ours, or a failure other than the etag moving
	err := retry.Do(ctx, etagRetries(2), func(ctx context.Context) error {
		s, err := l.g.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name})
		if err != nil {
			settled = true
			return mapGCPErr("release lease on "+name, err, nil)
		}
		if cur, ok := parseLease(s.GetAnnotations()[LeaseAnnotation]); !ok || cur.Holder != l.holder {
			settled = true
			return nil // expired and taken over, or already released
		}
		_, err = l.g.writeLease(ctx, s, "")
		settled = !errors.Is(err, secrets.ErrLeaseHeld)
		return retryIfEtagMoved(err)
	})
	switch {
	case settled:
		return err
	case errors.Is(err, secrets.ErrLeaseHeld):
		return fmt.Errorf("release lease on %s: %w", name, err)
	default: // ctx ended between two tries: what the next call would have said
		return mapGCPErr("release lease on "+name, err, nil)
	}
}

// etagRetries is the policy for a write that lost an etag race: read
// again and retry at once, since the etag, not time, decides; at most
// retries more writes.
func etagRetries(retries uint64) retry.Backoff {
	return retry.WithMaxRetries(retries, retry.BackoffFunc(func() (time.Duration, bool) { return 0, false }))
}

// retryIfEtagMoved marks a lease write that lost to a concurrent change of
// the secret (secrets.ErrLeaseHeld from writeLease) for another try.
func retryIfEtagMoved(err error) error {
	if errors.Is(err, secrets.ErrLeaseHeld) {
		return retry.RetryableError(err)
	}
	return err
}

// formatLease writes a claim as the annotation's content, "holder|expiry|ttl".
func formatLease(c secrets.LeaseClaim) string {
	return c.Holder + "|" + c.Expiry.UTC().Format(time.RFC3339Nano) + "|" + c.TTL.String()
}

// parseLease reads "holder|expiry|ttl" or the older "holder|expiry". A
// value that does not parse is treated as no lease, so a damaged annotation
// cannot lock the secret forever.
func parseLease(v string) (secrets.LeaseClaim, bool) {
	var out secrets.LeaseClaim
	if i := strings.LastIndexByte(v, '|'); i > 0 {
		if d, err := time.ParseDuration(v[i+1:]); err == nil && d > 0 {
			out.TTL = d
			v = v[:i]
		}
	}
	i := strings.LastIndexByte(v, '|')
	if i <= 0 {
		return secrets.LeaseClaim{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v[i+1:])
	if err != nil {
		return secrets.LeaseClaim{}, false
	}
	out.Holder, out.Expiry = v[:i], t
	return out, true
}

// gcpError carries both the package's error kind and the original gRPC error,
// so errors.Is(err, secrets.ErrNotFound) and status.Code(err) both work and the
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
			kind = secrets.ErrNotFound
		case codes.FailedPrecondition:
			kind = onPrecondition
		case codes.PermissionDenied, codes.Unauthenticated:
			kind = secrets.ErrPermissionDenied
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted,
			codes.Internal, codes.Aborted, codes.Unknown:
			kind = secrets.ErrUnavailable
		case codes.DataLoss:
			kind = secrets.ErrCorrupt
		}
	} else if errors.Is(err, context.DeadlineExceeded) {
		// The client's retry loop gives up with the bare context error when
		// the deadline falls inside a backoff pause.
		kind = secrets.ErrUnavailable
	}
	if kind == nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w", op, &gcpError{kind: kind, cause: err})
}

func lastSegment(name string) string {
	return name[strings.LastIndexByte(name, '/')+1:]
}
