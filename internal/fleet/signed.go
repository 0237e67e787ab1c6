package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// ErrProtocolNotSupported: the car does not take signed commands (pre-2021
// Model S/X). signed_command answers 422, which Tesla's own connector turns
// into protocol.ErrProtocolNotSupported (vehicle-command pkg/connector/inet/inet.go);
// the caller falls back to REST commands.
var ErrProtocolNotSupported = errors.New("the car does not support the Vehicle Command Protocol (422)")

// SignedCommand POSTs one Vehicle Command Protocol message (a serialised
// RoutableMessage, already signed) to /api/1/vehicles/{vin}/signed_command
// and returns the car's answer, also a serialised RoutableMessage. The body
// is {"routable_message":"<base64>"}, the answer {"response":"<base64>"}
// (vehicle-command pkg/connector/inet/inet.go). A 200 only means the car
// answered: the answer may still carry a fault, which the caller decodes.
func (c *Client) SignedCommand(ctx context.Context, vin string, message []byte) ([]byte, error) {
	path, err := vehiclePath(vin)
	if err != nil {
		return nil, err
	}
	r := request{method: http.MethodPost, base: c.baseURL, path: path + "/signed_command",
		body: struct {
			RoutableMessage []byte `json:"routable_message"` // encoding/json writes []byte as base64
		}{message}}
	rep, err := c.do(ctx, r)
	if err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnprocessableEntity {
			apiErr.kind = ErrProtocolNotSupported
		}
		return nil, err
	}
	var env struct {
		Response []byte `json:"response"`
	}
	if err := json.Unmarshal(rep.body, &env); err != nil {
		return nil, malformed(rep.status, r.endpoint(), "\"response\" is not base64: "+err.Error())
	}
	if len(env.Response) == 0 {
		return nil, malformed(rep.status, r.endpoint(), "\"response\" is empty")
	}
	return env.Response, nil
}

// FleetStatus is what POST /api/1/vehicles/fleet_status says of some cars.
type FleetStatus struct {
	KeyPairedVINs []string
	UnpairedVINs  []string
	Vehicles      map[string]FleetVehicleInfo
}

// FleetVehicleInfo is one car's vehicle_info entry.
type FleetVehicleInfo struct {
	// ProtocolRequired: vehicle_command_protocol_required. Seen false on some
	// Model 3/Y (abarghoud/SentryGuard pull 229), so a caller still reacts to
	// a 403 "protocol required" from a REST command.
	ProtocolRequired bool
	FirmwareVersion  string
	KeyCount         int
}

// FleetStatus asks which of vins have this app's key paired and which
// need signed commands (shape: developer.tesla.com vehicle endpoints,
// reference/vehicle-commands.md §1). It does not wake a car.
func (c *Client) FleetStatus(ctx context.Context, vins []string) (FleetStatus, error) {
	if len(vins) == 0 {
		return FleetStatus{}, fmt.Errorf("fleet: fleet_status without VINs: %w", ErrInvalidRequest)
	}
	r := request{method: http.MethodPost, base: c.baseURL, path: "/api/1/vehicles/fleet_status",
		body: struct {
			VINs []string `json:"vins"`
		}{vins}}
	rep, err := c.do(ctx, r)
	if err != nil {
		return FleetStatus{}, err
	}
	raw, problem := decodeResponse(rep.body, '{')
	if problem != "" {
		return FleetStatus{}, malformed(rep.status, r.endpoint(), problem)
	}
	var body struct {
		KeyPaired []string `json:"key_paired_vins"`
		Unpaired  []string `json:"unpaired_vins"`
		Info      map[string]struct {
			ProtocolRequired *bool  `json:"vehicle_command_protocol_required"`
			Firmware         string `json:"firmware_version"`
			Keys             int    `json:"total_number_of_keys"`
		} `json:"vehicle_info"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return FleetStatus{}, malformed(rep.status, r.endpoint(), err.Error())
	}
	out := FleetStatus{KeyPairedVINs: body.KeyPaired, UnpairedVINs: body.Unpaired, Vehicles: map[string]FleetVehicleInfo{}}
	for vin, info := range body.Info {
		// A missing flag counts as "required": that is what every car but
		// the pre-2021 Model S/X is.
		required := info.ProtocolRequired == nil || *info.ProtocolRequired
		out.Vehicles[vin] = FleetVehicleInfo{ProtocolRequired: required, FirmwareVersion: info.Firmware, KeyCount: info.Keys}
	}
	return out, nil
}
