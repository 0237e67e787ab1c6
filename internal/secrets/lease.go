package secrets

import "time"

// DefaultLeaseSkew is how far apart two clients' clocks may be before a
// client-judged lease stops protecting them from each other (see JudgeLease).
const DefaultLeaseSkew = 30 * time.Second

// MaxLeaseTTL caps the time to live a lease claim may state: a claim
// written with a longer one (a misconfigured or hostile client) is judged
// as if it said MaxLeaseTTL.
const MaxLeaseTTL = 15 * time.Minute

// LeaseClaim is a lease as its holder wrote it, for backends whose lease
// is judged by each client rather than by the store (Secret Manager's
// annotation lease, and Memory with SetClientClock).
type LeaseClaim struct {
	Holder string
	Expiry time.Time     // on the holder's clock
	TTL    time.Duration // 0 when written by an older version, which stated none
}

// JudgeLease judges another holder's claim l on the observer's clock alone
// (now), the claim first seen unchanged at firstSeen: it is over once
// watched unchanged for its ttl plus skew, or once its written expiry is
// more than its ttl plus skew past. An expiry further ahead than that came
// from a fast clock: fixed is then the claim to write back (same holder,
// the observer's now + ttl), and the lease counts as held meanwhile.
// fallbackTTL is for claims that state no ttl; a ttl above MaxLeaseTTL
// counts as MaxLeaseTTL.
//
// Comparing clocks is what this avoids: a holder's expiry is trusted only
// as far as the two clocks can be apart, so a laptop an hour fast blocks
// others for about one ttl, not for an hour.
func JudgeLease(l LeaseClaim, firstSeen, now time.Time, fallbackTTL, skew time.Duration) (over bool, fixed *LeaseClaim) {
	ttl := l.TTL
	if ttl <= 0 {
		ttl = fallbackTTL // written by an older version of this code
	}
	ttl = min(ttl, MaxLeaseTTL)
	switch {
	case l.Expiry.After(now.Add(ttl + skew)):
		return false, &LeaseClaim{Holder: l.Holder, Expiry: now.Add(ttl), TTL: ttl}
	case now.Sub(firstSeen) >= ttl+skew, now.After(l.Expiry.Add(ttl + skew)):
		return true, nil // its holder stopped renewing, or it ended long ago
	default:
		return false, nil
	}
}
