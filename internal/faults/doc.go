// Package faults holds no production code: its tests are the system's fault
// suite and its simulated year. They run the real worker (behind real HTTP,
// and as real processes where a crash must be real), the real scout code and
// the Tesla simulator on one manual clock, break things on purpose — Tesla's
// token endpoint, Secret Manager, the Fleet API, the worker itself — and
// check by counting calls and reading state, never by timing:
//
//   - the token chain stays valid: the refresh token in the newest stored
//     version is one Tesla still accepts;
//   - no rotated refresh token is lost (see lostRotation in rig_test.go for
//     the exact definition);
//   - the scout never wakes a car and makes at most one billed data call per
//     car per tick;
//   - every arrival home is followed by a charging cycle within two ticks of
//     the services being reachable again (the simulated year).
//
// Random faults use math/rand/v2 with a fixed seed, printed on failure.
package faults
