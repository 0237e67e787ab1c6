package fleetsim

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/teslamotors/vehicle-command/pkg/cache"
	"github.com/teslamotors/vehicle-command/pkg/protocol"
	universal "github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/universalmessage"
)

// A tampered message (tag or payload) gets INVALID_SIGNATURE; the library
// resends a fresh one, which runs once.
func TestSignedTamperedMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper func(*universal.RoutableMessage)
	}{
		{"tag", func(m *universal.RoutableMessage) { m.GetSignatureData().GetHMAC_PersonalizedData().Tag[0] ^= 1 }},
		{"payload", func(m *universal.RoutableMessage) {
			p := m.GetProtobufMessageAsBytes()
			p[len(p)-1] ^= 1 // the schedule's last field byte: still a valid protobuf
		}},
		{"expires_at", func(m *universal.RoutableMessage) { m.GetSignatureData().GetHMAC_PersonalizedData().ExpiresAt++ }},
		{"flags", func(m *universal.RoutableMessage) { m.Flags = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{})
			key := newClientKey(t)
			h.addSigningCar(testVIN, key)
			v, conn := h.connectVehicle(testVIN, key, nil)
			startSession(t, v)
			conn.before = func(i int, msg []byte) []byte {
				if i != 1 {
					return msg
				}
				return rewrite(t, msg, tc.tamper)
			}
			if err := v.AddChargeSchedule(cmdCtx(t), librarySchedule()); err != nil {
				t.Fatalf("AddChargeSchedule: %v", err)
			}
			sc := h.sim.SignedRequests(testVIN)
			if conn.posts() != 3 || sc.CommandOutcomes["INVALID_SIGNATURE"] != 1 || sc.CommandOutcomes[OutcomeVerified] != 1 {
				t.Errorf("POSTs %d, counters %+v", conn.posts(), sc)
			}
			if got := h.sim.Schedules(testVIN); len(got) != 1 || got[0].ID != 101 || got[0].EndTime != 360 {
				t.Errorf("schedules %+v", got)
			}
			if c := h.sim.Counters(); c.Signed.ByVIN[testVIN].CommandOutcomes["INVALID_SIGNATURE"] != 1 || c.Signed.Total.Outcomes["INVALID_SIGNATURE"] != 1 {
				t.Errorf("Counters().Signed %+v", c.Signed)
			}
		})
	}
}

// Resending captured bytes: INVALID_TOKEN_OR_COUNTER, nothing runs again.
func TestSignedReplay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newClientKey(t)
	h.addSigningCar(testVIN, key)
	v, conn := h.connectVehicle(testVIN, key, nil)
	startSession(t, v)
	if err := v.ChangeChargeLimit(cmdCtx(t), 90); err != nil {
		t.Fatal(err)
	}
	captured := conn.lastSent()
	_ = h.sim.SetCar(testVIN, func(c *CarState) { c.ChargeLimitSOC = 70 })
	for range 2 {
		st, reply := h.postSigned(testVIN, captured)
		if st != 200 || reply.GetSignedMessageStatus().GetSignedMessageFault() != universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_TOKEN_OR_COUNTER ||
			reply.GetSignatureData().GetSessionInfoTag() == nil {
			t.Fatalf("replay: %d %v", st, reply)
		}
	}
	if c, _ := h.sim.Car(testVIN); c.ChargeLimitSOC != 70 {
		t.Errorf("the replay ran: limit %d", c.ChargeLimitSOC)
	}
	if sc := h.sim.SignedRequests(testVIN); sc.CommandOutcomes["INVALID_TOKEN_OR_COUNTER"] != 2 {
		t.Errorf("counters %+v", sc)
	}
	// The library carries on with its next counter.
	if err := v.ChangeChargeLimit(cmdCtx(t), 75); err != nil {
		t.Fatal(err)
	}
}

// The car's clock passes expires_at between signing and delivery:
// TIME_EXPIRED with fresh session info, the library resyncs and resends.
func TestSignedExpired(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newClientKey(t)
	h.addSigningCar(testVIN, key)
	v, conn := h.connectVehicle(testVIN, key, nil)
	startSession(t, v)
	conn.before = func(i int, msg []byte) []byte {
		if i == 1 {
			h.clk.Advance(time.Minute) // the command expires 10 s after signing
		}
		return msg
	}
	if err := v.ChangeChargeLimit(cmdCtx(t), 60); err != nil {
		t.Fatalf("ChangeChargeLimit: %v", err)
	}
	sc := h.sim.SignedRequests(testVIN)
	if conn.posts() != 3 || sc.CommandOutcomes["TIME_EXPIRED"] != 1 || sc.CommandOutcomes[OutcomeVerified] != 1 || sc.Handshakes != 1 {
		t.Errorf("POSTs %d, counters %+v", conn.posts(), sc)
	}
	if c, _ := h.sim.Car(testVIN); c.ChargeLimitSOC != 60 {
		t.Errorf("limit %d", c.ChargeLimitSOC)
	}
}

// A reboot gives new epochs: the cached session's next command gets
// INCORRECT_EPOCH and the automatic resend succeeds (2 POSTs, no handshake).
func TestSignedRebootResync(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newClientKey(t)
	h.addSigningCar(testVIN, key)
	v, conn := h.connectVehicle(testVIN, key, nil)
	startSession(t, v)
	for _, pct := range []int32{61, 62, 63} { // counter 3 before the reboot
		if err := v.ChangeChargeLimit(cmdCtx(t), pct); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.sim.RebootCar(testVIN); err != nil {
		t.Fatal(err)
	}
	before := conn.posts()
	if err := v.ChangeChargeLimit(cmdCtx(t), 64); err != nil {
		t.Fatalf("after reboot: %v", err)
	}
	sc := h.sim.SignedRequests(testVIN)
	if conn.posts()-before != 2 || sc.CommandOutcomes["INCORRECT_EPOCH"] != 1 || sc.Handshakes != 1 {
		t.Errorf("POSTs %d, counters %+v", conn.posts()-before, sc)
	}
	if c, _ := h.sim.Car(testVIN); c.ChargeLimitSOC != 64 {
		t.Errorf("limit %d", c.ChargeLimitSOC)
	}
	// A second command in the new epoch: 1 POST.
	before = conn.posts()
	if err := v.ChangeChargeLimit(cmdCtx(t), 65); err != nil || conn.posts()-before != 1 {
		t.Errorf("next command: %v, %d POSTs", err, conn.posts()-before)
	}
	if err := h.sim.RebootCar("NOPE"); !errors.Is(err, ErrUnknownCar) {
		t.Errorf("reboot unknown: %v", err)
	}
}

// A session cache exported after one run and imported by the next saves the
// handshake: the second run's command costs exactly 1 POST (vehicle-commands.md §3).
func TestSignedSessionCache(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newClientKey(t)
	h.addSigningCar(testVIN, key)
	v1, _ := h.connectVehicle(testVIN, key, nil)
	startSession(t, v1)
	if err := v1.ChangeChargeLimit(cmdCtx(t), 70); err != nil {
		t.Fatal(err)
	}
	sessions := cache.New(0)
	if err := v1.UpdateCachedSessions(sessions); err != nil {
		t.Fatal(err)
	}
	var blob bytes.Buffer
	if err := sessions.Export(&blob); err != nil {
		t.Fatal(err)
	}
	v1.Disconnect()
	if strings.Contains(blob.String(), "PRIVATE") {
		t.Fatalf("cache holds key material: %s", blob.String())
	}

	restored, err := cache.Import(&blob)
	if err != nil {
		t.Fatal(err)
	}
	v2, conn2 := h.connectVehicle(testVIN, key, restored)
	startSession(t, v2) // loaded from the cache: no POST
	if err := v2.AddChargeSchedule(cmdCtx(t), librarySchedule()); err != nil {
		t.Fatal(err)
	}
	if conn2.posts() != 1 {
		t.Errorf("second run: %d POSTs, want exactly 1", conn2.posts())
	}
	if sc := h.sim.SignedRequests(testVIN); sc.Handshakes != 1 || sc.CommandOutcomes[OutcomeVerified] != 2 {
		t.Errorf("counters %+v", sc)
	}
}

func TestSignedAsleepCar(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newClientKey(t)
	h.sim.AddCar(CarState{VIN: testVIN, State: StateAsleep})
	_ = h.sim.PairKey(testVIN, key.PublicBytes())
	v, conn := h.connectVehicle(testVIN, key, nil)
	if err := v.StartSession(cmdCtx(t), infotainmentOnly); !errors.Is(err, errTestAsleep) {
		t.Fatalf("StartSession on an asleep car: %v", err)
	}
	if conn.statuses[0] != http.StatusRequestTimeout {
		t.Errorf("status %v", conn.statuses)
	}
	st, data := h.apiRaw(http.MethodPost, "/api/1/vehicles/"+testVIN+"/signed_command", h.token(), map[string][]byte{"routable_message": conn.lastSent()})
	if want := `{"response":null,"error":"vehicle unavailable: vehicle is offline or asleep","error_description":""}`; st != 408 || strings.TrimSpace(string(data)) != want {
		t.Errorf("asleep: %d %s", st, data)
	}
	if c, _ := h.sim.Car(testVIN); c.State != StateAsleep {
		t.Error("signed_command woke the car")
	}
	if h.sim.BilledRequests(testVIN, CategoryCommand) != 2 || h.sim.SignedRequests(testVIN).Handshakes != 0 {
		t.Errorf("counters %+v", h.sim.Counters())
	}
	// Offline too.
	_ = h.sim.SetCar(testVIN, func(c *CarState) { c.State = StateOffline })
	if st, _ := h.apiRaw(http.MethodPost, "/api/1/vehicles/"+testVIN+"/signed_command", h.token(), map[string][]byte{"routable_message": conn.lastSent()}); st != 408 {
		t.Errorf("offline: %d", st)
	}
}

// A legacy car: signed_command 422 (ErrProtocolNotSupported), REST works.
func TestSignedLegacyCar(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newClientKey(t)
	h.addLegacyCar(legacyVIN)
	_ = h.sim.PairKey(legacyVIN, key.PublicBytes())
	v, conn := h.connectVehicle(legacyVIN, key, nil)
	if err := v.StartSession(cmdCtx(t), infotainmentOnly); !errors.Is(err, protocol.ErrProtocolNotSupported) {
		t.Fatalf("StartSession: %v, want ErrProtocolNotSupported", err)
	}
	if len(conn.statuses) != 1 || conn.statuses[0] != http.StatusUnprocessableEntity {
		t.Errorf("statuses %v", conn.statuses)
	}
	if st, resp := h.api(http.MethodPost, "/api/1/vehicles/"+legacyVIN+"/command/set_charge_limit", h.token(), map[string]any{"percent": 90}); st != 200 || obj(t, resp, "response")["result"] != true {
		t.Errorf("REST on the legacy car: %d %v", st, resp)
	}
	if c, _ := h.sim.Car(legacyVIN); c.ChargeLimitSOC != 90 {
		t.Errorf("limit %d", c.ChargeLimitSOC)
	}
}

// An "allowed" car takes both.
func TestSignedAllowedCarTakesBoth(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newClientKey(t)
	h.sim.AddCar(CarState{VIN: testVIN, CommandSigning: CommandSigningAllowed})
	_ = h.sim.PairKey(testVIN, key.PublicBytes())
	v, _ := h.connectVehicle(testVIN, key, nil)
	startSession(t, v)
	if err := v.ChangeChargeLimit(cmdCtx(t), 66); err != nil {
		t.Fatal(err)
	}
	if st, resp := h.api(http.MethodPost, "/api/1/vehicles/"+testVIN+"/command/set_charge_limit", h.token(), map[string]any{"percent": 77}); st != 200 || obj(t, resp, "response")["result"] != true {
		t.Errorf("REST: %d %v", st, resp)
	}
}

// Fault.CarFault: the car answers with the fault; BUSY is retried by the library.
func TestSignedCarFault(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newClientKey(t)
	h.addSigningCar(testVIN, key)
	v, conn := h.connectVehicle(testVIN, key, nil)

	h.sim.InjectFault(EndpointSignedCommand, Fault{CarFault: "BUSY"}) // the handshake first
	startSession(t, v)
	h.sim.InjectFault(EndpointSignedCommand, Fault{CarFault: "MESSAGEFAULT_ERROR_BUSY", Times: 2})
	if err := v.ChangeChargeLimit(cmdCtx(t), 55); err != nil {
		t.Fatalf("after BUSY: %v", err)
	}
	sc := h.sim.SignedRequests(testVIN)
	if conn.posts() != 5 || sc.HandshakeOutcomes["BUSY"] != 1 || sc.CommandOutcomes["BUSY"] != 2 || sc.CommandOutcomes[OutcomeVerified] != 1 {
		t.Errorf("POSTs %d counters %+v", conn.posts(), sc)
	}

	h.sim.InjectFault(EndpointSignedCommand, Fault{CarFault: "REMOTE_ACCESS_DISABLED"})
	err := v.ChangeChargeLimit(cmdCtx(t), 56)
	var rme *protocol.RoutableMessageError
	if !errors.As(err, &rme) || rme.Code != universal.MessageFault_E_MESSAGEFAULT_ERROR_REMOTE_ACCESS_DISABLED {
		t.Fatalf("REMOTE_ACCESS_DISABLED: %v", err)
	}
	if c, _ := h.sim.Car(testVIN); c.ChargeLimitSOC != 55 {
		t.Errorf("a faulted command ran: limit %d", c.ChargeLimitSOC)
	}

	// A synchronization CarFault carries session info; the library resends.
	h.sim.InjectFault(EndpointSignedCommand, Fault{CarFault: "INCORRECT_EPOCH"})
	before := conn.posts()
	if err := v.ChangeChargeLimit(cmdCtx(t), 57); err != nil || conn.posts()-before != 2 {
		t.Errorf("INCORRECT_EPOCH fault: %v, %d POSTs", err, conn.posts()-before)
	}
	var epochReply universal.RoutableMessage
	if err := proto.Unmarshal(conn.replies[len(conn.replies)-2], &epochReply); err != nil || epochReply.GetSessionInfo() == nil ||
		epochReply.GetSignedMessageStatus().GetSignedMessageFault() != universal.MessageFault_E_MESSAGEFAULT_ERROR_INCORRECT_EPOCH {
		t.Errorf("INCORRECT_EPOCH reply %v (%v)", &epochReply, err)
	}

	// HTTP-level faults work on the endpoint as on the others.
	h.sim.InjectFault(EndpointSignedCommand, Fault{Status: 503, Body: `{"response":null,"error":"vehicle is not available"}`})
	if err := v.ChangeChargeLimit(cmdCtx(t), 58); !errors.Is(err, errTestAsleep) {
		t.Errorf("503: %v", err)
	}
	// The admin API checks the name.
	if st, _ := h.api(http.MethodPost, "/sim/faults", "", map[string]any{"endpoint": "signed_command", "car_fault": "NOPE"}); st != 400 {
		t.Errorf("unknown car_fault: %d", st)
	}
	if st, _ := h.api(http.MethodPost, "/sim/faults", "", map[string]any{"endpoint": "signed_command", "car_fault": "internal", "times": 1}); st != 204 {
		t.Errorf("car_fault internal: %d", st)
	}
	if err := v.ChangeChargeLimit(cmdCtx(t), 59); err != nil {
		t.Errorf("after INTERNAL (retried): %v", err)
	}
	if sc := h.sim.SignedRequests(testVIN); sc.CommandOutcomes["INTERNAL"] != 1 || sc.CommandOutcomes["REMOTE_ACCESS_DISABLED"] != 1 {
		t.Errorf("counters %+v", sc)
	}
}
