package fleetsim

// The car's side of Tesla's Vehicle Command Protocol: keys, domains with
// their epochs, clocks and anti-replay counters, the handshake, command
// authentication and response encryption. Written from the module's
// protocol.md (github.com/teslamotors/vehicle-command@v0.4.1
// pkg/protocol/protocol.md, cited as "protocol.md §Section"); where the
// document leaves a rule open the behaviour of the module's reference
// verifier (internal/authentication/verifier.go, window.go, crypto.go) is
// followed and cited as such. Only the module's generated protobuf packages
// are imported.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"hash"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/signatures"
	universal "github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/universalmessage"
)

const (
	domainVCSEC        = universal.Domain_DOMAIN_VEHICLE_SECURITY
	domainInfotainment = universal.Domain_DOMAIN_INFOTAINMENT

	// epochSeconds is how long an epoch may run before the domain starts a
	// new one (reference verifier: epochLength = 2^30 s, crypto.go).
	epochSeconds = 1 << 30
	// maxSecondsWithoutCounter: a message with a zero or out-of-order
	// counter must expire at most this far ahead (reference verifier,
	// crypto.go maxSecondsWithoutCounter; vehicle-commands.md §2).
	maxSecondsWithoutCounter = 30
	// windowSize is infotainment's sliding anti-replay window (protocol.md
	// §Metadata: "Infotainment tracks a sliding window"; width from the
	// reference verifier, crypto.go windowSize = 32).
	windowSize = 32
	// flagEncryptResponse is universal.Flags_FLAG_ENCRYPT_RESPONSE as a bit
	// of RoutableMessage.flags (wire value 2; protocol.md §Message encoding,
	// vehicle-commands.md §2).
	flagEncryptResponse = uint32(1) << universal.Flags_FLAG_ENCRYPT_RESPONSE

	// MaxPairedKeys is how many keys a car holds (developer.tesla.com
	// vehicle endpoints, "max 20 keys per car"; vehicle-commands.md §1).
	MaxPairedKeys = 20
	// DefaultMaxCommandTTL is Options.MaxCommandTTL's default: a signed
	// command whose expires_at lies further ahead of the car's clock is
	// refused with TIME_TO_LIVE_TOO_LONG. Real firmware's limit is
	// UNCONFIRMED (vehicle-commands.md §2); the library sets expires_at to
	// the caller's context deadline, so keep command deadlines below this.
	DefaultMaxCommandTTL = time.Hour
)

// Errors of the key-management API.
var (
	// ErrInvalidPublicKey: not a P-256 point (65-byte uncompressed, PEM "PUBLIC KEY", hex or base64 of the point).
	ErrInvalidPublicKey = errors.New("fleetsim: invalid public key (want a P-256 point: 65 bytes 0x04||X||Y, PEM PUBLIC KEY, hex or base64)")
	// ErrKeychainFull: the car already holds MaxPairedKeys keys.
	ErrKeychainFull = errors.New("fleetsim: the car's keychain is full")
	// ErrUnknownKey: the key is not paired with the car.
	ErrUnknownKey = errors.New("fleetsim: key not paired with the car")
)

// vcpState is one car's protocol state. The car has one P-256 key for both
// domains (each real domain has its own; the library accepts either).
type vcpState struct {
	key     *ecdh.PrivateKey
	paired  [][]byte // 65-byte uncompressed client points, in pairing order
	domains map[universal.Domain]*vcpDomain
}

// vcpDomain is one domain's clock and sessions. "Each domain has its own
// clock and represents time using (epoch_id, timestamp) pairs. The epoch_id
// is a random 16-byte value generated at boot" (protocol.md §Time). The
// clock runs on the sim clock: clock_time = whole seconds since start.
type vcpDomain struct {
	epoch    [16]byte
	start    time.Time
	sessions map[string]*vcpSession // by string(client public key)
}

// vcpSession is the anti-replay state of one client key in one domain and
// epoch (the reference verifier keeps one Verifier per signer key).
type vcpSession struct {
	counter     uint32 // highest counter accepted in this epoch
	window      uint64 // infotainment: bit i set = counter-(i+1) was used
	respCounter uint32 // counter of encrypted responses
}

func newVCPState(now time.Time) *vcpState {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		panic("fleetsim: generating a car key: " + err.Error()) // crypto/rand does not fail
	}
	v := &vcpState{key: key, domains: map[universal.Domain]*vcpDomain{}}
	v.reboot(now)
	return v
}

// reboot starts new epochs for both domains: counters restart and cached
// client sessions become stale ("the infotainment system reboots ... the
// vehicle and the client may not be using the same epoch", protocol.md
// §Recovering from synchronization errors).
func (v *vcpState) reboot(now time.Time) {
	for _, d := range []universal.Domain{domainVCSEC, domainInfotainment} {
		v.domains[d] = newVCPDomain(now)
	}
}

func newVCPDomain(now time.Time) *vcpDomain {
	d := &vcpDomain{start: now, sessions: map[string]*vcpSession{}}
	_, _ = rand.Read(d.epoch[:])
	return d
}

// domain returns d's state at now, starting a new epoch if the clock went
// backwards or the epoch ran out (reference verifier adjustClock and
// rotateEpochIfNeeded). nil for a domain the car does not have.
func (v *vcpState) domain(d universal.Domain, now time.Time) *vcpDomain {
	dom, ok := v.domains[d]
	if !ok {
		return nil
	}
	if now.Before(dom.start) || now.Sub(dom.start) >= epochSeconds*time.Second {
		dom = newVCPDomain(now)
		v.domains[d] = dom
	}
	return dom
}

// clock is the domain's clock_time at now.
func (d *vcpDomain) clock(now time.Time) uint32 {
	return uint32(now.Sub(d.start) / time.Second)
}

func (d *vcpDomain) session(pub []byte) *vcpSession {
	s, ok := d.sessions[string(pub)]
	if !ok {
		s = &vcpSession{}
		d.sessions[string(pub)] = s
	}
	return s
}

// acceptWindow records counter in infotainment's sliding window; false if
// it was used before or is older than the window (protocol.md §Metadata;
// algorithm as described by the reference verifier's window.go).
func (s *vcpSession) acceptWindow(counter uint32) bool {
	switch {
	case counter == s.counter:
		return false
	case counter < s.counter:
		age := s.counter - counter
		if age > windowSize || s.window>>(age-1)&1 == 1 {
			return false
		}
		s.window |= 1 << (age - 1)
		return true
	}
	shift := counter - s.counter // Go: shifting by >= 64 gives 0
	s.window = s.window<<shift | 1<<(shift-1)
	s.counter = counter
	return true
}

// acceptStrict is VCSEC's rule: "VCSEC requires that messages arrive in
// counter order" (protocol.md §Metadata).
func (s *vcpSession) acceptStrict(counter uint32) bool {
	if counter <= s.counter {
		return false
	}
	s.counter = counter
	return true
}

func (v *vcpState) publicBytes() []byte { return v.key.PublicKey().Bytes() }

func (v *vcpState) isPaired(pub []byte) bool {
	for _, k := range v.paired {
		if bytes.Equal(k, pub) {
			return true
		}
	}
	return false
}

func (v *vcpState) pair(pub []byte) error {
	if v.isPaired(pub) {
		return nil
	}
	if len(v.paired) >= MaxPairedKeys {
		return ErrKeychainFull
	}
	v.paired = append(v.paired, append([]byte(nil), pub...))
	return nil
}

func (v *vcpState) unpair(pub []byte) error {
	for i, k := range v.paired {
		if bytes.Equal(k, pub) {
			v.paired = append(v.paired[:i:i], v.paired[i+1:]...)
			for _, d := range v.domains {
				delete(d.sessions, string(pub))
			}
			return nil
		}
	}
	return ErrUnknownKey
}

// sharedKey is K = SHA1(BIG_ENDIAN(Sx, 32))[:16] where S = ECDH(v, C)
// (protocol.md §Key Agreement). crypto/ecdh returns Sx for P-256.
func (v *vcpState) sharedKey(clientPub []byte) ([]byte, error) {
	pub, err := ecdh.P256().NewPublicKey(clientPub)
	if err != nil {
		return nil, ErrInvalidPublicKey
	}
	secret, err := v.key.ECDH(pub)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(secret)
	return sum[:16], nil
}

// subkey is HMAC-SHA256(K, label) (protocol.md §Response authentication,
// §HMAC-SHA256 authentication).
func subkey(k []byte, label string) []byte {
	h := hmac.New(sha256.New, k)
	h.Write([]byte(label))
	return h.Sum(nil)
}

// metadata serializes tag-length-value items into h in ascending tag order
// and ends them with 0xFF (protocol.md §Metadata serialization). A nil value
// is left out.
type metadata struct{ h hash.Hash }

func (m metadata) add(tag signatures.Tag, value []byte) {
	if value == nil {
		return
	}
	m.h.Write([]byte{byte(tag), byte(len(value))})
	m.h.Write(value)
}

// addUint32 writes an integer as four big-endian bytes (protocol.md §Metadata serialization).
func (m metadata) addUint32(tag signatures.Tag, value uint32) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], value)
	m.add(tag, b[:])
}

// sum appends 0xFF, then message, and returns the digest.
func (m metadata) sum(message []byte) []byte {
	m.h.Write([]byte{byte(signatures.Tag_TAG_END)})
	m.h.Write(message)
	return m.h.Sum(nil)
}

// sessionInfoTag is HMAC-SHA256(HMAC-SHA256(K, "session info"),
// TLV(signature type HMAC, VIN, challenge) || 0xFF || session_info)
// (protocol.md §Response authentication).
func sessionInfoTag(k []byte, vin string, challenge, encodedInfo []byte) []byte {
	m := metadata{hmac.New(sha256.New, subkey(k, "session info"))}
	m.add(signatures.Tag_TAG_SIGNATURE_TYPE, []byte{byte(signatures.SignatureType_SIGNATURE_TYPE_HMAC)})
	m.add(signatures.Tag_TAG_PERSONALIZATION, []byte(vin))
	m.add(signatures.Tag_TAG_CHALLENGE, challenge)
	return m.sum(encodedInfo)
}

// commandTag is the HMAC_PERSONALIZED tag of a command: HMAC-SHA256(K',
// M || P) with K' = HMAC-SHA256(K, "authenticated command") and M the
// metadata (signature type, domain, VIN, epoch, expires_at, counter, flags
// only if non-zero) (protocol.md §Metadata, §HMAC-SHA256 authentication).
func commandTag(k []byte, domain universal.Domain, vin string, epoch []byte, expiresAt, counter, flags uint32, payload []byte) []byte {
	m := metadata{hmac.New(sha256.New, subkey(k, "authenticated command"))}
	m.add(signatures.Tag_TAG_SIGNATURE_TYPE, []byte{byte(signatures.SignatureType_SIGNATURE_TYPE_HMAC_PERSONALIZED)})
	m.add(signatures.Tag_TAG_DOMAIN, []byte{byte(domain)})
	m.add(signatures.Tag_TAG_PERSONALIZATION, []byte(vin))
	m.add(signatures.Tag_TAG_EPOCH, epoch)
	m.addUint32(signatures.Tag_TAG_EXPIRES_AT, expiresAt)
	m.addUint32(signatures.Tag_TAG_COUNTER, counter)
	if flags != 0 {
		m.addUint32(signatures.Tag_TAG_FLAGS, flags)
	}
	return m.sum(payload)
}

// requestHash is the signature type byte followed by the request's tag,
// truncated to 17 bytes for VCSEC (protocol.md §Request hash).
func requestHash(domain universal.Domain, tag []byte) []byte {
	if domain == domainVCSEC && len(tag) > 16 {
		tag = tag[:16]
	}
	return append([]byte{byte(signatures.SignatureType_SIGNATURE_TYPE_HMAC_PERSONALIZED)}, tag...)
}

// responseAAD is SHA256 of the response metadata: signature type
// AES_GCM_RESPONSE, domain, VIN, counter, the response's flags (always
// present), request hash, fault as uint32 (protocol.md §Response metadata;
// AAD = SHA256(M) as for requests, §AES-GCM encryption).
func responseAAD(reply *universal.RoutableMessage, vin string, reqHash []byte, counter uint32) []byte {
	m := metadata{sha256.New()}
	m.add(signatures.Tag_TAG_SIGNATURE_TYPE, []byte{byte(signatures.SignatureType_SIGNATURE_TYPE_AES_GCM_RESPONSE)})
	m.add(signatures.Tag_TAG_DOMAIN, []byte{byte(reply.GetFromDestination().GetDomain())})
	m.add(signatures.Tag_TAG_PERSONALIZATION, []byte(vin))
	m.addUint32(signatures.Tag_TAG_COUNTER, counter)
	m.addUint32(signatures.Tag_TAG_FLAGS, reply.GetFlags())
	m.add(signatures.Tag_TAG_REQUEST_HASH, reqHash)
	m.addUint32(signatures.Tag_TAG_FAULT, uint32(reply.GetSignedMessageStatus().GetSignedMessageFault()))
	return m.sum(nil)
}

// encryptResponse encrypts reply's payload in place with AES-GCM under K,
// a random 12-byte nonce and responseAAD (protocol.md §Response decryption).
func encryptResponse(k []byte, reply *universal.RoutableMessage, vin string, reqHash []byte, counter uint32) error {
	block, err := aes.NewCipher(k)
	if err != nil {
		return err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	plaintext := reply.GetProtobufMessageAsBytes()
	sealed := gcm.Seal(nil, nonce, plaintext, responseAAD(reply, vin, reqHash, counter))
	reply.Payload = &universal.RoutableMessage_ProtobufMessageAsBytes{ProtobufMessageAsBytes: sealed[:len(plaintext)]}
	reply.SubSigData = &universal.RoutableMessage_SignatureData{SignatureData: &signatures.SignatureData{
		SigType: &signatures.SignatureData_AES_GCM_ResponseData{AES_GCM_ResponseData: &signatures.AES_GCM_Response_Signature_Data{
			Nonce: nonce, Counter: counter, Tag: sealed[len(plaintext):],
		}},
	}}
	return nil
}

// attachSessionInfo puts the domain's signed session info for clientPub
// into reply: as the handshake answer, or with a synchronization fault "so
// the client can resync" (protocol.md §Handshake, §Recovering from
// synchronization errors; reference verifier signatureError/SetSessionInfo).
func (v *vcpState) attachSessionInfo(reply *universal.RoutableMessage, vin string, dom *vcpDomain, clientPub, challenge []byte, now time.Time) error {
	k, err := v.sharedKey(clientPub)
	if err != nil {
		return err
	}
	info, err := proto.Marshal(&signatures.SessionInfo{
		Counter:   dom.session(clientPub).counter,
		PublicKey: v.publicBytes(),
		Epoch:     dom.epoch[:],
		ClockTime: dom.clock(now),
		Status:    signatures.Session_Info_Status_SESSION_INFO_STATUS_OK,
	})
	if err != nil {
		return err
	}
	reply.Payload = &universal.RoutableMessage_SessionInfo{SessionInfo: info}
	reply.SubSigData = &universal.RoutableMessage_SignatureData{SignatureData: &signatures.SignatureData{
		SigType: &signatures.SignatureData_SessionInfoTag{SessionInfoTag: &signatures.HMAC_Signature_Data{
			Tag: sessionInfoTag(k, vin, challenge, info),
		}},
	}}
	return nil
}

// firmwareEncryptsResponses: "vehicles with compatible firmware (2024.38+)"
// encrypt replies when asked (protocol.md §Message encoding). An
// unparsable version counts as new.
func firmwareEncryptsResponses(version string) bool {
	parts := strings.SplitN(strings.TrimSpace(version), ".", 3)
	if len(parts) < 2 {
		return true
	}
	year, err1 := strconv.Atoi(parts[0])
	week, err2 := strconv.Atoi(strings.Fields(parts[1] + " ")[0])
	if err1 != nil || err2 != nil {
		return true
	}
	return year*100+week >= 202438
}

// faultName is a MessageFault_E's name without "MESSAGEFAULT_ERROR_"
// ("INVALID_SIGNATURE"): the Signed counters' outcome key.
func faultName(code universal.MessageFault_E) string {
	return strings.TrimPrefix(code.String(), "MESSAGEFAULT_ERROR_")
}

// parseMessageFault reads a MessageFault_E by name ("BUSY" or
// "MESSAGEFAULT_ERROR_BUSY", any case) or number; NONE is not a fault.
func parseMessageFault(name string) (universal.MessageFault_E, bool) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if v, ok := universal.MessageFault_E_value["MESSAGEFAULT_ERROR_"+strings.TrimPrefix(n, "MESSAGEFAULT_ERROR_")]; ok && v != 0 {
		return universal.MessageFault_E(v), true
	}
	if i, err := strconv.Atoi(n); err == nil && i > 0 {
		if _, ok := universal.MessageFault_E_name[int32(i)]; ok {
			return universal.MessageFault_E(i), true
		}
	}
	return 0, false
}

// ParsePublicKey reads a client public key as PairKey takes it: a 65-byte
// uncompressed P-256 point (0x04||X||Y), a PEM "PUBLIC KEY" (PKIX) block
// (the file served at /.well-known/appspecific/com.tesla.3p.public-key.pem),
// or the point in hex or base64. It returns the 65-byte point.
func ParsePublicKey(data []byte) ([]byte, error) {
	var point []byte
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(data) == 65 && data[0] == 4:
		point = data
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		block, _ := pem.Decode(trimmed)
		if block == nil || block.Type != "PUBLIC KEY" {
			return nil, ErrInvalidPublicKey
		}
		pk, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, ErrInvalidPublicKey
		}
		var ek *ecdh.PublicKey
		switch k := pk.(type) {
		case *ecdsa.PublicKey:
			if ek, err = k.ECDH(); err != nil {
				return nil, ErrInvalidPublicKey
			}
		case *ecdh.PublicKey:
			ek = k
		default:
			return nil, ErrInvalidPublicKey
		}
		point = ek.Bytes()
	default:
		text := string(trimmed)
		for _, decode := range []func(string) ([]byte, error){
			hex.DecodeString,
			base64.StdEncoding.DecodeString,
			func(t string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(strings.TrimRight(t, "=")) },
		} {
			if b, err := decode(text); err == nil && len(b) == 65 {
				point = b
				break
			}
		}
	}
	pub, err := ecdh.P256().NewPublicKey(point)
	if err != nil {
		return nil, ErrInvalidPublicKey
	}
	return pub.Bytes(), nil
}

// publicKeyPEM is the PEM "PUBLIC KEY" form of a 65-byte point.
func publicKeyPEM(point []byte) string {
	pub, err := ecdh.P256().NewPublicKey(point)
	if err != nil {
		return ""
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// shortKey is a point's first bytes in hex, for logs.
func shortKey(point []byte) string {
	h := hex.EncodeToString(point)
	if len(h) > 18 {
		return h[:18] + "…"
	}
	return h
}
