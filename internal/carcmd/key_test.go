package carcmd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func pemOf(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParsePrivateKey(t *testing.T) {
	t.Parallel()
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(p256)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(p256)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	sec1P384, _ := x509.MarshalECPrivateKey(p384)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	pkcs8RSA, _ := x509.MarshalPKCS8PrivateKey(rsaKey)

	t.Run("SEC1 and PKCS#8 give the same key", func(t *testing.T) {
		t.Parallel()
		// openssl ecparam -name prime256v1 -genkey -noout writes an
		// EC PARAMETERS block before the key when -noout is left out; only
		// the key block matters, so text around it is fine too.
		a, err := ParsePrivateKey(append([]byte("comment line\n"), pemOf(t, "EC PRIVATE KEY", sec1)...))
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParsePrivateKey(pemOf(t, "PRIVATE KEY", pkcs8))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Public, b.Public) || a.Fingerprint != b.Fingerprint || len(a.Public) != 65 || a.Public[0] != 4 {
			t.Fatalf("keys differ or bad public point: %x vs %x", a.Public, b.Public)
		}
		if !strings.Contains(string(a.PublicPEM()), "BEGIN PUBLIC KEY") {
			t.Errorf("PublicPEM = %q", a.PublicPEM())
		}
	})
	bad := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not PEM", []byte("hello")},
		{"truncated SEC1", pemOf(t, "EC PRIVATE KEY", sec1[:20])},
		{"P-384", pemOf(t, "EC PRIVATE KEY", sec1P384)},
		{"RSA in PKCS#8", pemOf(t, "PRIVATE KEY", pkcs8RSA)},
		{"public key", pemOf(t, "PUBLIC KEY", []byte{1, 2, 3})},
		{"garbage PKCS#8", pemOf(t, "PRIVATE KEY", bytes.Repeat([]byte{0x30}, 40))},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePrivateKey(tc.data)
			if !errors.Is(err, ErrKeyInvalid) {
				t.Fatalf("err = %v, want ErrKeyInvalid", err)
			}
		})
	}
	t.Run("errors and printing never show key material", func(t *testing.T) {
		t.Parallel()
		k, err := ParsePrivateKey(pemOf(t, "EC PRIVATE KEY", sec1))
		if err != nil {
			t.Fatal(err)
		}
		body := strings.Split(string(pemOf(t, "EC PRIVATE KEY", sec1)), "\n")[1]
		for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
			if strings.Contains(s, body) || strings.Contains(s, fmt.Sprintf("%x", mustBytes(t, p256))) {
				t.Fatalf("printed key material: %s", s)
			}
		}
		_, err = ParsePrivateKey(pemOf(t, "EC PRIVATE KEY", sec1[:len(sec1)-3]))
		if err == nil || strings.Contains(err.Error(), body[:20]) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestGenerateKeyRoundTrip(t *testing.T) {
	t.Parallel()
	k, pemBytes, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if back.Fingerprint != k.Fingerprint || !bytes.HasPrefix(pemBytes, []byte("-----BEGIN EC PRIVATE KEY-----")) {
		t.Fatalf("round trip changed the key")
	}
}

func TestParseMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode, url string
		want      Mode
		errHas    string
	}{
		{"", "", ModeSign, ""},
		{"auto", "", ModeSign, ""},
		{"auto", "https://proxy:4443", ModeProxy, ""},
		{"sign", "", ModeSign, ""},
		{"rest", "", ModeREST, ""},
		{"proxy", "https://proxy:4443", ModeProxy, ""},
		{"proxy", "", "", "TESLA_COMMAND_URL"},
		{"sign", "https://proxy:4443", "", "TESLA_COMMAND_URL"},
		{"signed", "", "", "TESLA_COMMAND_MODE"},
	}
	for _, tc := range tests {
		got, err := ParseMode(tc.mode, tc.url)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("ParseMode(%q, %q) err = %v, want one naming %s", tc.mode, tc.url, err, tc.errHas)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMode(%q, %q) = %q, %v; want %q", tc.mode, tc.url, got, err, tc.want)
		}
	}
}

func mustBytes(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
