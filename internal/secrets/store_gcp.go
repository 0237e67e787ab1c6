package secrets

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strconv"
	"strings"
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

// GCP is the Secret Manager backend.
type GCP struct {
	client  *secretmanager.Client
	project string
	clock   clock.Clock
	// Deadline bounds every call; the client's own default is 60 s, too long
	// for a request handler.
	Deadline time.Duration
}

var _ Store = (*GCP)(nil)

// leaseAnnotation holds "holder|RFC3339 expiry" on the secret while a writer
// refreshes. Secret Manager has no compare-and-swap on AddSecretVersion, but
// UpdateSecret honours the secret's etag: that makes the annotation a lock.
const leaseAnnotation = "offpeak-lease"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewGCP connects to Secret Manager for project.
func NewGCP(ctx context.Context, project string, opts ...option.ClientOption) (*GCP, error) {
	c, err := secretmanager.NewClient(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return NewGCPFromClient(c, project, clock.Real{}), nil
}

// NewGCPFromClient wraps an existing client; clk times the lease.
func NewGCPFromClient(c *secretmanager.Client, project string, clk clock.Clock) *GCP {
	if clk == nil {
		clk = clock.Real{}
	}
	return &GCP{client: c, project: project, clock: clk, Deadline: 10 * time.Second}
}

// Close closes the client.
func (g *GCP) Close() error { return g.client.Close() }

func (g *GCP) secretName(secret string) string {
	return "projects/" + g.project + "/secrets/" + secret
}

func (g *GCP) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, g.Deadline)
}

// Latest implements Store.
func (g *GCP) Latest(ctx context.Context, secret string) (Version, error) {
	return g.access(ctx, secret, "latest")
}

// Get implements Store.
func (g *GCP) Get(ctx context.Context, secret, id string) (Version, error) {
	if _, err := strconv.Atoi(id); err != nil {
		return Version{}, fmt.Errorf("access %s/%s: %w", secret, id, ErrNotFound)
	}
	return g.access(ctx, secret, id)
}

func (g *GCP) access(ctx context.Context, secret, id string) (Version, error) {
	ctx, cancel := g.ctx(ctx)
	defer cancel()
	name := g.secretName(secret) + "/versions/" + id
	resp, err := g.client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name})
	if err != nil {
		return Version{}, mapErr("access "+secret+"/"+id, err)
	}
	data := resp.GetPayload().GetData()
	if want := resp.GetPayload().DataCrc32C; want != nil && int64(crc32.Checksum(data, castagnoli)) != *want {
		return Version{}, fmt.Errorf("access %s/%s: %w: CRC32C mismatch", secret, id, ErrCorrupt)
	}
	return Version{Secret: secret, ID: lastSegment(resp.GetName()), Payload: data}, nil
}

// Add implements Store.
func (g *GCP) Add(ctx context.Context, secret string, payload []byte) (string, error) {
	ctx, cancel := g.ctx(ctx)
	defer cancel()
	sum := int64(crc32.Checksum(payload, castagnoli))
	v, err := g.client.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent:  g.secretName(secret),
		Payload: &secretmanagerpb.SecretPayload{Data: payload, DataCrc32C: &sum},
	})
	if err != nil {
		return "", mapErr("add version to "+secret, err)
	}
	return lastSegment(v.GetName()), nil
}

// Versions implements Store: enabled and disabled versions (both are billed),
// newest first.
func (g *GCP) Versions(ctx context.Context, secret string) ([]VersionInfo, error) {
	ctx, cancel := g.ctx(ctx)
	defer cancel()
	it := g.client.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{
		Parent: g.secretName(secret), Filter: "state:(ENABLED OR DISABLED)",
	})
	var out []VersionInfo
	for {
		v, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, mapErr("list versions of "+secret, err)
		}
		st := StateEnabled
		switch v.GetState() {
		case secretmanagerpb.SecretVersion_DESTROYED:
			continue // a fake or an old server may ignore the filter
		case secretmanagerpb.SecretVersion_DISABLED:
			st = StateDisabled
		}
		info := VersionInfo{ID: lastSegment(v.GetName()), State: st}
		if ct := v.GetCreateTime(); ct != nil {
			info.Created = ct.AsTime()
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return versionNum(out[i].ID) > versionNum(out[j].ID) })
	return out, nil
}

// Destroy implements Store.
func (g *GCP) Destroy(ctx context.Context, secret, id string) error {
	ctx, cancel := g.ctx(ctx)
	defer cancel()
	_, err := g.client.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: g.secretName(secret) + "/versions/" + id})
	if err != nil {
		return mapErr("destroy "+secret+"/"+id, err)
	}
	return nil
}

// TryLease implements Store with an etag-guarded annotation on the secret.
// A holder that crashes loses the lease when ttl runs out.
func (g *GCP) TryLease(ctx context.Context, secret, holder string, ttl time.Duration) (Lease, error) {
	ctx, cancel := g.ctx(ctx)
	defer cancel()
	s, err := g.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: g.secretName(secret)})
	if err != nil {
		return nil, mapErr("read lease on "+secret, err)
	}
	now := g.clock.Now()
	if h, exp, ok := parseLease(s.GetAnnotations()[leaseAnnotation]); ok && h != holder && now.Before(exp) {
		return nil, fmt.Errorf("lease %s held by %s until %s: %w", secret, h, exp.Format(time.RFC3339), ErrLeaseHeld)
	}
	value := holder + "|" + now.Add(ttl).UTC().Format(time.RFC3339Nano)
	if err := g.setLease(ctx, s, value); err != nil {
		return nil, err
	}
	return &gcpLease{g: g, secret: secret, value: value}, nil
}

func (g *GCP) setLease(ctx context.Context, s *secretmanagerpb.Secret, value string) error {
	ann := map[string]string{}
	for k, v := range s.GetAnnotations() {
		ann[k] = v
	}
	if value == "" {
		delete(ann, leaseAnnotation)
	} else {
		ann[leaseAnnotation] = value
	}
	_, err := g.client.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: s.GetName(), Etag: s.GetEtag(), Annotations: ann},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"annotations"}},
	})
	if err == nil {
		return nil
	}
	if c := status.Code(err); c == codes.FailedPrecondition || c == codes.Aborted {
		return fmt.Errorf("lease on %s: another writer updated it first: %w", lastSegment(s.GetName()), ErrLeaseHeld)
	}
	return mapErr("write lease on "+lastSegment(s.GetName()), err)
}

type gcpLease struct {
	g      *GCP
	secret string
	value  string
}

// Release removes the annotation if it is still ours.
func (l *gcpLease) Release(ctx context.Context) error {
	ctx, cancel := l.g.ctx(ctx)
	defer cancel()
	s, err := l.g.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: l.g.secretName(l.secret)})
	if err != nil {
		return mapErr("read lease on "+l.secret, err)
	}
	if s.GetAnnotations()[leaseAnnotation] != l.value {
		return nil // expired and taken over: not ours to remove
	}
	return l.g.setLease(ctx, s, "")
}

func parseLease(v string) (holder string, expires time.Time, ok bool) {
	h, e, found := strings.Cut(v, "|")
	if !found {
		return "", time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, e)
	if err != nil {
		return "", time.Time{}, false
	}
	return h, t, true
}

// mapErr turns a gRPC status into the package's error kinds, keeping the
// status for errors.As. Secret Manager's messages name resources, never
// payloads.
func mapErr(op string, err error) error {
	var kind error
	switch status.Code(err) {
	case codes.NotFound:
		kind = ErrNotFound
	case codes.FailedPrecondition:
		kind = ErrVersionUnavailable
	case codes.PermissionDenied, codes.Unauthenticated:
		kind = ErrPermissionDenied
	case codes.DataLoss:
		kind = ErrCorrupt
	case codes.InvalidArgument, codes.AlreadyExists, codes.OutOfRange:
		return fmt.Errorf("%s: %w", op, err)
	default: // Unavailable, DeadlineExceeded, ResourceExhausted, Internal, Aborted, Unknown, Canceled
		kind = ErrUnavailable
	}
	return fmt.Errorf("%s: %w: %w", op, kind, err)
}

func lastSegment(name string) string {
	if i := strings.LastIndex(name, "/"); i >= 0 {
		return name[i+1:]
	}
	return name
}
