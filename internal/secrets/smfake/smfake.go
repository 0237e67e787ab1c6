// Package smfake is an in-process fake of Google Secret Manager's gRPC API.
// The real Go client talks to it over loopback, so tests exercise the real
// request building, resource names, status codes and retries:
//
//	fake := smfake.New()
//	if _, err := fake.Start(); err != nil { … }
//	defer fake.Stop()
//	_ = fake.CreateSecret("proj", "fleet-tokens")
//	store, err := secrets.NewGCP(ctx, "proj", fake.ClientOptions()...)
//
// It keeps Secret Manager's rules where this project depends on them: versions
// numbered from 1 and never reused, latest resolves to the highest number
// whatever its state (a destroyed or disabled latest fails access with
// FAILED_PRECONDITION), payloads of at most 64 KiB, CRC32C checked on add and
// returned on access, etags on secrets and versions checked by UpdateSecret
// and the version state changes (a mismatch is FAILED_PRECONDITION).
// Faults can be injected per method. Not modelled: IAM, replication, aliases
// in version names, list filters (ListSecretVersions ignores them), expiry,
// rotation and topics.
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

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
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
	corrupt int
	before  map[string][]func()

	gs   *grpc.Server
	addr string
}

type secret struct {
	meta     *secretmanagerpb.Secret
	versions []*version // index i holds version i+1
}

type version struct {
	meta    *secretmanagerpb.SecretVersion
	payload []byte // nil once destroyed
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
	return handler(ctx, req)
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

// lookupVersion resolves projects/P/secrets/S/versions/{N|latest}. Callers hold s.mu.
func (s *Server) lookupVersion(name string) (*secret, *version, error) {
	parent, id, ok := strings.Cut(name, "/versions/")
	if !ok {
		return nil, nil, status.Errorf(codes.InvalidArgument, "invalid secret version name %q", name)
	}
	sec, err := s.lookupSecret(parent)
	if err != nil {
		return nil, nil, err
	}
	var n int
	if id == "latest" {
		n = len(sec.versions)
	} else {
		n, err = strconv.Atoi(id)
		if err != nil || n <= 0 {
			return nil, nil, status.Errorf(codes.InvalidArgument, "invalid secret version id %q", id)
		}
	}
	if n == 0 || n > len(sec.versions) {
		return nil, nil, status.Errorf(codes.NotFound, "Secret Version [%s] not found.", name)
	}
	return sec, sec.versions[n-1], nil
}

func (s *Server) createSecret(parent, id string, tmpl *secretmanagerpb.Secret) (*secretmanagerpb.Secret, error) {
	p := strings.Split(parent, "/")
	if len(p) != 2 || p[0] != "projects" || p[1] == "" {
		return nil, status.Errorf(codes.InvalidArgument, "invalid parent %q", parent)
	}
	if !idPattern.MatchString(id) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid secret id %q", id)
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
	meta.CreateTime = timestamppb.Now()
	meta.Etag = s.nextEtag()
	s.secrets[name] = &secret{meta: meta}
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
	v := &version{
		meta: &secretmanagerpb.SecretVersion{
			Name:                           parent + "/versions/" + strconv.Itoa(n),
			CreateTime:                     timestamppb.Now(),
			State:                          secretmanagerpb.SecretVersion_ENABLED,
			Etag:                           s.nextEtag(),
			ClientSpecifiedPayloadChecksum: payload.DataCrc32C != nil,
		},
		payload: slices.Clone(data),
	}
	sec.versions = append(sec.versions, v)
	return proto.Clone(v.meta).(*secretmanagerpb.SecretVersion), nil
}

// setState moves a version to state, honouring the etag; destroyed versions
// cannot change. Callers hold s.mu.
func (s *Server) setState(name, etag string, state secretmanagerpb.SecretVersion_State) (*secretmanagerpb.SecretVersion, error) {
	_, v, err := s.lookupVersion(name)
	if err != nil {
		return nil, err
	}
	if etag != "" && etag != v.meta.GetEtag() {
		return nil, status.Errorf(codes.FailedPrecondition, "etag %s does not match the version's current etag", etag)
	}
	if v.meta.GetState() == secretmanagerpb.SecretVersion_DESTROYED {
		return nil, status.Errorf(codes.FailedPrecondition, "SecretVersion [%s] is in DESTROYED state.", v.meta.GetName())
	}
	v.meta.State = state
	v.meta.Etag = s.nextEtag()
	if state == secretmanagerpb.SecretVersion_DESTROYED {
		v.meta.DestroyTime = timestamppb.Now()
		v.payload = nil
	}
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

func (r *rpc) GetSecret(_ context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	sec, err := r.s.lookupSecret(req.GetName())
	if err != nil {
		return nil, err
	}
	return proto.Clone(sec.meta).(*secretmanagerpb.Secret), nil
}

// UpdateSecret applies the fields named in the update mask (annotations,
// labels, version_aliases: each replaced whole, as Secret Manager does). A
// non-empty etag must match the secret's current one.
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
		case "annotations", "labels", "version_aliases":
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
		}
	}
	sec.meta.Etag = r.s.nextEtag()
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

// ListSecretVersions lists all versions, destroyed ones included, newest
// first. The filter is ignored. page_size 0 returns everything; otherwise
// next_page_token is an offset.
func (r *rpc) ListSecretVersions(_ context.Context, req *secretmanagerpb.ListSecretVersionsRequest) (*secretmanagerpb.ListSecretVersionsResponse, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	sec, err := r.s.lookupSecret(req.GetParent())
	if err != nil {
		return nil, err
	}
	start := 0
	if tok := req.GetPageToken(); tok != "" {
		start, err = strconv.Atoi(tok)
		if err != nil || start < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "invalid page_token %q", tok)
		}
	}
	total := len(sec.versions)
	end := total
	if ps := int(req.GetPageSize()); ps > 0 && start+ps < total {
		end = start + ps
	}
	resp := &secretmanagerpb.ListSecretVersionsResponse{TotalSize: int32(total)}
	for i := start; i < end; i++ {
		resp.Versions = append(resp.Versions, proto.Clone(sec.versions[total-1-i].meta).(*secretmanagerpb.SecretVersion))
	}
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
