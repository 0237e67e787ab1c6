// Package scout is the cheap, frequent half of the system as a service:
// its configuration, routes (POST /tick for Cloud Scheduler, GET /health)
// and wiring. Once per tick it reads the tokens read-only (TokenCache),
// looks at each car without waking it, remembers what it saw, and calls the
// worker only at the moments that matter (arrived home and plugged in,
// unplugged). The tick's rules live in internal/scout/patrol; this package
// adapts the Fleet client, the state store and zap to it, and calls the
// worker in internal/contract's terms (WorkerClient).
package scout
