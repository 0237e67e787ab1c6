// Package contract is what the services say to each other on the wire: the
// bodies of the worker's POST /refresh-tokens, /sync-tokens and /run-cycle,
// the error shape every service answers with (and its codes), and the VIN
// rule both sides check. The scout's client and the worker's handlers use
// these types and nothing of their own, so a field renamed on one side is a
// compile error on the other, not a silently dropped value.
//
// It holds data and rules only: no HTTP, no I/O, nothing but the standard
// library's encoding, so the scout's domain can name a cycle's request and
// answer without importing a client or a server.
package contract
