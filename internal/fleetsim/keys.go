package fleetsim

import (
	"fmt"

	"go.uber.org/zap"
)

// PairKey adds a client public key to the car's keychain, as approving the
// pairing link (https://tesla.com/_ak/<domain>) in the Tesla app does
// (vehicle-commands.md §4 step 8). publicKey is a 65-byte uncompressed
// P-256 point or a PEM "PUBLIC KEY" block (hex and base64 of the point are
// accepted too, see ParsePublicKey). Pairing a paired key is a no-op; a car
// holds at most MaxPairedKeys keys (ErrKeychainFull). A legacy car
// (CommandSigning "off") stores the key but still refuses signed_command.
func (s *Sim) PairKey(vin string, publicKey []byte) error {
	point, err := ParsePublicKey(publicKey)
	if err != nil {
		return fmt.Errorf("pair key with %s: %w", vin, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cars[vin]
	if !ok {
		return fmt.Errorf("pair key with %s: %w", vin, ErrUnknownCar)
	}
	if err := c.vcp.pair(point); err != nil {
		return fmt.Errorf("pair key with %s: %w", vin, err)
	}
	s.log.Debug("key paired", zap.String("vin", vin), zap.String("key", shortKey(point)))
	return nil
}

// UnpairKey removes a key from the car's keychain (as removing it from the
// car's Locks screen does). The key's sessions end: its next command gets
// UNKNOWN_KEY_ID, which the library reports as protocol.ErrKeyNotPaired.
// ErrUnknownKey if the key was not paired.
func (s *Sim) UnpairKey(vin string, publicKey []byte) error {
	point, err := ParsePublicKey(publicKey)
	if err != nil {
		return fmt.Errorf("unpair key from %s: %w", vin, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cars[vin]
	if !ok {
		return fmt.Errorf("unpair key from %s: %w", vin, ErrUnknownCar)
	}
	if err := c.vcp.unpair(point); err != nil {
		return fmt.Errorf("unpair key from %s: %w", vin, err)
	}
	return nil
}

// PairedKeys returns copies of the car's paired keys as 65-byte points, in
// pairing order (nil for an unknown car).
func (s *Sim) PairedKeys(vin string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cars[vin]
	if !ok {
		return nil
	}
	out := make([][]byte, len(c.vcp.paired))
	for i, k := range c.vcp.paired {
		out[i] = append([]byte(nil), k...)
	}
	return out
}

// VehiclePublicKey is the car's public key (the same for both domains) as a
// 65-byte point; nil for an unknown car. The private key never leaves the
// simulator.
func (s *Sim) VehiclePublicKey(vin string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cars[vin]
	if !ok {
		return nil
	}
	return c.vcp.publicBytes()
}

// RebootCar restarts the car's VCSEC and infotainment: both domains get a
// new epoch and their counters restart, so cached client sessions become
// stale. The next command from one gets INCORRECT_EPOCH with fresh session
// info, and the library's automatic resend succeeds (protocol.md
// §Recovering from synchronization errors; vehicle-commands.md §2). Keys
// stay paired and the car's state is unchanged.
func (s *Sim) RebootCar(vin string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cars[vin]
	if !ok {
		return fmt.Errorf("reboot %s: %w", vin, ErrUnknownCar)
	}
	c.vcp.reboot(s.now())
	return nil
}

// SetAppPublicKey sets (or, with nil, clears) the app's registered public
// key that fleet_status checks for key_paired_vins (see
// Options.AppPublicKey). Same formats as PairKey.
func (s *Sim) SetAppPublicKey(publicKey []byte) error {
	var point []byte
	if len(publicKey) > 0 {
		var err error
		if point, err = ParsePublicKey(publicKey); err != nil {
			return fmt.Errorf("app public key: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appKey = point
	return nil
}

// AppPublicKey returns the app's registered public key as a 65-byte point (nil when unset).
func (s *Sim) AppPublicKey() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.appKey...)
}
