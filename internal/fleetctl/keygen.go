package fleetctl

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

type keygenOptions struct {
	force bool
	out   string
}

func keygenCommand() *command {
	return &command{
		name:    "keygen",
		summary: "make the P-256 command key: private half into the secret store, public PEM printed",
		help: `Makes a new P-256 (prime256v1) key, the only kind Tesla's cars accept, and
stores its private half as a new version of TESLA_PRIVATE_KEY_SECRET
(tesla-private-key), where the worker reads it. The private key is never
printed or written anywhere else. The public half is printed as PEM
("PUBLIC KEY") on stdout and, with --out FILE, written to FILE: serve it at
https://<domain>/.well-known/appspecific/com.tesla.3p.public-key.pem, then
run fleetctl register --domain <domain> and fleetctl pair.

If the secret already holds a key, keygen refuses (exit 1) unless --force:
a new key unpairs every car (each must be paired again) and the domain must
be registered again. The old version stays in the store until you destroy it.`,
		flags: func(fs *flag.FlagSet) any {
			o := &keygenOptions{}
			fs.BoolVar(&o.force, "force", false, "replace an existing key (every car must then be paired again)")
			fs.StringVar(&o.out, "out", "", "also write the public key (PEM) to this file (mode 0644)")
			return o
		},
		run: runKeygen,
	}
}

type keygenReport struct {
	OK              bool   `json:"ok"`
	Secret          string `json:"secret"`
	Version         string `json:"version"`
	Fingerprint     string `json:"fingerprint"`
	PublicKey       string `json:"public_key"` // hex of the 65-byte point
	PublicKeyPEM    string `json:"public_key_pem"`
	ReplacedVersion string `json:"replaced_version,omitempty"`
	Out             string `json:"out,omitempty"`
}

func runKeygen(ctx context.Context, s *session, opts any) error {
	o := opts.(*keygenOptions)
	store, err := s.openStore(ctx)
	if err != nil {
		return err
	}
	name := s.cfg.PrivateKeySecret
	replaced, err := checkExistingKey(ctx, store, name, o.force)
	if err != nil {
		return err
	}

	// Make sure --out can be written before anything is stored: a temporary
	// file beside it, renamed into place once the key is stored.
	var tmp *os.File
	if o.out != "" {
		tmp, err = os.CreateTemp(filepath.Dir(o.out), ".fleetctl-keygen-*.pem")
		if err != nil {
			return fmt.Errorf("--out %s: %w (nothing was stored)", o.out, err)
		}
		defer func() {
			if tmp != nil {
				_ = tmp.Close()
				_ = os.Remove(tmp.Name())
			}
		}()
	}

	key, private, err := carcmd.GenerateKey()
	if err != nil {
		return err
	}
	id, err := store.Add(ctx, name, private)
	clear(private) // the only copy outside the store; best effort
	if err != nil {
		if errors.Is(err, secrets.ErrNotFound) {
			return fmt.Errorf("store the key in %s: %w (the deployment creates the secret; create it first)", name, err)
		}
		return fmt.Errorf("store the key in %s: %w", name, err)
	}
	public := key.PublicPEM()
	rep := keygenReport{OK: true, Secret: name, Version: id, Fingerprint: key.Fingerprint[:16],
		PublicKey: hex.EncodeToString(key.Public), PublicKeyPEM: string(public), ReplacedVersion: replaced}

	if tmp != nil {
		if err := writePublicFile(tmp, o.out, public); err != nil {
			return fmt.Errorf("the key is stored in %s (version %s), but writing --out failed: %w; the public key is:\n%s", name, id, err, public)
		}
		tmp = nil
		rep.Out = o.out
	}

	if s.json {
		s.printJSON(rep)
	} else {
		_, _ = s.out.Write(public)
	}
	s.notef("Stored a new P-256 key in %s (version %s, fingerprint %s); the private key was not printed.", name, id, rep.Fingerprint)
	if replaced != "" {
		s.notef("It replaces version %s: every car paired with the old key must be paired again (fleetctl pair),\n"+
			"and the domain registered again with the new public key (fleetctl register). The old version\n"+
			"stays in the store until you destroy it.", replaced)
	}
	if rep.Out != "" {
		s.notef("Wrote the public key to %s.", rep.Out)
	}
	s.notef("Next: serve the public key at https://<domain>%s (no redirect),\n"+
		"then run fleetctl register --domain <domain> and fleetctl pair.", "/.well-known/appspecific/com.tesla.3p.public-key.pem")
	return nil
}

// checkExistingKey refuses to replace a stored key without force and
// returns the version a forced keygen replaces ("" when there is none).
// An empty version (the deployment creates the secret empty) is no key.
func checkExistingKey(ctx context.Context, store secrets.Store, name string, force bool) (string, error) {
	v, err := store.Latest(ctx, name)
	switch {
	case errors.Is(err, secrets.ErrNotFound), errors.Is(err, secrets.ErrVersionUnavailable):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read %s: %w", name, err)
	case len(bytes.TrimSpace(v.Payload)) == 0:
		return "", nil
	}
	what := "something that is not a usable key"
	if k, perr := carcmd.ParsePrivateKey(v.Payload); perr == nil {
		what = "a key (fingerprint " + k.Fingerprint[:16] + ")"
	}
	if !force {
		return "", fmt.Errorf("%s already holds %s in version %s; not replaced.\n"+
			"A new key unpairs every car: each must be paired again (fleetctl pair) and the domain\n"+
			"registered again (fleetctl register). To replace it anyway: fleetctl keygen --force", name, what, v.ID)
	}
	return v.ID, nil
}

// writePublicFile writes the PEM into tmp and renames it to path, mode 0644.
func writePublicFile(tmp *os.File, path string, pem []byte) error {
	if _, err := tmp.Write(pem); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return nil
}
