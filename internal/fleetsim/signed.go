package fleetsim

// POST /api/1/vehicles/{vin}/signed_command and POST /api/1/vehicles/fleet_status:
// the Fleet API side of the Vehicle Command Protocol, and what the car does
// with a message (handshake, verification, actions). The cryptography is in vcp.go.

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/carserver"
	"github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/signatures"
	universal "github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/universalmessage"
	"github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/vcsec"
)

// errProtocolNotSupported is the 422 body of signed_command for a car
// without the protocol; the status is what matters: Tesla's connector maps
// 422 to protocol.ErrProtocolNotSupported (pkg/connector/inet/inet.go,
// vehicle-commands.md §1). The text is the simulator's.
const errProtocolNotSupported = "vehicle does not support the vehicle command protocol, use the REST command endpoints"

// Outcomes counted in SignedCounters besides fault names.
const (
	// OutcomeVerified: a handshake answered with session info, or a command
	// that passed every check and ran (its action may still have failed at
	// the application layer, e.g. "max schedules reached").
	OutcomeVerified = "verified"
)

const (
	signedHandshake = "handshake"
	signedCommand   = "command"
)

// fleetSignedCommand is POST …/signed_command with {"routable_message":"<base64>"}
// (protocol.md §HTTPS; vehicle-commands.md §2). Order of checks: unknown car
// 404, malformed body 400, car without the protocol 422, asleep or offline
// car 408 (vehicle-commands.md §3), then the car answers 200
// {"response":"<base64 RoutableMessage>"}, which may carry a fault.
func (s *Sim) fleetSignedCommand(req fleetRequest) (int, any) {
	c := s.lookupLocked(req.key)
	if c == nil {
		return http.StatusNotFound, fleetNotFound()
	}
	var in struct {
		RoutableMessage []byte `json:"routable_message"` // encoding/json reads base64
	}
	if err := json.Unmarshal(req.body, &in); err != nil {
		return http.StatusBadRequest, fleetError("invalid JSON body: want {\"routable_message\":\"<base64>\"}")
	}
	if len(in.RoutableMessage) == 0 {
		return http.StatusBadRequest, fleetError("routable_message missing")
	}
	var msg universal.RoutableMessage
	if err := proto.Unmarshal(in.RoutableMessage, &msg); err != nil {
		return http.StatusBadRequest, fleetError("routable_message is not a RoutableMessage")
	}
	if c.signing() == CommandSigningOff {
		return http.StatusUnprocessableEntity, fleetError(errProtocolNotSupported)
	}
	if c.State != StateOnline {
		return http.StatusRequestTimeout, fleetError(errUnavailable)
	}
	c.lastActivity = req.now // a message to the car is activity, as a REST command is

	reply, kind, outcome := s.carAnswerLocked(c, &msg, req.now, req.carFault)
	s.counters.signed(c.VIN, kind, outcome)
	out, err := proto.Marshal(reply)
	if err != nil {
		return http.StatusInternalServerError, fleetError("internal error")
	}
	s.log.Debug("signed_command", zap.String("vin", c.VIN), zap.String("kind", kind), zap.String("outcome", outcome),
		zap.String("domain", msg.GetToDestination().GetDomain().String()))
	return http.StatusOK, map[string]any{"response": out}
}

// replyTo starts the car's answer to msg: "The vehicle reverses the to and
// from fields in its response" and copies uuid into request_uuid
// (protocol.md §Message encoding). The library matches replies on
// (from domain, to routing address, request_uuid) and uses request_uuid as
// the session info challenge, so it is echoed for VCSEC too
// (internal/dispatcher/dispatcher.go process, checkForSessionUpdate).
func replyTo(msg *universal.RoutableMessage) *universal.RoutableMessage {
	return &universal.RoutableMessage{
		ToDestination: &universal.Destination{SubDestination: &universal.Destination_RoutingAddress{
			RoutingAddress: msg.GetFromDestination().GetRoutingAddress(),
		}},
		FromDestination: &universal.Destination{SubDestination: &universal.Destination_Domain{
			Domain: msg.GetToDestination().GetDomain(),
		}},
		RequestUuid: msg.GetUuid(),
	}
}

// setFault marks reply with a protocol-layer fault: "The vehicle sets
// signedMessageStatus to indicate protocol-layer errors" (protocol.md
// §Protocol-layer errors).
func setFault(reply *universal.RoutableMessage, code universal.MessageFault_E) string {
	reply.SignedMessageStatus = &universal.MessageStatus{
		OperationStatus:    universal.OperationStatus_E_OPERATIONSTATUS_ERROR,
		SignedMessageFault: code,
	}
	return faultName(code)
}

// syncFaults may be caused by the client's stale session; the car attaches
// fresh signed session info to them (protocol.md §Recovering from
// synchronization errors; the reference verifier does so for each of these).
var syncFaults = []universal.MessageFault_E{
	universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_SIGNATURE,
	universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_TOKEN_OR_COUNTER,
	universal.MessageFault_E_MESSAGEFAULT_ERROR_INCORRECT_EPOCH,
	universal.MessageFault_E_MESSAGEFAULT_ERROR_TIME_EXPIRED,
	universal.MessageFault_E_MESSAGEFAULT_ERROR_TIME_TO_LIVE_TOO_LONG,
}

// carAnswerLocked is what the car answers to msg, the kind of message
// (handshake or command) and the outcome to count.
func (s *Sim) carAnswerLocked(c *car, msg *universal.RoutableMessage, now time.Time, carFault string) (*universal.RoutableMessage, string, string) {
	kind := signedCommand
	if msg.GetSessionInfoRequest() != nil {
		kind = signedHandshake
	}
	reply := replyTo(msg)
	domain := msg.GetToDestination().GetDomain()

	if carFault != "" { // Fault.CarFault: the car answers with this fault, doing nothing else
		code, ok := parseMessageFault(carFault)
		if !ok {
			s.log.Error("fleetsim: unknown CarFault, answering INTERNAL", zap.String("car_fault", carFault))
			code = universal.MessageFault_E_MESSAGEFAULT_ERROR_INTERNAL
		}
		name := setFault(reply, code)
		if pub := msg.GetSignatureData().GetSignerIdentity().GetPublicKey(); slices.Contains(syncFaults, code) && c.vcp.isPaired(pub) {
			if dom := c.vcp.domain(domain, now); dom != nil {
				_ = c.vcp.attachSessionInfo(reply, c.VIN, dom, pub, msg.GetUuid(), now)
			}
		}
		return reply, kind, name
	}

	// A message for a domain the car does not have (the reference verifier
	// answers a domain mismatch with INVALID_DOMAINS).
	dom := c.vcp.domain(domain, now)
	if dom == nil {
		return reply, kind, setFault(reply, universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_DOMAINS)
	}
	switch p := msg.Payload.(type) {
	case *universal.RoutableMessage_SessionInfoRequest:
		return reply, kind, c.answerHandshake(p.SessionInfoRequest, msg, reply, dom, now)
	case *universal.RoutableMessage_ProtobufMessageAsBytes:
		return reply, kind, s.answerCommandLocked(c, msg, reply, domain, dom, now)
	}
	return reply, kind, setFault(reply, universal.MessageFault_E_MESSAGEFAULT_ERROR_DECODING)
}

// answerHandshake answers a session_info_request (protocol.md §Handshake).
// An unpaired key gets signed_message_fault UNKNOWN_KEY_ID with an
// untagged session_info whose status is KEY_NOT_ON_WHITELIST: the library
// turns either into protocol.ErrKeyNotPaired (pkg/protocol/error.go
// GetError) and drops untagged session info (dispatcher.go
// checkForSessionUpdate), so no session is created. Counted as
// KEY_NOT_ON_WHITELIST.
func (c *car) answerHandshake(req *universal.SessionInfoRequest, msg, reply *universal.RoutableMessage, dom *vcpDomain, now time.Time) string {
	pub := req.GetPublicKey()
	if !c.vcp.isPaired(pub) {
		setFault(reply, universal.MessageFault_E_MESSAGEFAULT_ERROR_UNKNOWN_KEY_ID)
		info, _ := proto.Marshal(&signatures.SessionInfo{Status: signatures.Session_Info_Status_SESSION_INFO_STATUS_KEY_NOT_ON_WHITELIST})
		reply.Payload = &universal.RoutableMessage_SessionInfo{SessionInfo: info}
		return "KEY_NOT_ON_WHITELIST"
	}
	// The challenge is the request's uuid (protocol.md §Response authentication: "TAG_CHALLENGE: UUID from session info request message").
	if err := c.vcp.attachSessionInfo(reply, c.VIN, dom, pub, msg.GetUuid(), now); err != nil {
		return setFault(reply, universal.MessageFault_E_MESSAGEFAULT_ERROR_BAD_PARAMETER)
	}
	return OutcomeVerified
}

// answerCommandLocked authenticates a command and runs it. Checks, in the
// reference verifier's order (verifier.go Verify, verifySessionInfo,
// verifyHMAC), each citing its rule:
//
//   - no signature data: BAD_PARAMETER (verifier.go "signature data missing");
//   - AES-GCM encrypted: INVALID_COMMAND, because "Fleet API blocks these
//     commands because it cannot enforce OAuth scopes" (protocol.md
//     §Authentication methods); the fault is the simulator's choice and is
//     not retried by the library;
//   - signer_identity not a paired key: UNKNOWN_KEY_ID, which the library
//     reports as protocol.ErrKeyNotPaired (vehicle-commands.md §2 table);
//   - epoch present and not the domain's: INCORRECT_EPOCH (protocol.md
//     §Time "new epoch at every boot"; verifier.go);
//   - expires_at before the domain clock: TIME_EXPIRED (verifier.go);
//   - expires_at more than Options.MaxCommandTTL ahead: TIME_TO_LIVE_TOO_LONG
//     (the reference verifier only bounds it by the epoch length, 2^30 s;
//     the limit here is the simulator's, vehicle-commands.md §2 UNCONFIRMED);
//   - a zero or out-of-order counter expiring more than 30 s ahead:
//     TIME_TO_LIVE_TOO_LONG (verifier.go, maxSecondsWithoutCounter);
//   - HMAC tag wrong: INVALID_SIGNATURE (protocol.md §HMAC-SHA256 authentication);
//   - counter used before: INVALID_TOKEN_OR_COUNTER; infotainment keeps a
//     32-wide sliding window, VCSEC demands increasing counters (protocol.md
//     §Metadata; window.go). A zero counter skips this check (verifier.go).
//
// Every fault from the epoch check on carries fresh signed session info.
// Then the payload runs once; the reply is AES-GCM encrypted when the
// request set FLAG_ENCRYPT_RESPONSE and the firmware is 2024.38 or newer.
func (s *Sim) answerCommandLocked(c *car, msg, reply *universal.RoutableMessage, domain universal.Domain, dom *vcpDomain, now time.Time) string {
	sig := msg.GetSignatureData()
	if sig == nil {
		return setFault(reply, universal.MessageFault_E_MESSAGEFAULT_ERROR_BAD_PARAMETER)
	}
	if sig.GetAES_GCM_PersonalizedData() != nil {
		return setFault(reply, universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_COMMAND)
	}
	hm := sig.GetHMAC_PersonalizedData()
	if hm == nil {
		return setFault(reply, universal.MessageFault_E_MESSAGEFAULT_ERROR_BAD_PARAMETER)
	}
	pub := sig.GetSignerIdentity().GetPublicKey()
	if !c.vcp.isPaired(pub) {
		return setFault(reply, universal.MessageFault_E_MESSAGEFAULT_ERROR_UNKNOWN_KEY_ID)
	}
	k, err := c.vcp.sharedKey(pub)
	if err != nil {
		return setFault(reply, universal.MessageFault_E_MESSAGEFAULT_ERROR_BAD_PARAMETER)
	}
	sess := dom.session(pub)
	syncFault := func(code universal.MessageFault_E) string {
		name := setFault(reply, code)
		_ = c.vcp.attachSessionInfo(reply, c.VIN, dom, pub, msg.GetUuid(), now)
		return name
	}

	if fault, ok := s.checkFreshLocked(c, hm, domain, dom, sess, k, msg, now); !ok {
		return syncFault(fault)
	}

	// Verified: run it, exactly once (the counter is spent).
	var payload []byte
	if domain == domainVCSEC {
		payload, err = c.runVCSEC(msg.GetProtobufMessageAsBytes())
	} else {
		payload, err = c.runInfotainment(msg.GetProtobufMessageAsBytes(), now)
	}
	if err != nil {
		return setFault(reply, universal.MessageFault_E_MESSAGEFAULT_ERROR_DECODING)
	}
	reply.Payload = &universal.RoutableMessage_ProtobufMessageAsBytes{ProtobufMessageAsBytes: payload}
	if msg.GetFlags()&flagEncryptResponse != 0 && firmwareEncryptsResponses(c.FirmwareVersion) {
		sess.respCounter++
		if err := encryptResponse(k, reply, c.VIN, requestHash(domain, hm.GetTag()), sess.respCounter); err != nil {
			return setFault(reply, universal.MessageFault_E_MESSAGEFAULT_ERROR_INTERNAL)
		}
	}
	return OutcomeVerified
}

// checkFreshLocked runs the checks whose faults carry fresh session info:
// epoch, expiry, time to live, the tag, then the counter (spent on success).
func (s *Sim) checkFreshLocked(c *car, hm *signatures.HMAC_Personalized_Signature_Data, domain universal.Domain, dom *vcpDomain, sess *vcpSession, k []byte, msg *universal.RoutableMessage, now time.Time) (universal.MessageFault_E, bool) {
	clock := dom.clock(now)
	if e := hm.GetEpoch(); e != nil && !bytes.Equal(e, dom.epoch[:]) {
		return universal.MessageFault_E_MESSAGEFAULT_ERROR_INCORRECT_EPOCH, false
	}
	expiresAt := hm.GetExpiresAt()
	if expiresAt < clock {
		return universal.MessageFault_E_MESSAGEFAULT_ERROR_TIME_EXPIRED, false
	}
	ttl := time.Duration(expiresAt-clock) * time.Second
	if ttl > s.opts.MaxCommandTTL {
		return universal.MessageFault_E_MESSAGEFAULT_ERROR_TIME_TO_LIVE_TOO_LONG, false
	}
	counter := hm.GetCounter()
	if (counter == 0 || counter < sess.counter) && ttl > maxSecondsWithoutCounter*time.Second {
		return universal.MessageFault_E_MESSAGEFAULT_ERROR_TIME_TO_LIVE_TOO_LONG, false
	}
	want := commandTag(k, domain, c.VIN, dom.epoch[:], expiresAt, counter, msg.GetFlags(), msg.GetProtobufMessageAsBytes())
	if !hmac.Equal(want, hm.GetTag()) {
		return universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_SIGNATURE, false
	}
	if counter > 0 {
		accept := sess.acceptWindow
		if domain == domainVCSEC {
			accept = sess.acceptStrict
		}
		if !accept(counter) {
			return universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_TOKEN_OR_COUNTER, false
		}
	}
	return 0, true
}

// runVCSEC runs a vcsec.UnsignedMessage. The simulated VCSEC changes
// nothing: every well-formed message (RKE actions such as lock or wake,
// closure moves, …) is answered with an empty FromVCSECMessage, which
// "indicates success" for non-whitelist operations (protocol.md §VCSEC
// application-layer responses). Whitelist operations are not simulated;
// keys are paired through PairKey or /sim/cars/{vin}/keys.
func (c *car) runVCSEC(payload []byte) ([]byte, error) {
	var m vcsec.UnsignedMessage
	if err := proto.Unmarshal(payload, &m); err != nil {
		return nil, err
	}
	return proto.Marshal(&vcsec.FromVCSECMessage{})
}

// runInfotainment runs a carserver.Action and answers a carserver.Response
// whose actionStatus is OK, or ERROR with result_reason.plain_text
// (protocol.md §Infotainment application-layer responses). The charge
// actions share their state changes with the REST commands (commands.go).
func (c *car) runInfotainment(payload []byte, now time.Time) ([]byte, error) {
	var action carserver.Action
	if err := proto.Unmarshal(payload, &action); err != nil {
		return nil, err
	}
	resp := &carserver.Response{}
	ok, reason := false, "unsupported action"
	switch m := action.GetVehicleAction().GetVehicleActionMsg().(type) {
	case *carserver.VehicleAction_AddChargeScheduleAction:
		var cs ChargeSchedule
		if cs, reason = chargeScheduleFromProto(m.AddChargeScheduleAction); reason == "" {
			ok, reason = c.addSchedule(cs, now)
		}
	case *carserver.VehicleAction_RemoveChargeScheduleAction:
		if id := m.RemoveChargeScheduleAction.GetId(); id > math.MaxInt64 {
			reason = "invalid id param"
		} else {
			ok, reason = c.removeSchedule(int64(id))
		}
	case *carserver.VehicleAction_ChargingSetLimitAction:
		ok, reason = c.setChargeLimit(int64(m.ChargingSetLimitAction.GetPercent()))
	case *carserver.VehicleAction_ChargingStartStopAction:
		switch m.ChargingStartStopAction.GetChargingAction().(type) {
		case *carserver.ChargingStartStopAction_Start, *carserver.ChargingStartStopAction_StartStandard, *carserver.ChargingStartStopAction_StartMaxRange:
			ok, reason = c.chargeStart()
		case *carserver.ChargingStartStopAction_Stop:
			ok, reason = c.chargeStop()
		}
	case *carserver.VehicleAction_Ping:
		ok, reason = true, ""
		resp.ResponseMsg = &carserver.Response_Ping{Ping: &carserver.Ping{PingId: m.Ping.GetPingId()}}
	}
	if ok {
		resp.ActionStatus = &carserver.ActionStatus{Result: carserver.OperationStatus_E_OPERATIONSTATUS_OK}
	} else {
		resp.ActionStatus = &carserver.ActionStatus{
			Result:       carserver.OperationStatus_E_OPERATIONSTATUS_ERROR,
			ResultReason: &carserver.ResultReason{Reason: &carserver.ResultReason_PlainText{PlainText: reason}},
		}
	}
	return proto.Marshal(resp)
}

// chargeScheduleFromProto checks an AddChargeScheduleAction as the REST
// path checks add_charge_schedule (commands.go parseAddChargeSchedule) and
// converts it; a non-empty reason is the refusal. An id of 0 becomes the
// current Unix time in addSchedule, as on the REST path.
func chargeScheduleFromProto(p *carserver.ChargeSchedule) (ChargeSchedule, string) {
	switch {
	case p.GetDaysOfWeek() <= 0 || p.GetDaysOfWeek() > DaysAll:
		return ChargeSchedule{}, "invalid days_of_week param"
	case p.GetLatitude() < -90 || p.GetLatitude() > 90:
		return ChargeSchedule{}, "invalid lat param"
	case p.GetLongitude() < -180 || p.GetLongitude() > 180:
		return ChargeSchedule{}, "invalid lon param"
	case p.GetStartTime() < 0 || p.GetStartTime() > 1439:
		return ChargeSchedule{}, "invalid start_time param"
	case p.GetEndTime() < 0 || p.GetEndTime() > 1439:
		return ChargeSchedule{}, "invalid end_time param"
	case p.GetId() > math.MaxInt64:
		return ChargeSchedule{}, "invalid id param"
	}
	return ChargeSchedule{
		ID:           int64(p.GetId()),
		Name:         p.GetName(),
		DaysOfWeek:   int(p.GetDaysOfWeek()),
		Enabled:      p.GetEnabled(),
		StartEnabled: p.GetStartEnabled(),
		EndEnabled:   p.GetEndEnabled(),
		OneTime:      p.GetOneTime(),
		StartTime:    int(p.GetStartTime()),
		EndTime:      int(p.GetEndTime()),
		Latitude:     float64(p.GetLatitude()),
		Longitude:    float64(p.GetLongitude()),
	}, ""
}

// fleetFleetStatus is POST /api/1/vehicles/fleet_status {"vins":[…]}
// (vehicle-commands.md §1 for the shape). A VIN counts as key-paired when
// the app's key (Options.AppPublicKey / SetAppPublicKey) is paired with
// it, or, with no app key set, when any key is. A VIN the account does not
// have is listed as unpaired without vehicle_info (the simulator's choice).
// discounted_device_data is always false.
func (s *Sim) fleetFleetStatus(req fleetRequest) (int, any) {
	var in struct {
		VINs []string `json:"vins"`
	}
	if err := json.Unmarshal(req.body, &in); err != nil || len(in.VINs) == 0 {
		return http.StatusBadRequest, fleetError("invalid vins: want {\"vins\":[\"VIN\",…]}")
	}
	paired, unpaired := []string{}, []string{}
	info := map[string]any{}
	for _, vin := range in.VINs {
		c, ok := s.cars[vin]
		if !ok {
			unpaired = append(unpaired, vin)
			continue
		}
		if s.appKeyPairedLocked(c) {
			paired = append(paired, vin)
		} else {
			unpaired = append(unpaired, vin)
		}
		info[vin] = map[string]any{
			"vehicle_command_protocol_required": c.signing() == CommandSigningRequired,
			"firmware_version":                  c.FirmwareVersion,
			"fleet_telemetry_version":           "1.1.0",
			"total_number_of_keys":              len(c.vcp.paired),
			"discounted_device_data":            false,
		}
	}
	return http.StatusOK, map[string]any{"response": map[string]any{
		"key_paired_vins": paired,
		"unpaired_vins":   unpaired,
		"vehicle_info":    info,
	}}
}

func (s *Sim) appKeyPairedLocked(c *car) bool {
	if s.appKey != nil {
		return c.vcp.isPaired(s.appKey)
	}
	return len(c.vcp.paired) > 0
}
