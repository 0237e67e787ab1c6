// Package smfake is an in-process fake of Google Secret Manager's gRPC API.
// The real Go client talks to it over loopback, so tests exercise the real
// request building, resource names, status codes and retries:
//
//	fake := smfake.New()
//	if _, err := fake.Start(); err != nil { … }
//	defer fake.Stop()
//	_ = fake.CreateSecret("proj", "fleet-tokens")
//	store, err := secretmanager.New(ctx, "proj", fake.ClientOptions()...) // internal/secrets/secretmanager
//
// It keeps Secret Manager's rules where this project depends on them, and
// is no kinder than the service:
//
//   - versions numbered from 1 and never reused; latest resolves to the
//     highest number whatever its state (a destroyed or disabled latest
//     fails access with FAILED_PRECONDITION); payloads of at most 64 KiB;
//     CRC32C checked on add and returned on access;
//   - etags on secrets and versions, checked by UpdateSecret, DeleteSecret
//     and the version state changes (a mismatch is FAILED_PRECONDITION);
//   - consistency (https://cloud.google.com/secret-manager/docs/reference/consistency):
//     only a version accessed by its number is strongly consistent; with
//     SetLag, the latest alias, secret metadata (GetSecret: annotations,
//     etag) and listings show the state of SetLag ago on the fake's clock;
//   - ListSecretVersions' filter in the API's list-filtering language
//     (https://cloud.google.com/secret-manager/docs/filtering): terms on
//     name, state, create_time, destroy_time and scheduled_destroy_time,
//     AND / OR / NOT and parentheses; anything else (an unknown field, a
//     regular expression, which the API does not support) is INVALID_ARGUMENT;
//   - annotation keys and sizes as the Secret resource documents them
//     (https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets):
//     keys of 1–63 characters (at most 128 bytes), beginning and ending with
//     an alphanumeric, with dashes, underscores and dots between; keys and
//     values together under 16 KiB;
//   - create, destroy and scheduled destroy times from the fake's clock
//     (SetClock), so tests that move a manual clock age versions;
//   - delayed destruction (https://cloud.google.com/secret-manager/docs/delay-destroy):
//     with a secret's version_destroy_ttl set, destroying a version disables
//     it and schedules its destruction for ttl later; enabling it cancels.
//
// Faults can be injected per method, before the call touches state
// (FailNext) or after it committed (FailNextAfterCommit: the caller sees an
// error although the write happened, as after a deadline). Not modelled:
// IAM, replication, aliases in version names, expiry, rotation and topics.
//
// A Server is safe for concurrent use.
package smfake

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

// MaxPayload is Secret Manager's limit on one version's payload.
const MaxPayload = 64 << 10

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	idPattern  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
)

// Server is the fake. Its exported methods are test helpers; the RPCs are
// served by an unexported adapter registered on a grpc.Server by Start or
// Register (so the helper can be called CreateSecret, like the RPC).
type Server struct {
	mu      sync.Mutex
	secrets map[string]*secret // by resource name projects/P/secrets/S
	etagSeq int64
	calls   map[string]int
	faults  map[string]fault
	after   map[string]fault // faults that strike after the call committed
	corrupt int
	before  map[string][]func()
	lag     time.Duration // of the latest alias and the listings
	metaLag time.Duration // of GetSecret

	gs    *grpc.Server
	addr  string
	clock clock.Clock
}

// SetClock makes the fake take its time from c, Secret Manager's own clock
// (default: the wall clock): create and destroy times come from it, so tests
// that move a manual clock see versions age with it.
func (s *Server) SetClock(c clock.Clock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = c
}

// now is the fake's time. Callers hold s.mu.
func (s *Server) now() time.Time {
	if s.clock == nil {
		return time.Now()
	}
	return s.clock.Now()
}

type secret struct {
	meta     *secretmanagerpb.Secret
	versions []*version // index i holds version i+1
	history  []metaSnap // every state of meta, oldest first (for SetLag)
}

type metaSnap struct {
	at   time.Time
	meta *secretmanagerpb.Secret
}

type version struct {
	meta    *secretmanagerpb.SecretVersion
	payload []byte      // nil once destroyed
	states  []stateSnap // every state, oldest first (for SetLag)
}

type stateSnap struct {
	at    time.Time
	state secretmanagerpb.SecretVersion_State
}

type fault struct {
	code codes.Code
	n    int
}

// New returns an empty fake; call Start (or Register) to serve it.
func New() *Server {
	return &Server{
		secrets: make(map[string]*secret),
		calls:   make(map[string]int),
		faults:  make(map[string]fault),
		after:   make(map[string]fault),
		before:  make(map[string][]func()),
	}
}

// Start serves the fake on a new 127.0.0.1 port and returns its address.
func (s *Server) Start() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gs != nil {
		return "", errors.New("smfake: already started")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("smfake: listen: %w", err)
	}
	s.gs = grpc.NewServer(grpc.UnaryInterceptor(s.intercept))
	secretmanagerpb.RegisterSecretManagerServiceServer(s.gs, &rpc{s: s})
	s.addr = lis.Addr().String()
	go func() { _ = s.gs.Serve(lis) }()
	return s.addr, nil
}

// Register serves the fake on a grpc.Server of the caller's (e.g. one on a
// bufconn listener). Faults and counters then need the interceptor too:
// build that server with grpc.UnaryInterceptor(s.Interceptor()).
func (s *Server) Register(reg grpc.ServiceRegistrar) {
	secretmanagerpb.RegisterSecretManagerServiceServer(reg, &rpc{s: s})
}

// Interceptor returns the unary interceptor that counts calls and injects
// faults; Start installs it itself.
func (s *Server) Interceptor() grpc.UnaryServerInterceptor { return s.intercept }

// Stop stops serving at once, closing open connections.
func (s *Server) Stop() {
	s.mu.Lock()
	gs := s.gs
	s.mu.Unlock()
	if gs != nil {
		gs.Stop()
	}
}

// Addr returns the address Start listens on ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ClientOptions point the real client at the started fake: plaintext gRPC, no
// credentials.
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.Addr()),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// FailNext makes the next n calls of method (the RPC's short name, e.g.
// "AccessSecretVersion") fail with code before they touch any state. A later
// FailNext for the same method replaces the earlier; n <= 0 clears it.
func (s *Server) FailNext(method string, code codes.Code, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.faults, method)
		return
	}
	s.faults[method] = fault{code: code, n: n}
}

// FailNextAfterCommit makes the next n calls of method do their work and
// then fail with code, as a call whose deadline passed after the service
// committed: an AddSecretVersion so failed did add its version. n <= 0
// clears it.
func (s *Server) FailNextAfterCommit(method string, code codes.Code, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.after, method)
		return
	}
	s.after[method] = fault{code: code, n: n}
}

// SetLag makes the eventually consistent reads lag by d on the fake's
// clock: the latest alias resolves among the versions created at least d
// ago, GetSecret answers with the secret as it was d ago (its etag too:
// UpdateSecret with it then fails, as with any stale etag), and
// ListSecretVersions lists the versions and states of d ago. Access by
// version number, and every write, stay strongly consistent. 0 turns it off.
func (s *Server) SetLag(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lag = max(d, 0)
	s.metaLag = s.lag
}

// SetMetadataLag sets GetSecret's lag alone (after SetLag): the service's
// eventually consistent reads need not lag alike.
func (s *Server) SetMetadataLag(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metaLag = max(d, 0)
}

// DeleteSecret deletes a secret and all its versions, as the RPC would;
// CreateSecret may then make it again, numbered from 1.
func (s *Server) DeleteSecret(project, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := secretName(project, id)
	if _, ok := s.secrets[name]; !ok {
		return status.Errorf(codes.NotFound, "Secret [%s] not found.", name)
	}
	delete(s.secrets, name)
	return nil
}

// CorruptNextAccess makes the next n successful AccessSecretVersion responses
// carry a wrong data_crc32c (the payload itself is intact).
func (s *Server) CorruptNextAccess(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt = max(n, 0)
}

// BeforeNext runs fn once, just before the next call of method is handled
// (after it is counted, before faults). Tests use it to interleave another
// client between a read and a write, e.g. to lose an etag race on purpose.
// fn may call the fake itself.
func (s *Server) BeforeNext(method string, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before[method] = append(s.before[method], fn)
}

// Calls reports how many calls of method (short name) the fake received,
// failed ones included.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// ActiveVersions counts a secret's enabled and disabled versions: what
// Google bills for.
func (s *Server) ActiveVersions(project, secretID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[secretName(project, secretID)]
	if !ok {
		return 0
	}
	s.settle(sec)
	n := 0
	for _, v := range sec.versions {
		if v.meta.GetState() != secretmanagerpb.SecretVersion_DESTROYED {
			n++
		}
	}
	return n
}

// CreateSecret creates an empty secret, as the RPC would; it fails if the
// secret exists.
func (s *Server) CreateSecret(project, id string) error {
	_, err := s.createSecret("projects/"+project, id, nil)
	return err
}

// AddVersion appends a version to an existing secret and returns its number.
func (s *Server) AddVersion(project, secretID string, payload []byte) (string, error) {
	v, err := s.addVersion(secretName(project, secretID), &secretmanagerpb.SecretPayload{Data: payload})
	if err != nil {
		return "", err
	}
	return path.Base(v.GetName()), nil
}

// Annotations returns a copy of a secret's annotations (nil if it does not exist).
func (s *Server) Annotations(project, secretID string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[secretName(project, secretID)]
	if !ok {
		return nil
	}
	return maps.Clone(sec.meta.GetAnnotations())
}

// VersionState returns a version's state (STATE_UNSPECIFIED if it does not exist).
func (s *Server) VersionState(project, secretID, id string) secretmanagerpb.SecretVersion_State {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, v, err := s.lookupVersion(secretName(project, secretID) + "/versions/" + id)
	if err != nil {
		return secretmanagerpb.SecretVersion_STATE_UNSPECIFIED
	}
	return v.meta.GetState()
}

func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := path.Base(info.FullMethod)
	s.mu.Lock()
	s.calls[method]++
	var hook func()
	if q := s.before[method]; len(q) > 0 {
		hook = q[0]
		if len(q) == 1 {
			delete(s.before, method)
		} else {
			s.before[method] = q[1:]
		}
	}
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	s.mu.Lock()
	f, failing := s.faults[method]
	if failing {
		if f.n--; f.n <= 0 {
			delete(s.faults, method)
		} else {
			s.faults[method] = f
		}
	}
	s.mu.Unlock()
	if failing {
		return nil, status.Errorf(f.code, "smfake: injected %s on %s", f.code, method)
	}
	resp, err := handler(ctx, req)
	if err != nil {
		return resp, err
	}
	s.mu.Lock()
	f, failing = s.after[method]
	if failing {
		if f.n--; f.n <= 0 {
			delete(s.after, method)
		} else {
			s.after[method] = f
		}
	}
	s.mu.Unlock()
	if failing {
		return nil, status.Errorf(f.code, "smfake: injected %s on %s after it committed", f.code, method)
	}
	return resp, nil
}

func secretName(project, id string) string { return "projects/" + project + "/secrets/" + id }

// nextEtag returns a fresh etag. Callers hold s.mu.
func (s *Server) nextEtag() string {
	s.etagSeq++
	return `"` + strconv.FormatInt(s.etagSeq, 10) + `"`
}

// splitSecret checks projects/P/secrets/S.
func splitSecret(name string) error {
	p := strings.Split(name, "/")
	if len(p) != 4 || p[0] != "projects" || p[1] == "" || p[2] != "secrets" || !idPattern.MatchString(p[3]) {
		return status.Errorf(codes.InvalidArgument, "invalid secret name %q", name)
	}
	return nil
}

// lookupSecret finds a secret by resource name. Callers hold s.mu.
func (s *Server) lookupSecret(name string) (*secret, error) {
	if err := splitSecret(name); err != nil {
		return nil, err
	}
	sec, ok := s.secrets[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", name)
	}
	return sec, nil
}

// lookupVersion resolves projects/P/secrets/S/versions/{N|latest}. The
// latest alias is eventually consistent (SetLag); a number is not. Callers
// hold s.mu.
func (s *Server) lookupVersion(name string) (*secret, *version, error) {
	parent, id, ok := strings.Cut(name, "/versions/")
	if !ok {
		return nil, nil, status.Errorf(codes.InvalidArgument, "invalid secret version name %q", name)
	}
	sec, err := s.lookupSecret(parent)
	if err != nil {
		return nil, nil, err
	}
	s.settle(sec)
	var n int
	if id == "latest" {
		n = len(sec.versions)
		for cut := s.cut(); n > 0 && sec.versions[n-1].meta.GetCreateTime().AsTime().After(cut); n-- {
		}
	} else {
		n, err = strconv.Atoi(id)
		if err != nil || n <= 0 || strconv.Itoa(n) != id {
			return nil, nil, status.Errorf(codes.InvalidArgument, "invalid secret version id %q", id)
		}
	}
	if n == 0 || n > len(sec.versions) {
		return nil, nil, status.Errorf(codes.NotFound, "Secret Version [%s] not found.", name)
	}
	return sec, sec.versions[n-1], nil
}

// cut is the moment the eventually consistent reads see. Callers hold s.mu.
func (s *Server) cut() time.Time { return s.now().Add(-s.lag) }

// settle destroys the versions whose scheduled destruction is due.
// Callers hold s.mu.
func (s *Server) settle(sec *secret) {
	now := s.now()
	for _, v := range sec.versions {
		if st := v.meta.GetScheduledDestroyTime(); st != nil && !now.Before(st.AsTime()) {
			v.meta.State = secretmanagerpb.SecretVersion_DESTROYED
			v.meta.DestroyTime = st
			v.meta.ScheduledDestroyTime = nil
			v.meta.Etag = s.nextEtag()
			v.payload = nil
			v.states = append(v.states, stateSnap{at: st.AsTime(), state: secretmanagerpb.SecretVersion_DESTROYED})
		}
	}
}

// snapshot records the secret's metadata as it is now. Callers hold s.mu.
func (s *Server) snapshot(sec *secret) {
	sec.history = append(sec.history, metaSnap{at: s.now(), meta: proto.Clone(sec.meta).(*secretmanagerpb.Secret)})
	if len(sec.history) > 64 {
		sec.history = sec.history[len(sec.history)-64:]
	}
}

// metaAt is the secret's metadata as the eventually consistent reads see
// it (nil: not created yet then). Callers hold s.mu.
func (s *Server) metaAt(sec *secret) *secretmanagerpb.Secret {
	if s.metaLag <= 0 {
		return sec.meta
	}
	cut := s.now().Add(-s.metaLag)
	for i := len(sec.history) - 1; i >= 0; i-- {
		if !sec.history[i].at.After(cut) {
			return sec.history[i].meta
		}
	}
	if len(sec.history) > 0 && len(sec.history) == 64 {
		return sec.history[0].meta // older than what is kept: the oldest known
	}
	return nil
}

// stateAt is a version's state as the listing sees it. Callers hold s.mu.
func (s *Server) stateAt(v *version) secretmanagerpb.SecretVersion_State {
	if s.lag <= 0 {
		return v.meta.GetState()
	}
	cut := s.cut()
	for i := len(v.states) - 1; i >= 0; i-- {
		if !v.states[i].at.After(cut) {
			return v.states[i].state
		}
	}
	return v.meta.GetState()
}

// annotationKey is the documented rule for annotation keys.
var annotationKey = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9._-]{0,61}[a-zA-Z0-9])?$`)

// checkAnnotations applies the Secret resource's documented limits.
func checkAnnotations(ann map[string]string) error {
	total := 0
	for k, v := range ann {
		if len(k) > 128 || !annotationKey.MatchString(k) {
			return status.Errorf(codes.InvalidArgument, "invalid annotation key %q: 1-63 characters, beginning and ending with [a-z0-9A-Z], with dashes, underscores, dots and alphanumerics between", k)
		}
		total += len(k) + len(v)
	}
	if total >= 16<<10 {
		return status.Errorf(codes.InvalidArgument, "annotations total %d bytes; keys and values must be less than 16KiB", total)
	}
	return nil
}

func checkDestroyTTL(d *durationpb.Duration) error {
	if d == nil {
		return nil
	}
	// The documented range of a delayed destruction: 1 day to 1000 days.
	if ttl := d.AsDuration(); ttl < 24*time.Hour || ttl > 1000*24*time.Hour {
		return status.Errorf(codes.InvalidArgument, "version_destroy_ttl %s is outside 1 day to 1000 days", ttl)
	}
	return nil
}

func (s *Server) createSecret(parent, id string, tmpl *secretmanagerpb.Secret) (*secretmanagerpb.Secret, error) {
	p := strings.Split(parent, "/")
	if len(p) != 2 || p[0] != "projects" || p[1] == "" {
		return nil, status.Errorf(codes.InvalidArgument, "invalid parent %q", parent)
	}
	if !idPattern.MatchString(id) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid secret id %q", id)
	}
	if err := checkAnnotations(tmpl.GetAnnotations()); err != nil {
		return nil, err
	}
	if err := checkDestroyTTL(tmpl.GetVersionDestroyTtl()); err != nil {
		return nil, err
	}
	name := parent + "/secrets/" + id
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Secret [%s] already exists.", name)
	}
	meta := &secretmanagerpb.Secret{}
	if tmpl != nil {
		meta = proto.Clone(tmpl).(*secretmanagerpb.Secret)
	}
	meta.Name = name
	meta.CreateTime = timestamppb.New(s.now())
	meta.Etag = s.nextEtag()
	sec := &secret{meta: meta}
	s.secrets[name] = sec
	s.snapshot(sec)
	return proto.Clone(meta).(*secretmanagerpb.Secret), nil
}

func (s *Server) addVersion(parent string, payload *secretmanagerpb.SecretPayload) (*secretmanagerpb.SecretVersion, error) {
	data := payload.GetData()
	if len(data) > MaxPayload {
		return nil, status.Errorf(codes.InvalidArgument, "payload of %d bytes exceeds the limit of %d bytes", len(data), MaxPayload)
	}
	if want := payload.DataCrc32C; want != nil && int64(crc32.Checksum(data, castagnoli)) != *want {
		return nil, status.Error(codes.InvalidArgument, "data_crc32c does not match the payload")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookupSecret(parent)
	if err != nil {
		return nil, err
	}
	n := len(sec.versions) + 1
	now := s.now()
	v := &version{
		meta: &secretmanagerpb.SecretVersion{
			Name:                           parent + "/versions/" + strconv.Itoa(n),
			CreateTime:                     timestamppb.New(now),
			State:                          secretmanagerpb.SecretVersion_ENABLED,
			Etag:                           s.nextEtag(),
			ClientSpecifiedPayloadChecksum: payload.DataCrc32C != nil,
		},
		payload: slices.Clone(data),
		states:  []stateSnap{{at: now, state: secretmanagerpb.SecretVersion_ENABLED}},
	}
	sec.versions = append(sec.versions, v)
	return proto.Clone(v.meta).(*secretmanagerpb.SecretVersion), nil
}

// setState moves a version to state, honouring the etag; destroyed versions
// cannot change. With the secret's version_destroy_ttl set, destroying
// disables the version and schedules its destruction instead; enabling or
// disabling it again cancels that. Callers hold s.mu.
func (s *Server) setState(name, etag string, state secretmanagerpb.SecretVersion_State) (*secretmanagerpb.SecretVersion, error) {
	sec, v, err := s.lookupVersion(name)
	if err != nil {
		return nil, err
	}
	if etag != "" && etag != v.meta.GetEtag() {
		return nil, status.Errorf(codes.FailedPrecondition, "etag %s does not match the version's current etag", etag)
	}
	if v.meta.GetState() == secretmanagerpb.SecretVersion_DESTROYED {
		return nil, status.Errorf(codes.FailedPrecondition, "SecretVersion [%s] is in DESTROYED state.", v.meta.GetName())
	}
	now := s.now()
	switch ttl := sec.meta.GetVersionDestroyTtl(); {
	case state == secretmanagerpb.SecretVersion_DESTROYED && ttl != nil && ttl.AsDuration() > 0:
		if v.meta.GetScheduledDestroyTime() == nil {
			v.meta.ScheduledDestroyTime = timestamppb.New(now.Add(ttl.AsDuration()))
		}
		state = secretmanagerpb.SecretVersion_DISABLED
	case state == secretmanagerpb.SecretVersion_DESTROYED:
		v.meta.DestroyTime = timestamppb.New(now)
		v.meta.ScheduledDestroyTime = nil
		v.payload = nil
	default:
		v.meta.ScheduledDestroyTime = nil
	}
	v.meta.State = state
	v.meta.Etag = s.nextEtag()
	v.states = append(v.states, stateSnap{at: now, state: state})
	return proto.Clone(v.meta).(*secretmanagerpb.SecretVersion), nil
}

// rpc serves the gRPC API on the Server's state.
type rpc struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer
	s *Server
}

func (r *rpc) CreateSecret(_ context.Context, req *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	return r.s.createSecret(req.GetParent(), req.GetSecretId(), req.GetSecret())
}

// GetSecret answers with the secret as the eventually consistent read sees
// it (SetLag).
func (r *rpc) GetSecret(_ context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	sec, err := r.s.lookupSecret(req.GetName())
	if err != nil {
		return nil, err
	}
	meta := r.s.metaAt(sec)
	if meta == nil {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", req.GetName())
	}
	return proto.Clone(meta).(*secretmanagerpb.Secret), nil
}

// DeleteSecret deletes a secret with its versions; a non-empty etag must match.
func (r *rpc) DeleteSecret(_ context.Context, req *secretmanagerpb.DeleteSecretRequest) (*emptypb.Empty, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	sec, err := r.s.lookupSecret(req.GetName())
	if err != nil {
		return nil, err
	}
	if req.GetEtag() != "" && req.GetEtag() != sec.meta.GetEtag() {
		return nil, status.Errorf(codes.FailedPrecondition, "etag %s does not match the secret's current etag", req.GetEtag())
	}
	delete(r.s.secrets, req.GetName())
	return &emptypb.Empty{}, nil
}

// UpdateSecret applies the fields named in the update mask (annotations,
// labels, version_aliases: each replaced whole, as Secret Manager does;
// version_destroy_ttl). A non-empty etag must match the secret's current one.
func (r *rpc) UpdateSecret(_ context.Context, req *secretmanagerpb.UpdateSecretRequest) (*secretmanagerpb.Secret, error) {
	in := req.GetSecret()
	paths := req.GetUpdateMask().GetPaths()
	if in == nil || len(paths) == 0 {
		return nil, status.Error(codes.InvalidArgument, "secret and update_mask are required")
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	sec, err := r.s.lookupSecret(in.GetName())
	if err != nil {
		return nil, err
	}
	if in.GetEtag() != "" && in.GetEtag() != sec.meta.GetEtag() {
		return nil, status.Errorf(codes.FailedPrecondition, "etag %s does not match the secret's current etag", in.GetEtag())
	}
	for _, p := range paths {
		switch p {
		case "annotations":
			if err := checkAnnotations(in.GetAnnotations()); err != nil {
				return nil, err
			}
		case "version_destroy_ttl":
			if err := checkDestroyTTL(in.GetVersionDestroyTtl()); err != nil {
				return nil, err
			}
		case "labels", "version_aliases":
		default:
			return nil, status.Errorf(codes.InvalidArgument, "update_mask path %q is not supported by smfake", p)
		}
	}
	for _, p := range paths {
		switch p {
		case "annotations":
			sec.meta.Annotations = maps.Clone(in.GetAnnotations())
		case "labels":
			sec.meta.Labels = maps.Clone(in.GetLabels())
		case "version_aliases":
			sec.meta.VersionAliases = maps.Clone(in.GetVersionAliases())
		case "version_destroy_ttl":
			sec.meta.VersionDestroyTtl = in.GetVersionDestroyTtl()
		}
	}
	sec.meta.Etag = r.s.nextEtag()
	r.s.snapshot(sec)
	return proto.Clone(sec.meta).(*secretmanagerpb.Secret), nil
}

func (r *rpc) AddSecretVersion(_ context.Context, req *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return r.s.addVersion(req.GetParent(), req.GetPayload())
}

// AccessSecretVersion resolves latest to the highest number whatever its
// state; a disabled or destroyed version fails with FAILED_PRECONDITION.
func (r *rpc) AccessSecretVersion(_ context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	_, v, err := r.s.lookupVersion(req.GetName())
	if err != nil {
		return nil, err
	}
	if st := v.meta.GetState(); st != secretmanagerpb.SecretVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "SecretVersion [%s] is in %s state.", v.meta.GetName(), st)
	}
	sum := int64(crc32.Checksum(v.payload, castagnoli))
	if r.s.corrupt > 0 {
		r.s.corrupt--
		sum ^= 0x5a5a5a5a
	}
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name:    v.meta.GetName(),
		Payload: &secretmanagerpb.SecretPayload{Data: slices.Clone(v.payload), DataCrc32C: &sum},
	}, nil
}

func (r *rpc) GetSecretVersion(_ context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	_, v, err := r.s.lookupVersion(req.GetName())
	if err != nil {
		return nil, err
	}
	return proto.Clone(v.meta).(*secretmanagerpb.SecretVersion), nil
}

// ListSecretVersions lists the versions matching the filter, destroyed ones
// included, newest first, as the eventually consistent read sees them
// (SetLag). page_size 0 returns everything; otherwise next_page_token is an
// offset.
func (r *rpc) ListSecretVersions(_ context.Context, req *secretmanagerpb.ListSecretVersionsRequest) (*secretmanagerpb.ListSecretVersionsResponse, error) {
	match, err := parseFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	sec, err := r.s.lookupSecret(req.GetParent())
	if err != nil {
		return nil, err
	}
	r.s.settle(sec)
	cut := r.s.cut()
	var all []*secretmanagerpb.SecretVersion
	for i := len(sec.versions) - 1; i >= 0; i-- {
		v := sec.versions[i]
		if r.s.lag > 0 && v.meta.GetCreateTime().AsTime().After(cut) {
			continue
		}
		meta := proto.Clone(v.meta).(*secretmanagerpb.SecretVersion)
		meta.State = r.s.stateAt(v)
		if match(meta) {
			all = append(all, meta)
		}
	}
	start := 0
	if tok := req.GetPageToken(); tok != "" {
		start, err = strconv.Atoi(tok)
		if err != nil || start < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "invalid page_token %q", tok)
		}
	}
	total := len(all)
	start = min(start, total)
	end := total
	if ps := int(req.GetPageSize()); ps > 0 && start+ps < total {
		end = start + ps
	}
	resp := &secretmanagerpb.ListSecretVersionsResponse{TotalSize: int32(total), Versions: all[start:end]}
	if end < total {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

func (r *rpc) DestroySecretVersion(_ context.Context, req *secretmanagerpb.DestroySecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.s.setState(req.GetName(), req.GetEtag(), secretmanagerpb.SecretVersion_DESTROYED)
}

func (r *rpc) DisableSecretVersion(_ context.Context, req *secretmanagerpb.DisableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.s.setState(req.GetName(), req.GetEtag(), secretmanagerpb.SecretVersion_DISABLED)
}

func (r *rpc) EnableSecretVersion(_ context.Context, req *secretmanagerpb.EnableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.s.setState(req.GetName(), req.GetEtag(), secretmanagerpb.SecretVersion_ENABLED)
}
