package fleetsim

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/teslamotors/vehicle-command/pkg/cache"
	"github.com/teslamotors/vehicle-command/pkg/protocol"
	"github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/signatures"
	universal "github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/universalmessage"
	"github.com/teslamotors/vehicle-command/pkg/vehicle"
)

// The schedule TestChargeScheduleStorageAndReadback sends over REST, as the library sends it.
func librarySchedule() *vehicle.ChargeSchedule {
	return &vehicle.ChargeSchedule{
		Id: 101, DaysOfWeek: DaysAll, Enabled: true, StartEnabled: true, EndEnabled: true,
		Latitude: 52.2297, Longitude: 21.0122, StartTime: 1320, EndTime: 360,
	}
}

func TestSignedChargeCommandsWithLibrary(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newClientKey(t)
	h.sim.AddCar(CarState{VIN: testVIN, Latitude: 52.2297, Longitude: 21.0122, BatteryLevel: 55, MaxNumChargeSchedules: 2})
	if err := h.sim.PairKey(testVIN, key.PublicBytes()); err != nil {
		t.Fatal(err)
	}
	h.addLegacyCar(legacyVIN)
	v, conn := h.connectVehicle(testVIN, key, nil)

	startSession(t, v)
	if conn.posts() != 1 || h.sim.SignedRequests(testVIN).Handshakes != 1 {
		t.Fatalf("handshake: %d POSTs, counters %+v", conn.posts(), h.sim.SignedRequests(testVIN))
	}

	// The same schedule over REST (legacy car) and signed: stored alike.
	if st, resp := h.api(http.MethodPost, "/api/1/vehicles/"+legacyVIN+"/command/add_charge_schedule", h.token(), validSchedule()); st != 200 || obj(t, resp, "response")["result"] != true {
		t.Fatalf("REST add: %d %v", st, resp)
	}
	if err := v.AddChargeSchedule(cmdCtx(t), librarySchedule()); err != nil {
		t.Fatalf("AddChargeSchedule: %v", err)
	}
	signed, rest := h.sim.Schedules(testVIN), h.sim.Schedules(legacyVIN)
	if len(signed) != 1 || len(rest) != 1 || signed[0] != rest[0] {
		t.Fatalf("signed %+v, REST %+v", signed, rest)
	}
	if conn.posts() != 2 {
		t.Errorf("a warm command cost %d POSTs in all, want 2", conn.posts())
	}
	// The reply was encrypted (FLAG_ENCRYPT_RESPONSE, firmware 2025.44).
	if conn.lastReply(t).GetSignatureData().GetAES_GCM_ResponseData() == nil {
		t.Error("reply not encrypted")
	}
	// The same bytes again: a replay, refused; the schedule is stored once.
	_, reply := h.postSigned(testVIN, conn.lastSent())
	if reply.GetSignedMessageStatus().GetSignedMessageFault() != universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_TOKEN_OR_COUNTER || reply.GetSessionInfo() == nil {
		t.Errorf("replay: %v", reply)
	}

	// Modify in place; a no-id schedule gets the clock's Unix time; the third does not fit.
	mod := librarySchedule()
	mod.StartTime = 60
	if err := v.AddChargeSchedule(cmdCtx(t), mod); err != nil {
		t.Fatal(err)
	}
	noID := librarySchedule()
	noID.Id = 0
	if err := v.AddChargeSchedule(cmdCtx(t), noID); err != nil {
		t.Fatal(err)
	}
	third := librarySchedule()
	third.Id = 8
	err := v.AddChargeSchedule(cmdCtx(t), third)
	if !protocol.IsNominalError(err) || !strings.Contains(err.Error(), "max schedules reached") {
		t.Errorf("third schedule: %v", err)
	}
	if got := h.sim.Schedules(testVIN); len(got) != 2 || got[0].StartTime != 60 || got[1].ID != simStart.Unix() {
		t.Errorf("schedules %+v", got)
	}
	if err := v.RemoveChargeSchedule(cmdCtx(t), 101); err != nil {
		t.Fatal(err)
	}
	if err := v.RemoveChargeSchedule(cmdCtx(t), 101); err != nil {
		t.Errorf("removing an unknown id must succeed like the car: %v", err)
	}
	if got := h.sim.Schedules(testVIN); len(got) != 1 || got[0].ID != simStart.Unix() {
		t.Errorf("after remove %+v", got)
	}

	// Charge limit 50..100.
	if err := v.ChangeChargeLimit(cmdCtx(t), 90); err != nil {
		t.Fatal(err)
	}
	if err := v.ChangeChargeLimit(cmdCtx(t), 30); !protocol.IsNominalError(err) || !strings.Contains(err.Error(), "requested charge limit out of range") {
		t.Errorf("limit 30: %v", err)
	}
	if c, _ := h.sim.Car(testVIN); c.ChargeLimitSOC != 90 {
		t.Errorf("limit %d", c.ChargeLimitSOC)
	}

	// Start and stop.
	if err := v.ChargeStart(cmdCtx(t)); !protocol.IsNominalError(err) || !strings.Contains(err.Error(), "disconnected") {
		t.Errorf("start unplugged: %v", err)
	}
	_ = h.sim.SetCar(testVIN, func(c *CarState) { c.ConnChargeCable, c.ChargingState = CableIEC, ChargingStopped })
	if err := v.ChargeStart(cmdCtx(t)); err != nil {
		t.Fatalf("ChargeStart: %v", err)
	}
	if c, _ := h.sim.Car(testVIN); c.ChargingState != ChargingCharging {
		t.Errorf("charging state %s", c.ChargingState)
	}
	if err := v.ChargeStart(cmdCtx(t)); !protocol.IsNominalError(err) || !strings.Contains(err.Error(), "is_charging") {
		t.Errorf("start while charging: %v", err)
	}
	if err := v.ChargeStop(cmdCtx(t)); err != nil {
		t.Fatalf("ChargeStop: %v", err)
	}
	if err := v.ChargeStop(cmdCtx(t)); !protocol.IsNominalError(err) || !strings.Contains(err.Error(), "not_charging") {
		t.Errorf("stop when stopped: %v", err)
	}
	if c, _ := h.sim.Car(testVIN); c.ChargingState != ChargingStopped {
		t.Errorf("charging state %s", c.ChargingState)
	}
	if err := v.Ping(cmdCtx(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if err := v.SetVolume(cmdCtx(t), 3); !protocol.IsNominalError(err) || !strings.Contains(err.Error(), "unsupported action") {
		t.Errorf("unsupported action: %v", err)
	}

	// 15 commands, one POST each, all verified; plus the handshake and the replay.
	sc := h.sim.SignedRequests(testVIN)
	if sc.Handshakes != 1 || sc.Commands != 16 || sc.CommandOutcomes[OutcomeVerified] != 15 ||
		sc.CommandOutcomes["INVALID_TOKEN_OR_COUNTER"] != 1 || sc.Outcomes[OutcomeVerified] != 16 || conn.posts() != 16 {
		t.Errorf("signed counters %+v, POSTs %d", sc, conn.posts())
	}
	if got := h.sim.FleetRequests(testVIN, CategoryCommand); got != 17 || h.sim.BilledRequests(testVIN, CategoryCommand) != 17 {
		t.Errorf("command requests %d billed %d, want 17", got, h.sim.BilledRequests(testVIN, CategoryCommand))
	}
	if total := h.sim.SignedRequests(""); total.Commands != 16 || total.Handshakes != 1 {
		t.Errorf("total %+v", total)
	}
}

// FLAG_ENCRYPT_RESPONSE: firmware 2024.38+ encrypts the reply and the library
// decrypts it; older firmware ignores the flag (protocol.md §Response decryption).
func TestSignedRepliesEncryptedUnlessOldFirmware(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fw        string
		encrypted bool
	}{{"2025.44.25", true}, {"2024.38.2", true}, {"2024.26.3", false}} {
		h := newHarness(t, Options{})
		key := newClientKey(t)
		h.sim.AddCar(CarState{VIN: testVIN, FirmwareVersion: tc.fw})
		_ = h.sim.PairKey(testVIN, key.PublicBytes())
		v, conn := h.connectVehicle(testVIN, key, nil)
		startSession(t, v)
		if err := v.ChangeChargeLimit(cmdCtx(t), 85); err != nil {
			t.Fatalf("%s: %v", tc.fw, err)
		}
		var sent universal.RoutableMessage
		_ = proto.Unmarshal(conn.lastSent(), &sent)
		if sent.GetFlags() != 2 {
			t.Errorf("library flags %d, want FLAG_ENCRYPT_RESPONSE (2)", sent.GetFlags())
		}
		reply := conn.lastReply(t)
		if got := reply.GetSignatureData().GetAES_GCM_ResponseData() != nil; got != tc.encrypted {
			t.Errorf("%s: reply encrypted %v, want %v", tc.fw, got, tc.encrypted)
		}
		if c, _ := h.sim.Car(testVIN); c.ChargeLimitSOC != 85 {
			t.Errorf("%s: limit %d", tc.fw, c.ChargeLimitSOC)
		}
	}
}

func TestSignedHandshakeUnpairedKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addSigningCar(testVIN, nil)
	key := newClientKey(t)
	v, conn := h.connectVehicle(testVIN, key, nil)
	err := v.StartSession(cmdCtx(t), infotainmentOnly)
	if !errors.Is(err, protocol.ErrKeyNotPaired) {
		t.Fatalf("StartSession with an unpaired key: %v, want ErrKeyNotPaired", err)
	}
	if conn.posts() != 1 {
		t.Errorf("%d POSTs, want 1 (not retried)", conn.posts())
	}
	if sc := h.sim.SignedRequests(testVIN); sc.Handshakes != 1 || sc.HandshakeOutcomes["KEY_NOT_ON_WHITELIST"] != 1 {
		t.Errorf("counters %+v", sc)
	}

	// Paired now (the owner approved the link): the same client connects.
	if err := h.sim.PairKey(testVIN, key.PublicBytes()); err != nil {
		t.Fatal(err)
	}
	v2, _ := h.connectVehicle(testVIN, key, nil)
	startSession(t, v2)
	// Both domains: two handshakes.
	v3, conn3 := h.connectVehicle(testVIN, key, nil)
	if err := v3.StartSession(cmdCtx(t), nil); err != nil {
		t.Fatalf("StartSession(nil): %v", err)
	}
	if conn3.posts() != 2 {
		t.Errorf("both domains: %d POSTs, want 2", conn3.posts())
	}
	// A VCSEC command (lock): answered with an empty FromVCSECMessage.
	if err := v3.Lock(cmdCtx(t)); err != nil {
		t.Errorf("Lock: %v", err)
	}
	if conn3.posts() != 3 {
		t.Errorf("lock: %d POSTs in all, want 3", conn3.posts())
	}
	// Unpaired again: the cached session is refused.
	if err := h.sim.UnpairKey(testVIN, key.PublicBytes()); err != nil {
		t.Fatal(err)
	}
	if err := v3.ChangeChargeLimit(cmdCtx(t), 70); !errors.Is(err, protocol.ErrKeyNotPaired) {
		t.Errorf("command after unpairing: %v", err)
	}
}

func TestSignedWrongKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	keyA, keyB := newClientKey(t), newClientKey(t)
	h.addSigningCar(testVIN, keyA)

	// B's handshake: not paired.
	vb, _ := h.connectVehicle(testVIN, keyB, nil)
	if err := vb.StartSession(cmdCtx(t), infotainmentOnly); !errors.Is(err, protocol.ErrKeyNotPaired) {
		t.Fatalf("B handshake: %v", err)
	}

	// A's session cache holds no key material; B signing with it is refused.
	va, _ := h.connectVehicle(testVIN, keyA, nil)
	startSession(t, va)
	sessions := cache.New(0)
	if err := va.UpdateCachedSessions(sessions); err != nil {
		t.Fatal(err)
	}
	vb2, connB := h.connectVehicle(testVIN, keyB, sessions)
	if err := vb2.ChangeChargeLimit(cmdCtx(t), 60); !errors.Is(err, protocol.ErrKeyNotPaired) {
		t.Fatalf("B signing: %v, want ErrKeyNotPaired", err)
	}
	if sc := h.sim.SignedRequests(testVIN); sc.CommandOutcomes["UNKNOWN_KEY_ID"] != 1 {
		t.Errorf("counters %+v", sc)
	}

	// B's message claiming to be A: the tag does not match A's shared key
	// (INVALID_SIGNATURE, retried by the library); the resend, as B, is
	// refused as unpaired.
	pubA := keyA.PublicBytes()
	connB.before = func(i int, msg []byte) []byte {
		if i != 1 {
			return msg
		}
		return rewrite(t, msg, func(m *universal.RoutableMessage) {
			m.GetSignatureData().SignerIdentity = &signatures.KeyIdentity{IdentityType: &signatures.KeyIdentity_PublicKey{PublicKey: pubA}}
		})
	}
	if err := vb2.ChangeChargeLimit(cmdCtx(t), 60); !errors.Is(err, protocol.ErrKeyNotPaired) {
		t.Fatalf("B as A: %v", err)
	}
	if sc := h.sim.SignedRequests(testVIN); sc.CommandOutcomes["INVALID_SIGNATURE"] != 1 || sc.CommandOutcomes["UNKNOWN_KEY_ID"] != 2 || connB.posts() != 3 {
		t.Errorf("counters %+v, B POSTs %d", sc, connB.posts())
	}
	if c, _ := h.sim.Car(testVIN); c.ChargeLimitSOC != 80 {
		t.Errorf("limit changed to %d", c.ChargeLimitSOC)
	}
}
