package smfake_test

import (
	"context"
	"strings"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/secrets/smfake"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// setupClock is setup on a manual clock.
func setupClock(t *testing.T) (*smfake.Server, *secretmanager.Client, *clock.Manual) {
	t.Helper()
	fake := smfake.New()
	clk := clock.NewManual(t0)
	fake.SetClock(clk)
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
	return fake, c, clk
}

func list(t *testing.T, c *secretmanager.Client, filter string) ([]string, error) {
	t.Helper()
	it := c.ListSecretVersions(context.Background(), &secretmanagerpb.ListSecretVersionsRequest{Parent: parent, Filter: filter})
	var out []string
	for {
		v, err := it.Next()
		if err == iterator.Done {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, v.GetName()[strings.LastIndexByte(v.GetName(), '/')+1:]+"="+v.GetState().String())
	}
}

// Google: only a version accessed by its number right after it was added is
// strongly consistent; latest, listing and metadata converge "within
// minutes, but may take a few hours" (docs/reference/consistency).
func TestLagLatestMetadataAndListing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake, c, clk := setupClock(t)
	add(t, c, "one")
	clk.Advance(time.Hour)
	fake.SetLag(time.Minute)
	add(t, c, "two")

	resp, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: parent + "/versions/latest"})
	if err != nil || string(resp.GetPayload().GetData()) != "one" {
		t.Fatalf("latest inside the lag = %v %v, want version 1", resp.GetName(), err)
	}
	resp, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: parent + "/versions/2"})
	if err != nil || string(resp.GetPayload().GetData()) != "two" {
		t.Fatalf("version 2 by number = %v, want it (strongly consistent)", err)
	}
	if got, err := list(t, c, ""); err != nil || strings.Join(got, ",") != "1=ENABLED" {
		t.Fatalf("listing inside the lag = %v %v", got, err)
	}

	before, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: parent})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: parent, Etag: before.GetEtag(), Annotations: map[string]string{"k": "v"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"annotations"}},
	}); err != nil {
		t.Fatal(err)
	}
	stale, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: parent})
	if err != nil || stale.GetAnnotations()["k"] != "" {
		t.Fatalf("metadata inside the lag = %v %v, want the old annotations", stale.GetAnnotations(), err)
	}
	// Its etag is stale too: a write with it is refused.
	_, err = c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: parent, Etag: stale.GetEtag(), Annotations: map[string]string{"k": "w"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"annotations"}},
	})
	wantCode(t, "update with a stale etag", err, codes.FailedPrecondition)

	clk.Advance(time.Minute)
	if resp, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: parent + "/versions/latest"}); err != nil || string(resp.GetPayload().GetData()) != "two" {
		t.Fatalf("latest after the lag = %v", err)
	}
	if got, _ := list(t, c, ""); strings.Join(got, ",") != "2=ENABLED,1=ENABLED" {
		t.Errorf("listing after the lag = %v", got)
	}
	if s, _ := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: parent}); s.GetAnnotations()["k"] != "v" {
		t.Errorf("metadata after the lag = %v", s.GetAnnotations())
	}
}

// A deadline after the write committed: the caller sees an error, the
// version exists all the same.
func TestFaultAfterCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake, c := setup(t)
	fake.FailNextAfterCommit("AddSecretVersion", codes.DeadlineExceeded, 1)
	_, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: parent, Payload: &secretmanagerpb.SecretPayload{Data: []byte("x")}})
	wantCode(t, "add with a fault after commit", err, codes.DeadlineExceeded)
	if resp, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: parent + "/versions/1"}); err != nil || string(resp.GetPayload().GetData()) != "x" {
		t.Fatalf("the failed add's version: %v", err)
	}
	if name := add(t, c, "y"); !strings.HasSuffix(name, "/versions/2") {
		t.Errorf("next add = %s, want version 2", name)
	}
}

// The list filter is the API's (docs/filtering); what the API would refuse,
// the fake refuses.
func TestListFilter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, c, clk := setupClock(t)
	for _, d := range []string{"a", "b", "c", "d"} {
		add(t, c, d)
		clk.Advance(time.Hour)
	}
	if _, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: parent + "/versions/2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: parent + "/versions/1"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ filter, want string }{
		{"", "4=ENABLED,3=ENABLED,2=DISABLED,1=DESTROYED"},
		{"state:ENABLED", "4=ENABLED,3=ENABLED"},
		{"state:(ENABLED OR DISABLED)", "4=ENABLED,3=ENABLED,2=DISABLED"},
		{"NOT state:DESTROYED", "4=ENABLED,3=ENABLED,2=DISABLED"},
		{"-state:DESTROYED AND state!=DISABLED", "4=ENABLED,3=ENABLED"},
		{"create_time>2026-03-01T13:30:00Z", "4=ENABLED,3=ENABLED"},
		{"create_time<=2026-03-01T13:00:00Z state:DISABLED", "2=DISABLED"},
		{"destroy_time:*", "1=DESTROYED"},
		{"name:versions/3 OR state:DISABLED", "3=ENABLED,2=DISABLED"},
	} {
		got, err := list(t, c, tc.filter)
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("filter %q = %v %v, want %s", tc.filter, got, err, tc.want)
		}
	}
	for _, bad := range []string{"state:BOGUS", `name ~ "ver.*"`, "colour:red", "state:", "(state:ENABLED", "state:(ENABLED DISABLED)", "create_time>yesterday", "state<ENABLED", "AND"} {
		_, err := list(t, c, bad)
		wantCode(t, "filter "+bad, err, codes.InvalidArgument)
	}
}

// Annotation keys and sizes as the Secret resource documents them.
func TestAnnotationLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, c := setup(t)
	update := func(ann map[string]string) error {
		_, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
			Secret: &secretmanagerpb.Secret{Name: parent, Annotations: ann}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"annotations"}},
		})
		return err
	}
	for _, ok := range []string{"offpeak-lease", "a", "Key.with_all-3", strings.Repeat("k", 63)} {
		if err := update(map[string]string{ok: "v"}); err != nil {
			t.Errorf("key %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-lead", "trail_", strings.Repeat("k", 64), "has space", "slash/inside", "ünïcode"} {
		wantCode(t, "key "+bad, update(map[string]string{bad: "v"}), codes.InvalidArgument)
	}
	wantCode(t, "16 KiB of annotations", update(map[string]string{"big": strings.Repeat("x", 16<<10)}), codes.InvalidArgument)
	if err := update(map[string]string{"big": strings.Repeat("x", 16<<10-10)}); err != nil {
		t.Errorf("just under 16 KiB refused: %v", err)
	}
	_, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: "projects/" + project, SecretId: "other",
		Secret: &secretmanagerpb.Secret{Annotations: map[string]string{"-bad": "v"}}})
	wantCode(t, "create with a bad annotation key", err, codes.InvalidArgument)
}

// Create and destroy times come from the fake's clock, and a secret with
// version_destroy_ttl destroys versions that much later
// (docs/delay-destroy): disabled and scheduled meanwhile, enabled again to
// cancel.
func TestClockAndDelayedDestruction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake, c, clk := setupClock(t)
	if _, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: "projects/" + project, SecretId: "delayed",
		Secret: &secretmanagerpb.Secret{VersionDestroyTtl: durationpb.New(time.Hour)}}); err == nil {
		t.Error("a version_destroy_ttl under a day was accepted")
	}
	sec, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: "projects/" + project, SecretId: "delayed",
		Secret: &secretmanagerpb.Secret{VersionDestroyTtl: durationpb.New(24 * time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if !sec.GetCreateTime().AsTime().Equal(t0) {
		t.Errorf("secret create_time = %s, want the fake's clock", sec.GetCreateTime().AsTime())
	}
	p := sec.GetName()
	for _, d := range []string{"a", "b"} {
		if _, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: p, Payload: &secretmanagerpb.SecretPayload{Data: []byte(d)}}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Hour)
	v, err := c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: p + "/versions/1"})
	if err != nil || v.GetState() != secretmanagerpb.SecretVersion_DISABLED || !v.GetScheduledDestroyTime().AsTime().Equal(t0.Add(25*time.Hour)) {
		t.Fatalf("destroy with a delay = %v %v", v, err)
	}
	if !v.GetCreateTime().AsTime().Equal(t0) {
		t.Errorf("version create_time = %s, want the fake's clock", v.GetCreateTime().AsTime())
	}
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: p + "/versions/1"})
	wantCode(t, "access while scheduled", err, codes.FailedPrecondition)
	if n := fake.ActiveVersions(project, "delayed"); n != 2 {
		t.Errorf("active (billed) versions while scheduled = %d, want 2", n)
	}
	// Enabling cancels; destroying again schedules anew.
	if v, err := c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: p + "/versions/1"}); err != nil || v.GetScheduledDestroyTime() != nil {
		t.Fatalf("enable while scheduled = %v %v", v, err)
	}
	if _, err := c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: p + "/versions/1"}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(24 * time.Hour)
	g, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: p + "/versions/1"})
	if err != nil || g.GetState() != secretmanagerpb.SecretVersion_DESTROYED || !g.GetDestroyTime().AsTime().Equal(t0.Add(25*time.Hour)) {
		t.Fatalf("after the delay = %v %v", g, err)
	}
	if n := fake.ActiveVersions(project, "delayed"); n != 1 {
		t.Errorf("active versions after the delay = %d, want 1", n)
	}
}

// A deleted secret can be created again; its numbers restart at 1.
func TestDeleteAndRecreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake, c := setup(t)
	add(t, c, "one")
	add(t, c, "two")
	s, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: parent})
	if err != nil {
		t.Fatal(err)
	}
	err = c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: parent, Etag: `"999"`})
	wantCode(t, "delete with a wrong etag", err, codes.FailedPrecondition)
	if err := c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: parent, Etag: s.GetEtag()}); err != nil {
		t.Fatal(err)
	}
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: parent + "/versions/2"})
	wantCode(t, "access after delete", err, codes.NotFound)
	if err := fake.CreateSecret(project, "s"); err != nil {
		t.Fatal(err)
	}
	if name := add(t, c, "new"); !strings.HasSuffix(name, "/versions/1") {
		t.Errorf("first version after recreate = %s", name)
	}
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: parent + "/versions/2"})
	wantCode(t, "an old number after recreate", err, codes.NotFound)
}
