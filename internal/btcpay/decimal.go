package btcpay

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// errDecimal is wrapped by every decimal-string parse failure.
var errDecimal = errors.New("invalid decimal")

// rounding says what parseDecimal does with digits beyond the requested scale.
type rounding int

const (
	// exact refuses any non-zero digit beyond the scale.
	exact rounding = iota
	// floor drops the digits beyond the scale (rounds toward zero; inputs are non-negative).
	floor
	// halfUp rounds to the nearest unit, halves away from zero.
	halfUp
)

// maxDecimalLen bounds the decimal strings accepted from the wire.
const maxDecimalLen = 64

// parseDecimal reads a non-negative decimal string ("50000.00", "0.0005", "12") as an integer
// number of 10^-scale units, with integer arithmetic only: "0.0005" at scale 8 is 50000. The
// grammar is strict: digits, optionally a dot followed by digits; no sign, exponent, spaces or
// empty parts. Digits beyond the scale are handled by mode; results beyond int64 are refused.
func parseDecimal(s string, scale int, mode rounding) (int64, error) {
	if s == "" || len(s) > maxDecimalLen {
		return 0, fmt.Errorf("%w: %q", errDecimal, s)
	}
	whole, frac, dotted := strings.Cut(s, ".")
	if whole == "" || dotted && frac == "" || !allDigits(whole) || !allDigits(frac) {
		return 0, fmt.Errorf("%w: %q", errDecimal, s)
	}
	kept, rest := frac, ""
	if len(frac) > scale {
		kept, rest = frac[:scale], frac[scale:]
	}
	var n int64
	for _, digits := range []string{whole, kept, strings.Repeat("0", scale-len(kept))} {
		for i := range len(digits) {
			d := int64(digits[i] - '0')
			if n > (math.MaxInt64-d)/10 {
				return 0, fmt.Errorf("%w: %q is out of range", errDecimal, s)
			}
			n = n*10 + d
		}
	}
	switch {
	case strings.Trim(rest, "0") == "":
	case mode == exact:
		return 0, fmt.Errorf("%w: %q has more than %d decimal places", errDecimal, s, scale)
	case mode == halfUp && rest[0] >= '5':
		if n == math.MaxInt64 {
			return 0, fmt.Errorf("%w: %q is out of range", errDecimal, s)
		}
		n++
	}
	return n, nil
}

// allDigits reports whether s holds ASCII digits only (true for "").
func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
