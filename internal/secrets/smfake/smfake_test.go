package smfake_test

import (
	"context"
	"errors"
	"hash/crc32"
	"strconv"
	"strings"
	"sync"
	"testing"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/offpeak-charging/offpeak/internal/secrets/smfake"
)

const (
	project = "p"
	parent  = "projects/p/secrets/s"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) *int64 { c := int64(crc32.Checksum(b, castagnoli)); return &c }

// setup starts a fake with secret s and a real client on it.
func setup(t *testing.T) (*smfake.Server, *secretmanager.Client) {
	t.Helper()
	fake := smfake.New()
	if _, err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Stop)
	c, err := secretmanager.NewClient(context.Background(), fake.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := fake.CreateSecret(project, "s"); err != nil {
		t.Fatal(err)
	}
	return fake, c
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: code %s (%v), want %s", what, got, err, want)
	}
}

func add(t *testing.T, c *secretmanager.Client, data string) string {
	t.Helper()
	v, err := c.AddSecretVersion(context.Background(), &secretmanagerpb.AddSecretVersionRequest{
		Parent: parent, Payload: &secretmanagerpb.SecretPayload{Data: []byte(data), DataCrc32C: crc([]byte(data))},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v.GetName()
}

func TestAddAndAccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake, c := setup(t)
	if name := add(t, c, "one"); name != parent+"/versions/1" {
		t.Fatalf("first version named %s", name)
	}
	add(t, c, "two")
	resp, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: parent + "/versions/latest"})
	if err != nil || resp.GetName() != parent+"/versions/2" || string(resp.GetPayload().GetData()) != "two" {
		t.Fatalf("access latest = %v, %v", resp, err)
	}
	if got := resp.GetPayload().GetDataCrc32C(); got != *crc([]byte("two")) {
		t.Errorf("data_crc32c = %d, want the payload's", got)
	}
	if id, err := fake.AddVersion(project, "s", []byte("three")); err != nil || id != "3" {
		t.Fatalf("AddVersion helper = %s, %v", id, err)
	}
	if n := fake.Calls("AccessSecretVersion"); n != 1 {
		t.Errorf("Calls = %d, want 1", n)
	}
}

func TestRejections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake, c := setup(t)
	add(t, c, "one")
	big := make([]byte, smfake.MaxPayload+1)
	cases := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"add to a missing secret", func() error {
			_, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: "projects/p/secrets/nope", Payload: &secretmanagerpb.SecretPayload{Data: []byte("x")}})
			return err
		}, codes.NotFound},
		{"add over 64 KiB", func() error {
			_, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: parent, Payload: &secretmanagerpb.SecretPayload{Data: big}})
			return err
		}, codes.InvalidArgument},
		{"add with a wrong checksum", func() error {
			_, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: parent, Payload: &secretmanagerpb.SecretPayload{Data: []byte("x"), DataCrc32C: crc([]byte("y"))}})
			return err
		}, codes.InvalidArgument},
		{"access a missing version", func() error {
			_, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: parent + "/versions/9"})
			return err
		}, codes.NotFound},
		{"access a malformed name", func() error {
			_, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: "secrets/s/versions/1"})
			return err
		}, codes.InvalidArgument},
		{"create an existing secret", func() error { return fake.CreateSecret(project, "s") }, codes.AlreadyExists},
		{"update without a mask", func() error {
			_, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: &secretmanagerpb.Secret{Name: parent}})
			return err
		}, codes.InvalidArgument},
		{"update an unsupported field", func() error {
			_, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: &secretmanagerpb.Secret{Name: parent}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"rotation"}}})
			return err
		}, codes.InvalidArgument},
	}
	for _, tc := range cases {
		wantCode(t, tc.name, tc.call(), tc.want)
	}
	if n := fake.ActiveVersions(project, "s"); n != 1 {
		t.Errorf("rejected adds left versions behind: %d active", n)
	}
}

func TestVersionStates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake, c := setup(t)
	for i := range 3 {
		add(t, c, "v"+strconv.Itoa(i+1))
	}
	v3 := parent + "/versions/3"
	if _, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v3}); err != nil {
		t.Fatal(err)
	}
	// latest resolves to 3 although it is disabled: no falling back to 2.
	_, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: parent + "/versions/latest"})
	wantCode(t, "access a disabled latest", err, codes.FailedPrecondition)
	if n := fake.ActiveVersions(project, "s"); n != 3 {
		t.Errorf("ActiveVersions with a disabled one = %d, want 3 (disabled is billed)", n)
	}
	if _, err := c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: v3}); err != nil {
		t.Fatal(err)
	}
	meta, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: v3})
	if err != nil || meta.GetState() != secretmanagerpb.SecretVersion_ENABLED {
		t.Fatalf("after enable: %v, %v", meta.GetState(), err)
	}
	_, err = c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: v3, Etag: `"stale"`})
	wantCode(t, "destroy with a stale etag", err, codes.FailedPrecondition)
	if _, err := c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: v3, Etag: meta.GetEtag()}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: v3})
	wantCode(t, "destroy twice", err, codes.FailedPrecondition)
	_, err = c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: v3})
	wantCode(t, "enable a destroyed version", err, codes.FailedPrecondition)
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: parent + "/versions/latest"})
	wantCode(t, "access a destroyed latest", err, codes.FailedPrecondition)
	if st := fake.VersionState(project, "s", "3"); st != secretmanagerpb.SecretVersion_DESTROYED {
		t.Errorf("VersionState = %s", st)
	}
	if n := fake.ActiveVersions(project, "s"); n != 2 {
		t.Errorf("ActiveVersions = %d, want 2", n)
	}
	// A new version gets a new number.
	if name := add(t, c, "v4"); name != parent+"/versions/4" {
		t.Errorf("next version named %s", name)
	}
}

func TestListPagesNewestFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake, c := setup(t)
	for i := range 7 {
		add(t, c, strconv.Itoa(i))
	}
	it := c.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: parent, PageSize: 3})
	var got []string
	for {
		v, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v.GetName()[len(parent+"/versions/"):])
	}
	if want := "7 6 5 4 3 2 1"; strings.Join(got, " ") != want {
		t.Errorf("listed %v, want %s", got, want)
	}
	if n := fake.Calls("ListSecretVersions"); n != 3 {
		t.Errorf("pages fetched = %d, want 3", n)
	}
}

func TestUpdateSecretEtag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, c := setup(t)
	s, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: parent})
	if err != nil {
		t.Fatal(err)
	}
	upd := func(etag string, ann, labels map[string]string, paths ...string) (*secretmanagerpb.Secret, error) {
		return c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
			Secret:     &secretmanagerpb.Secret{Name: parent, Etag: etag, Annotations: ann, Labels: labels},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
		})
	}
	s2, err := upd(s.GetEtag(), map[string]string{"a": "1"}, map[string]string{"l": "x"}, "annotations")
	if err != nil {
		t.Fatal(err)
	}
	if s2.GetEtag() == s.GetEtag() || s2.GetAnnotations()["a"] != "1" || len(s2.GetLabels()) != 0 {
		t.Fatalf("after update: etag %s→%s, annotations %v, labels %v (labels not in the mask)", s.GetEtag(), s2.GetEtag(), s2.GetAnnotations(), s2.GetLabels())
	}
	_, err = upd(s.GetEtag(), map[string]string{"a": "2"}, nil, "annotations")
	wantCode(t, "update with the old etag", err, codes.FailedPrecondition)
	s3, err := upd("", nil, map[string]string{"l": "y"}, "labels")
	if err != nil || s3.GetLabels()["l"] != "y" || s3.GetAnnotations()["a"] != "1" {
		t.Fatalf("unconditional labels update: %v, %v", s3, err)
	}
}

func TestFaultInjection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake, c := setup(t)
	add(t, c, "x")
	fake.FailNext("GetSecretVersion", codes.PermissionDenied, 2)
	get := func() error {
		_, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: parent + "/versions/1"})
		return err
	}
	wantCode(t, "first", get(), codes.PermissionDenied)
	wantCode(t, "second", get(), codes.PermissionDenied)
	wantCode(t, "third", get(), codes.OK)
	if n := fake.Calls("GetSecretVersion"); n != 3 {
		t.Errorf("Calls = %d, want 3", n)
	}

	fake.CorruptNextAccess(1)
	access := func() *secretmanagerpb.AccessSecretVersionResponse {
		resp, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: parent + "/versions/1"})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := access(); r.GetPayload().GetDataCrc32C() == *crc(r.GetPayload().GetData()) {
		t.Errorf("CorruptNextAccess: checksum still matches")
	}
	if r := access(); r.GetPayload().GetDataCrc32C() != *crc(r.GetPayload().GetData()) {
		t.Errorf("second access after CorruptNextAccess(1) still corrupt")
	}

	ran := 0
	fake.BeforeNext("GetSecret", func() { ran++ })
	for range 2 {
		if _, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: parent}); err != nil {
			t.Fatal(err)
		}
	}
	if ran != 1 {
		t.Errorf("BeforeNext hook ran %d times, want 1", ran)
	}
}

func TestConcurrentAddsGetDistinctNumbers(t *testing.T) {
	t.Parallel()
	fake, c := setup(t)
	var wg sync.WaitGroup
	names := make(chan string, 40)
	for range 40 {
		wg.Go(func() {
			v, err := c.AddSecretVersion(context.Background(), &secretmanagerpb.AddSecretVersionRequest{
				Parent: parent, Payload: &secretmanagerpb.SecretPayload{Data: []byte("x")},
			})
			if err != nil {
				t.Error(err)
			}
			names <- v.GetName()
		})
	}
	wg.Wait()
	close(names)
	seen := map[string]bool{}
	for n := range names {
		if seen[n] {
			t.Fatalf("%s handed out twice", n)
		}
		seen[n] = true
	}
	if n := fake.ActiveVersions(project, "s"); n != 40 {
		t.Errorf("ActiveVersions = %d, want 40", n)
	}
}
