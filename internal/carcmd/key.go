package carcmd

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/teslamotors/vehicle-command/pkg/protocol"
)

// Key errors. Their text never carries key material.
var (
	// ErrNoKey: the private-key secret does not exist (or has no version).
	ErrNoKey = errors.New("no private key for signed commands")
	// ErrKeyInvalid: the secret exists but is not a PEM P-256 private key.
	ErrKeyInvalid = errors.New("the private key for signed commands is not a PEM P-256 private key")
)

// PrivateKey is the owner's command key: what Tesla's library signs with,
// plus the public half the car knows it by. It holds the private scalar in
// memory only; nothing here writes it anywhere.
type PrivateKey struct {
	ecdh protocol.ECDHPrivateKey
	// Public is the uncompressed P-256 point 0x04‖X‖Y (65 bytes), as the
	// car's whitelist and session_info_request carry it.
	Public []byte
	// Fingerprint is the hex SHA-256 of Public: safe to log and to keep
	// beside a session cache, so a cache made with another key is dropped.
	Fingerprint string
}

// ParsePrivateKey reads a PEM P-256 private key: SEC1 "EC PRIVATE KEY" as
// `openssl ecparam -name prime256v1 -genkey -noout` writes it, or PKCS#8
// "PRIVATE KEY" — the two forms Tesla's library reads from a file
// (vehicle-command internal/authentication/native.go LoadExternalECDHKey),
// here from bytes so the key never touches a disk. Errors wrap
// ErrKeyInvalid and never quote the input.
func ParsePrivateKey(data []byte) (*PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found", ErrKeyInvalid)
	}
	var priv *ecdsa.PrivateKey
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: SEC1 block does not parse", ErrKeyInvalid)
		}
		priv = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#8 block does not parse", ErrKeyInvalid)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: PKCS#8 key is %T, want an EC key", ErrKeyInvalid, k)
		}
		priv = ec
	default:
		return nil, fmt.Errorf("%w: PEM block %q, want \"EC PRIVATE KEY\" or \"PRIVATE KEY\"", ErrKeyInvalid, block.Type)
	}
	// Cars accept prime256v1 only (developer.tesla.com virtual-keys developer guide).
	if priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: curve %s, want P-256 (prime256v1)", ErrKeyInvalid, priv.Curve.Params().Name)
	}
	return fromECDSA(priv)
}

func fromECDSA(priv *ecdsa.PrivateKey) (*PrivateKey, error) {
	ek, err := priv.ECDH()
	if err != nil {
		return nil, fmt.Errorf("%w: not usable for ECDH", ErrKeyInvalid)
	}
	// UnmarshalECDHPrivateKey returns nil on bad input (vehicle-command
	// pkg/protocol/key.go), so check it.
	lib := protocol.UnmarshalECDHPrivateKey(ek.Bytes())
	if lib == nil {
		return nil, fmt.Errorf("%w: Tesla's library refused the scalar", ErrKeyInvalid)
	}
	pub := ek.PublicKey().Bytes()
	sum := sha256.Sum256(pub)
	return &PrivateKey{ecdh: lib, Public: pub, Fingerprint: hex.EncodeToString(sum[:])}, nil
}

// GenerateKey makes a new P-256 key and returns it with its SEC1 PEM, the
// form to store in the secret (and the one openssl writes).
func GenerateKey() (*PrivateKey, []byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate P-256 key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("encode P-256 key: %w", err)
	}
	k, err := fromECDSA(priv)
	if err != nil {
		return nil, nil, err
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// PublicPEM is the public half as PKIX "PUBLIC KEY" PEM: what Tesla fetches
// from https://<domain>/.well-known/appspecific/com.tesla.3p.public-key.pem
// (reference/vehicle-commands.md §4 step 3; openssl ec -pubout writes it).
func (k *PrivateKey) PublicPEM() []byte {
	pub, err := ecdh.P256().NewPublicKey(k.Public)
	if err != nil {
		return nil // Public came from a valid private key: cannot happen
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// String never shows the key: only its fingerprint.
func (k *PrivateKey) String() string { return "carcmd.PrivateKey(" + k.Fingerprint[:16] + ")" }

// GoString keeps %#v from printing the struct's fields.
func (k *PrivateKey) GoString() string { return k.String() }
