package contract

import "regexp"

// VINRule says what ValidVIN accepts, for error messages.
const VINRule = "17 characters of A-Z (no I, O, Q) and 0-9"

// vinPattern: ISO 3779 leaves out I, O and Q, which read as 1 and 0.
var vinPattern = regexp.MustCompile(`^[A-HJ-NPR-Z0-9]{17}$`)

// ValidVIN reports whether vin is a VIN as the worker accepts it: exactly
// VINRule, upper case, nothing around it (callers that take user input
// trim and upper-case it first).
func ValidVIN(vin string) bool { return vinPattern.MatchString(vin) }
