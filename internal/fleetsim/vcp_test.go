package fleetsim

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/carserver"
	"github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/signatures"
	universal "github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/universalmessage"
	"github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/vcsec"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recorder is a hash.Hash that keeps what was written: Sum returns it.
type recorder struct{ bytes.Buffer }

func (r *recorder) Sum(b []byte) []byte { return append(b, r.Bytes()...) }
func (r *recorder) Size() int           { return r.Len() }
func (r *recorder) BlockSize() int      { return 1 }

// The test vectors of protocol.md (§Test keys, §Key Agreement, §Response
// authentication, §Metadata serialization, §AES-GCM encryption).
func TestProtocolTestVectors(t *testing.T) {
	v, err := ecdh.P256().NewPrivateKey(mustHex(t, "344EE5B466A7CF1EEB12B6F50331DB2E5EC5834EF5F4BEFCFD8CBE55C2528D70"))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(v.PublicKey().Bytes()); got != "04c7a1f47138486aa4729971494878d33b1a24e39571f748a6e16c5955b3d877d3a6aaa0e955166474af5d32c410f439a2234137ad1bb085fd4e8813c958f11d97" {
		t.Fatalf("vehicle public key %s", got)
	}
	car := &vcpState{key: v}
	clientPub := mustHex(t, "04b2b6bc68c2da0665ce656815594996c62394edd8bea905fe781a754fe6a845a714330902f225e9269d466e05b349981fda9d85cc23c6fb444aa73b629105dc6e")
	k, err := car.sharedKey(clientPub)
	if err != nil || hex.EncodeToString(k) != "1b2fce19967b79db696f909cff89ea9a" {
		t.Fatalf("K = %x (%v)", k, err)
	}
	if got := hex.EncodeToString(subkey(k, "session info")); got != "fceb679ee7bca756fcd441bf238bf2f338629b41d9eb9c67be1b32c9672ce300" {
		t.Errorf("SESSION_INFO_KEY %s", got)
	}
	info := mustHex(t, "0806124104c7a1f47138486aa4729971494878d33b1a24e39571f748a6e16c5955b3d877d3a6aaa0e955166474af5d32c410f439a2234137ad1bb085fd4e8813c958f11d971a104c463f9cc0d3d26906e982ed224adde6255a0a0000")
	var si signatures.SessionInfo
	if err := proto.Unmarshal(info, &si); err != nil || si.Counter != 6 || si.ClockTime != 2650 {
		t.Errorf("session info %v (%v)", &si, err)
	}
	tag := sessionInfoTag(k, "5YJ30123456789ABC", mustHex(t, "1588d5a30eabc6f8fc9a951b11f6fd11"), info)
	if got := hex.EncodeToString(tag); got != "996c1fe38331be138f8039c194b14db2198846ed7d8251e6749284d7b32ea002" {
		t.Errorf("session info tag %s", got)
	}

	// SERIALIZE({COUNTER: 100, VIN: "abc"}).
	r := &recorder{}
	m := metadata{r}
	m.add(signatures.Tag_TAG_PERSONALIZATION, []byte("abc"))
	m.addUint32(signatures.Tag_TAG_COUNTER, 100)
	if got := hex.EncodeToString(m.sum(nil)); got != "0203616263050400000064ff" {
		t.Errorf("metadata %s", got)
	}
	// The AES-GCM example's metadata.
	r = &recorder{}
	m = metadata{r}
	m.add(signatures.Tag_TAG_SIGNATURE_TYPE, []byte{byte(signatures.SignatureType_SIGNATURE_TYPE_AES_GCM_PERSONALIZED)})
	m.add(signatures.Tag_TAG_DOMAIN, []byte{byte(domainInfotainment)})
	m.add(signatures.Tag_TAG_PERSONALIZATION, []byte("5YJ30123456789ABC"))
	m.add(signatures.Tag_TAG_EPOCH, mustHex(t, "4c463f9cc0d3d26906e982ed224adde6"))
	m.addUint32(signatures.Tag_TAG_EXPIRES_AT, 2655)
	m.addUint32(signatures.Tag_TAG_COUNTER, 7)
	if got := hex.EncodeToString(m.sum(nil)); got != "000105010103021135594a333031323334353637383941424303104c463f9cc0d3d26906e982ed224adde6040400000a5f050400000007ff" {
		t.Errorf("GCM example metadata %s", got)
	}
}

func TestSlidingWindow(t *testing.T) {
	var s vcpSession
	steps := []struct {
		counter uint32
		ok      bool
	}{{1, true}, {1, false}, {5, true}, {3, true}, {3, false}, {4, true}, {2, true}, {2, false}, {40, true}, {8, true}, {7, false}, {200, true}, {199, true}, {200, false}, {168, true}, {167, false}}
	for _, st := range steps {
		if got := s.acceptWindow(st.counter); got != st.ok {
			t.Errorf("counter %d: %v, want %v (state %d %b)", st.counter, got, st.ok, s.counter, s.window)
		}
	}
	var v vcpSession
	for _, st := range []struct {
		counter uint32
		ok      bool
	}{{1, true}, {1, false}, {3, true}, {2, false}, {4, true}} {
		if got := v.acceptStrict(st.counter); got != st.ok {
			t.Errorf("strict counter %d: %v", st.counter, got)
		}
	}
}

// rawClient speaks the protocol by hand, to reach the rules the library
// never breaks.
type rawClient struct {
	t    *testing.T
	h    *harness
	vin  string
	priv *ecdh.PrivateKey
	addr []byte
	k    []byte
	info map[universal.Domain]*signatures.SessionInfo
}

func newRawClient(h *harness, vin string) *rawClient {
	priv, _ := ecdh.P256().GenerateKey(rand.Reader)
	c := &rawClient{t: h.t, h: h, vin: vin, priv: priv, addr: randomBytes(16), info: map[universal.Domain]*signatures.SessionInfo{}}
	if err := h.sim.PairKey(vin, priv.PublicKey().Bytes()); err != nil {
		h.t.Fatal(err)
	}
	return c
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func (c *rawClient) post(m *universal.RoutableMessage) *universal.RoutableMessage {
	c.t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	st, reply := c.h.postSigned(c.vin, data)
	if st != 200 {
		c.t.Fatalf("signed_command: %d", st)
	}
	// Addressing: to and from reversed, uuid echoed (protocol.md §Message encoding).
	if !bytes.Equal(reply.GetToDestination().GetRoutingAddress(), c.addr) || reply.GetFromDestination().GetDomain() != m.GetToDestination().GetDomain() ||
		!bytes.Equal(reply.GetRequestUuid(), m.GetUuid()) {
		c.t.Errorf("reply addressing %v", reply)
	}
	return reply
}

// handshake requests session info and checks its tag with an independently derived K.
func (c *rawClient) handshake(domain universal.Domain) *signatures.SessionInfo {
	c.t.Helper()
	uuid := randomBytes(16)
	reply := c.post(&universal.RoutableMessage{
		ToDestination:   &universal.Destination{SubDestination: &universal.Destination_Domain{Domain: domain}},
		FromDestination: &universal.Destination{SubDestination: &universal.Destination_RoutingAddress{RoutingAddress: c.addr}},
		Payload:         &universal.RoutableMessage_SessionInfoRequest{SessionInfoRequest: &universal.SessionInfoRequest{PublicKey: c.priv.PublicKey().Bytes()}},
		Uuid:            uuid,
	})
	return c.checkSessionInfo(reply, uuid)
}

func (c *rawClient) checkSessionInfo(reply *universal.RoutableMessage, uuid []byte) *signatures.SessionInfo {
	c.t.Helper()
	var info signatures.SessionInfo
	if err := proto.Unmarshal(reply.GetSessionInfo(), &info); err != nil || reply.GetSessionInfo() == nil {
		c.t.Fatalf("no session info in %v", reply)
	}
	carPub, err := ecdh.P256().NewPublicKey(info.GetPublicKey())
	if err != nil {
		c.t.Fatal(err)
	}
	secret, _ := c.priv.ECDH(carPub)
	sum := sha1.Sum(secret)
	c.k = sum[:16]
	if want := sessionInfoTag(c.k, c.vin, uuid, reply.GetSessionInfo()); !bytes.Equal(want, reply.GetSignatureData().GetSessionInfoTag().GetTag()) {
		c.t.Errorf("session info tag does not verify")
	}
	return &info
}

// command sends payload to domain with HMAC data hm (Tag computed unless
// set), flags and an optional last-minute mutation.
func (c *rawClient) command(domain universal.Domain, payload []byte, hm *signatures.HMAC_Personalized_Signature_Data, flags uint32, mutate func(*universal.RoutableMessage)) *universal.RoutableMessage {
	c.t.Helper()
	info := c.info[domain]
	if hm.Tag == nil {
		epoch := hm.Epoch
		if epoch == nil {
			epoch = info.GetEpoch()
		}
		hm.Tag = commandTag(c.k, domain, c.vin, epoch, hm.ExpiresAt, hm.Counter, flags, payload)
	}
	m := &universal.RoutableMessage{
		ToDestination:   &universal.Destination{SubDestination: &universal.Destination_Domain{Domain: domain}},
		FromDestination: &universal.Destination{SubDestination: &universal.Destination_RoutingAddress{RoutingAddress: c.addr}},
		Payload:         &universal.RoutableMessage_ProtobufMessageAsBytes{ProtobufMessageAsBytes: payload},
		SubSigData: &universal.RoutableMessage_SignatureData{SignatureData: &signatures.SignatureData{
			SignerIdentity: &signatures.KeyIdentity{IdentityType: &signatures.KeyIdentity_PublicKey{PublicKey: c.priv.PublicKey().Bytes()}},
			SigType:        &signatures.SignatureData_HMAC_PersonalizedData{HMAC_PersonalizedData: hm},
		}},
		Uuid:  randomBytes(16),
		Flags: flags,
	}
	if mutate != nil {
		mutate(m)
	}
	return c.post(m)
}

func faultOf(m *universal.RoutableMessage) universal.MessageFault_E {
	return m.GetSignedMessageStatus().GetSignedMessageFault()
}

func limitAction(t *testing.T, pct int32) []byte {
	b, err := proto.Marshal(&carserver.Action{ActionMsg: &carserver.Action_VehicleAction{VehicleAction: &carserver.VehicleAction{
		VehicleActionMsg: &carserver.VehicleAction_ChargingSetLimitAction{ChargingSetLimitAction: &carserver.ChargingSetLimitAction{Percent: pct}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignedVerificationRules(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addCar(testVIN)
	c := newRawClient(h, testVIN)
	const (
		inf = domainInfotainment
		sec = domainVCSEC
	)

	info := c.handshake(inf)
	if info.Counter != 0 || info.ClockTime != 0 || len(info.Epoch) != 16 || !bytes.Equal(info.PublicKey, h.sim.VehiclePublicKey(testVIN)) ||
		info.Status != signatures.Session_Info_Status_SESSION_INFO_STATUS_OK {
		t.Fatalf("session info %v", info)
	}
	h.clk.Advance(90 * time.Second)
	info = c.handshake(inf)
	if info.ClockTime != 90 {
		t.Errorf("clock_time %d after 90 s", info.ClockTime)
	}
	c.info[inf] = info
	clock := info.ClockTime
	hmac := func(counter, ttl uint32) *signatures.HMAC_Personalized_Signature_Data {
		return &signatures.HMAC_Personalized_Signature_Data{Epoch: info.Epoch, Counter: counter, ExpiresAt: clock + ttl}
	}

	// A plain command (flags 0: plaintext reply).
	reply := c.command(inf, limitAction(t, 90), hmac(1, 10), 0, nil)
	var resp carserver.Response
	if faultOf(reply) != 0 || proto.Unmarshal(reply.GetProtobufMessageAsBytes(), &resp) != nil ||
		resp.GetActionStatus().GetResult() != carserver.OperationStatus_E_OPERATIONSTATUS_OK || reply.GetSignatureData() != nil {
		t.Fatalf("command: %v", reply)
	}
	if car, _ := h.sim.Car(testVIN); car.ChargeLimitSOC != 90 {
		t.Errorf("limit %d", car.ChargeLimitSOC)
	}
	// An application-level refusal.
	reply = c.command(inf, limitAction(t, 20), hmac(2, 10), 0, nil)
	if _ = proto.Unmarshal(reply.GetProtobufMessageAsBytes(), &resp); resp.GetActionStatus().GetResult() != carserver.OperationStatus_E_OPERATIONSTATUS_ERROR ||
		resp.GetActionStatus().GetResultReason().GetPlainText() != "requested charge limit out of range" {
		t.Errorf("limit 20: %v", &resp)
	}

	const (
		invalidToken = universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_TOKEN_OR_COUNTER
		ttlTooLong   = universal.MessageFault_E_MESSAGEFAULT_ERROR_TIME_TO_LIVE_TOO_LONG
	)
	for _, tc := range []struct {
		name    string
		counter uint32
		ttl     uint32
		want    universal.MessageFault_E
	}{
		{"replayed counter", 2, 10, invalidToken},
		{"jump ahead", 6, 10, 0},
		{"out of order, short expiry", 4, 10, 0},
		{"out of order again", 4, 10, invalidToken},
		{"out of order, long expiry", 3, 31, ttlTooLong},
		{"zero counter, short expiry", 0, 30, 0},
		{"zero counter, long expiry", 0, 31, ttlTooLong},
		{"further ahead", 40, 10, 0},
		{"older than the window", 7, 10, invalidToken},
		{"in order, 59 min", 41, 59 * 60, 0},
		{"in order, 2 h", 42, 2 * 3600, ttlTooLong},
	} {
		reply := c.command(inf, limitAction(t, 70), hmac(tc.counter, tc.ttl), 0, nil)
		if faultOf(reply) != tc.want {
			t.Errorf("%s: fault %v, want %v", tc.name, faultOf(reply), tc.want)
		}
		if tc.want != 0 {
			if got := c.checkSessionInfo(reply, reply.GetRequestUuid()); got == nil {
				t.Errorf("%s: no session info", tc.name)
			}
		}
	}

	// Expired; wrong epoch (with the current one in the attached session info); no epoch.
	if r := c.command(inf, limitAction(t, 70), &signatures.HMAC_Personalized_Signature_Data{Epoch: info.Epoch, Counter: 50, ExpiresAt: clock - 1}, 0, nil); faultOf(r) != universal.MessageFault_E_MESSAGEFAULT_ERROR_TIME_EXPIRED {
		t.Errorf("expired: %v", r)
	}
	r := c.command(inf, limitAction(t, 70), &signatures.HMAC_Personalized_Signature_Data{Epoch: randomBytes(16), Counter: 51, ExpiresAt: clock + 10}, 0, nil)
	if faultOf(r) != universal.MessageFault_E_MESSAGEFAULT_ERROR_INCORRECT_EPOCH {
		t.Errorf("wrong epoch: %v", r)
	}
	var fresh signatures.SessionInfo
	if _ = proto.Unmarshal(r.GetSessionInfo(), &fresh); !bytes.Equal(fresh.Epoch, info.Epoch) || fresh.Counter != 41 {
		t.Errorf("session info with the fault: %v", &fresh)
	}
	if r := c.command(inf, limitAction(t, 71), &signatures.HMAC_Personalized_Signature_Data{Counter: 52, ExpiresAt: clock + 10}, 0, nil); faultOf(r) != 0 {
		t.Errorf("no epoch: %v", r)
	}

	// Other refusals.
	for _, tc := range []struct {
		name   string
		mutate func(*universal.RoutableMessage)
		want   universal.MessageFault_E
	}{
		{"no signature", func(m *universal.RoutableMessage) { m.SubSigData = nil }, universal.MessageFault_E_MESSAGEFAULT_ERROR_BAD_PARAMETER},
		{"AES-GCM", func(m *universal.RoutableMessage) {
			m.GetSignatureData().SigType = &signatures.SignatureData_AES_GCM_PersonalizedData{AES_GCM_PersonalizedData: &signatures.AES_GCM_Personalized_Signature_Data{
				Epoch: info.Epoch, Nonce: randomBytes(12), Counter: 60, ExpiresAt: clock + 10, Tag: randomBytes(16)}}
		}, universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_COMMAND},
		{"broadcast", func(m *universal.RoutableMessage) {
			m.ToDestination = &universal.Destination{SubDestination: &universal.Destination_Domain{Domain: universal.Domain_DOMAIN_BROADCAST}}
		}, universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_DOMAINS},
		{"unpaired signer", func(m *universal.RoutableMessage) {
			other, _ := ecdh.P256().GenerateKey(rand.Reader)
			m.GetSignatureData().SignerIdentity = &signatures.KeyIdentity{IdentityType: &signatures.KeyIdentity_PublicKey{PublicKey: other.PublicKey().Bytes()}}
		}, universal.MessageFault_E_MESSAGEFAULT_ERROR_UNKNOWN_KEY_ID},
		{"session info as payload", func(m *universal.RoutableMessage) {
			m.Payload = &universal.RoutableMessage_SessionInfo{SessionInfo: []byte{1}}
		}, universal.MessageFault_E_MESSAGEFAULT_ERROR_DECODING},
	} {
		if r := c.command(inf, limitAction(t, 72), hmac(70, 10), 0, tc.mutate); faultOf(r) != tc.want || r.GetSessionInfo() != nil {
			t.Errorf("%s: %v", tc.name, r)
		}
	}
	if r := c.command(inf, []byte{0xff, 0xff}, hmac(71, 10), 0, nil); faultOf(r) != universal.MessageFault_E_MESSAGEFAULT_ERROR_DECODING {
		t.Errorf("undecodable action: %v", r)
	}

	// VCSEC: strict counter order; replies encrypted when asked.
	c.info[sec] = c.handshake(sec)
	vinfo := c.info[sec]
	if bytes.Equal(vinfo.Epoch, info.Epoch) {
		t.Error("VCSEC and infotainment share an epoch")
	}
	rke, _ := proto.Marshal(&vcsec.UnsignedMessage{SubMessage: &vcsec.UnsignedMessage_RKEAction{RKEAction: vcsec.RKEAction_E_RKE_ACTION_LOCK}})
	vh := func(counter uint32) *signatures.HMAC_Personalized_Signature_Data {
		return &signatures.HMAC_Personalized_Signature_Data{Epoch: vinfo.Epoch, Counter: counter, ExpiresAt: vinfo.ClockTime + 10}
	}
	for _, tc := range []struct {
		counter uint32
		want    universal.MessageFault_E
	}{{5, 0}, {4, invalidToken}, {5, invalidToken}, {6, 0}} {
		if r := c.command(sec, rke, vh(tc.counter), 0, nil); faultOf(r) != tc.want {
			t.Errorf("VCSEC counter %d: %v", tc.counter, r)
		}
	}
	if r := c.command(sec, rke, vh(7), flagEncryptResponse, nil); faultOf(r) != 0 || r.GetSignatureData().GetAES_GCM_ResponseData().GetCounter() != 1 {
		t.Errorf("VCSEC encrypted reply: %v", r)
	}

	// Sessions are per key: a second key starts at counter 0.
	c2 := newRawClient(h, testVIN)
	if info2 := c2.handshake(inf); info2.Counter != 0 || !bytes.Equal(info2.Epoch, info.Epoch) {
		t.Errorf("second key's session %v", info2)
	}
	// A handshake from an unpaired key.
	stranger := &rawClient{t: t, h: h, vin: testVIN, addr: randomBytes(16)}
	stranger.priv, _ = ecdh.P256().GenerateKey(rand.Reader)
	uuid := randomBytes(16)
	r = stranger.post(&universal.RoutableMessage{
		ToDestination:   &universal.Destination{SubDestination: &universal.Destination_Domain{Domain: inf}},
		FromDestination: &universal.Destination{SubDestination: &universal.Destination_RoutingAddress{RoutingAddress: stranger.addr}},
		Payload:         &universal.RoutableMessage_SessionInfoRequest{SessionInfoRequest: &universal.SessionInfoRequest{PublicKey: stranger.priv.PublicKey().Bytes()}},
		Uuid:            uuid,
	})
	var notPaired signatures.SessionInfo
	_ = proto.Unmarshal(r.GetSessionInfo(), &notPaired)
	if faultOf(r) != universal.MessageFault_E_MESSAGEFAULT_ERROR_UNKNOWN_KEY_ID || notPaired.Status != signatures.Session_Info_Status_SESSION_INFO_STATUS_KEY_NOT_ON_WHITELIST ||
		r.GetSignatureData() != nil || notPaired.Epoch != nil {
		t.Errorf("unpaired handshake: %v", r)
	}

	sc := h.sim.SignedRequests(testVIN)
	if sc.HandshakeOutcomes[OutcomeVerified] != 4 || sc.HandshakeOutcomes["KEY_NOT_ON_WHITELIST"] != 1 || sc.CommandOutcomes["INVALID_TOKEN_OR_COUNTER"] != 5 ||
		sc.CommandOutcomes["TIME_TO_LIVE_TOO_LONG"] != 3 || sc.CommandOutcomes["INCORRECT_EPOCH"] != 1 || sc.CommandOutcomes["TIME_EXPIRED"] != 1 ||
		sc.CommandOutcomes["INVALID_COMMAND"] != 1 || sc.CommandOutcomes["INVALID_DOMAINS"] != 1 || sc.CommandOutcomes["UNKNOWN_KEY_ID"] != 1 ||
		sc.CommandOutcomes["BAD_PARAMETER"] != 1 || sc.CommandOutcomes["DECODING"] != 2 {
		t.Errorf("counters %+v", sc)
	}
}

// A domain starts a new epoch when the clock runs backwards or the epoch
// runs out (reference verifier adjustClock / rotateEpochIfNeeded).
func TestEpochRotation(t *testing.T) {
	t.Parallel()
	v := newVCPState(simStart)
	first := v.domain(domainInfotainment, simStart).epoch
	if v.domain(domainInfotainment, simStart.Add(time.Hour)).epoch != first {
		t.Error("epoch changed while time moved on")
	}
	back := v.domain(domainInfotainment, simStart.Add(-time.Second))
	if back.epoch == first || back.clock(simStart.Add(-time.Second)) != 0 {
		t.Error("no new epoch after the clock went back")
	}
	later := simStart.Add(epochSeconds * time.Second)
	if v.domain(domainInfotainment, later).epoch == back.epoch {
		t.Error("no new epoch after 2^30 s")
	}
	if v.domain(universal.Domain_DOMAIN_BROADCAST, simStart) != nil {
		t.Error("a broadcast domain")
	}
}

func TestParsePublicKey(t *testing.T) {
	t.Parallel()
	priv, _ := ecdh.P256().GenerateKey(rand.Reader)
	point := priv.PublicKey().Bytes()
	for _, in := range [][]byte{point, []byte(publicKeyPEM(point)), []byte(hex.EncodeToString(point)), []byte("  " + hex.EncodeToString(point) + "\n")} {
		if got, err := ParsePublicKey(in); err != nil || !bytes.Equal(got, point) {
			t.Errorf("ParsePublicKey(%.20q): %x %v", in, got, err)
		}
	}
	bad := append([]byte(nil), point...)
	bad[64] ^= 1 // off the curve
	for _, in := range [][]byte{nil, []byte("x"), bad, point[:33], []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")} {
		if _, err := ParsePublicKey(in); err == nil {
			t.Errorf("ParsePublicKey(%.20q) accepted", in)
		}
	}
	s := New(Options{})
	if err := s.PairKey("NOPE", point); err == nil {
		t.Error("PairKey on an unknown car")
	}
	if err := s.UnpairKey("NOPE", point); err == nil {
		t.Error("UnpairKey on an unknown car")
	}
}

func TestParseMessageFault(t *testing.T) {
	for in, want := range map[string]universal.MessageFault_E{
		"BUSY": universal.MessageFault_E_MESSAGEFAULT_ERROR_BUSY, "busy": universal.MessageFault_E_MESSAGEFAULT_ERROR_BUSY,
		"MESSAGEFAULT_ERROR_TIMEOUT": universal.MessageFault_E_MESSAGEFAULT_ERROR_TIMEOUT, "21": universal.MessageFault_E_MESSAGEFAULT_ERROR_REMOTE_ACCESS_DISABLED,
	} {
		if got, ok := parseMessageFault(in); !ok || got != want {
			t.Errorf("%s: %v %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "NONE", "0", "NOPE", "999"} {
		if _, ok := parseMessageFault(in); ok {
			t.Errorf("%q accepted", in)
		}
	}
	if !firmwareEncryptsResponses("2024.38") || firmwareEncryptsResponses("2024.37.9") || !firmwareEncryptsResponses("2025.2.6 abc") || !firmwareEncryptsResponses("dev") {
		t.Error("firmwareEncryptsResponses")
	}
}
