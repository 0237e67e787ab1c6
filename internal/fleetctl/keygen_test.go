package fleetctl

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

func TestKeygenCreatesAKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	out := filepath.Join(t.TempDir(), "public-key.pem")
	tr := h.transcript(t)
	tr.name(out, "/tmp/public-key.pem")
	code, stdout, stderr := tr.run("", "keygen", "--out", out)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	v, err := h.store.Latest(context.Background(), "tesla-private-key")
	if err != nil {
		t.Fatal(err)
	}
	key, err := carcmd.ParsePrivateKey(v.Payload)
	if err != nil {
		t.Fatalf("stored key: %v", err)
	}
	if stdout != string(key.PublicPEM()) {
		t.Errorf("stdout is not the stored key's public PEM:\n%s", stdout)
	}
	if point, err := fleet.ParsePublicKeyPEM([]byte(stdout)); err != nil || !bytes.Equal(point, key.Public) {
		t.Errorf("printed key %x %v", point, err)
	}
	tr.keyPEM(key.PublicPEM(), "<the new key>")
	tr.check("keygen")
	file, err := os.ReadFile(out)
	if err != nil || string(file) != stdout {
		t.Errorf("--out file: %v\n%s", err, file)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("--out mode %v %v", fi.Mode(), err)
	}
	noPrivateKey(t, v.Payload, stdout, stderr, string(file))
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Errorf("left files behind: %v", entries)
	}
}

func TestKeygenRefusesToReplaceWithoutForce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	old, oldPEM, err := carcmd.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	h.put("tesla-private-key", string(oldPEM))
	tr := h.transcript(t)
	tr.key(old.Public, "<the old key>")
	tr.note("tesla-private-key holds a key")

	if code, stdout, _ := tr.run("", "keygen"); code != ExitFailure || stdout != "" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	if versions, _ := h.store.Versions(context.Background(), "tesla-private-key"); len(versions) != 1 {
		t.Errorf("%d versions after a refusal", len(versions))
	}

	code, stdout, stderr := tr.run("", "keygen", "--force")
	if code != ExitOK {
		t.Fatalf("--force: exit %d\n%s", code, stderr)
	}
	v, _ := h.store.Latest(context.Background(), "tesla-private-key")
	key, err := carcmd.ParsePrivateKey(v.Payload)
	if err != nil || v.ID != "2" || bytes.Equal(key.Public, old.Public) || stdout != string(key.PublicPEM()) {
		t.Fatalf("after --force: version %s, %v", v.ID, err)
	}
	tr.keyPEM(key.PublicPEM(), "<the new key>")
	noPrivateKey(t, v.Payload, stdout, stderr)
	noPrivateKey(t, oldPEM, stdout, stderr)

	// Something that is not a key is not overwritten silently either.
	h.put("tesla-private-key", "garbage")
	tr.note("tesla-private-key holds garbage")
	if code, _, _ := tr.run("", "keygen"); code != ExitFailure {
		t.Errorf("over garbage: exit %d", code)
	}
	tr.check("keygen_refuses_to_replace")
}

// The deployment creates the secret empty: that is no key to protect.
func TestKeygenOverAnEmptySecretAndJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	mem := secrets.NewMemory(h.clock)
	if _, err := mem.Add(context.Background(), "tesla-private-key", []byte("\n")); err != nil {
		t.Fatal(err)
	}
	h.runner.Store = mem
	code, stdout, stderr := h.run("", "keygen", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var rep keygenReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, stdout)
	}
	v, _ := mem.Latest(context.Background(), "tesla-private-key")
	key, err := carcmd.ParsePrivateKey(v.Payload)
	if err != nil || !rep.OK || rep.Version != "2" || rep.ReplacedVersion != "" || rep.Fingerprint != key.Fingerprint[:16] ||
		rep.PublicKeyPEM != string(key.PublicPEM()) || rep.Secret != "tesla-private-key" {
		t.Errorf("report %+v (%v)", rep, err)
	}
	noPrivateKey(t, v.Payload, stdout, stderr)
}

// An --out that cannot be written stops keygen before anything is stored,
// and TESLA_PRIVATE_KEY_SECRET names the secret.
func TestKeygenOutFailsFirstAndSecretName(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.vars["TESLA_PRIVATE_KEY_SECRET"] = "my-key"
	tr := h.transcript(t)
	tmp := t.TempDir()
	tr.name(tmp, "/tmp")
	tr.note("TESLA_PRIVATE_KEY_SECRET=my-key")
	if code, _, _ := tr.run("", "keygen", "--out", filepath.Join(tmp, "missing", "k.pem")); code != ExitFailure {
		t.Fatalf("exit %d", code)
	}
	if _, err := h.store.Latest(context.Background(), "my-key"); err == nil {
		t.Fatal("a key was stored")
	}
	code, stdout, _ := tr.run("", "keygen")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	tr.keyPEM([]byte(stdout), "<the new key>")
	tr.check("keygen_out_fails_first")
	if _, err := h.store.Latest(context.Background(), "tesla-private-key"); err == nil {
		t.Error("the default secret was written")
	}
}
