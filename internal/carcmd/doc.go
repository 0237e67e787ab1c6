// Package carcmd sends the charging cycle's commands to a car by the path
// that car needs, so the cycle (charging.Vehicle) never knows how a command
// travels:
//
//   - signed in-process with the owner's P-256 key over Tesla's Vehicle
//     Command Protocol (every car but pre-2021 Model S/X refuses anything
//     else), using Tesla's own library github.com/teslamotors/vehicle-command
//     (pkg/vehicle) over a connector of ours that posts to the Fleet API's
//     signed_command endpoint through internal/fleet — our timeouts, error
//     kinds and plain HTTP for the simulator;
//   - plain REST for the cars without the protocol (learned once per car
//     from fleet_status or a 422, and remembered);
//   - or unsigned REST to an external signer (TESLA_COMMAND_URL).
//
// A car's session (counter, epoch, clock) is cached in memory and in the
// state store, so a warm command costs one request; a stale one costs one
// resend or one new handshake, never a loop: every POST is billed, so each
// operation has a budget of requests. The private key is read from bytes,
// kept in memory, and never logged or written.
package carcmd
