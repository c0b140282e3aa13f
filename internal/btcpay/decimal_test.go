package btcpay

import (
	"math"
	"math/big"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseDecimal(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name  string
		in    string
		scale int
		mode  rounding
		want  int64
		err   bool
	}{
		{name: "WholeDollars", in: "50000", scale: 2, mode: halfUp, want: 5_000_000},
		{name: "Cents", in: "50000.00", scale: 2, mode: halfUp, want: 5_000_000},
		{name: "RateRoundsHalfUp", in: "50000.005", scale: 2, mode: halfUp, want: 5_000_001},
		{name: "RateRoundsDown", in: "50000.0049", scale: 2, mode: halfUp, want: 5_000_000},
		{name: "BTCToSats", in: "0.0005", scale: 8, mode: floor, want: 50_000},
		{name: "OneBTC", in: "1.00000000", scale: 8, mode: floor, want: 100_000_000},
		{name: "MillisatsDropped", in: "0.00050000999", scale: 8, mode: floor, want: 50_000},
		{name: "ExactTrailingZeros", in: "50000.000", scale: 0, mode: exact, want: 50_000},
		{name: "ExactRefusesFraction", in: "50000.5", scale: 0, mode: exact, err: true},
		{name: "LeadingZeros", in: "000012", scale: 0, mode: exact, want: 12},
		{name: "Zero", in: "0", scale: 8, mode: floor, want: 0},
		{name: "MaxInt64", in: "9223372036854775807", scale: 0, mode: exact, want: math.MaxInt64},
		{name: "Overflow", in: "9223372036854775808", scale: 0, mode: exact, err: true},
		{name: "OverflowByScale", in: "92233720369", scale: 8, mode: floor, err: true},
		{name: "OverflowByRounding", in: "9223372036854775807.5", scale: 0, mode: halfUp, err: true},
		{name: "Empty", in: "", err: true},
		{name: "Negative", in: "-1", err: true},
		{name: "Plus", in: "+1", err: true},
		{name: "Exponent", in: "5e4", err: true},
		{name: "NoWhole", in: ".5", scale: 2, err: true},
		{name: "NoFraction", in: "5.", scale: 2, err: true},
		{name: "TwoDots", in: "1.2.3", scale: 2, err: true},
		{name: "Spaces", in: " 1", err: true},
		{name: "Fraction", in: "1/3", err: true},
		{name: "TooLong", in: "0." + string(make([]byte, 70)), err: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseDecimal(tt.in, tt.scale, tt.mode)
			if tt.err {
				require.ErrorIs(t, err, errDecimal)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// FuzzParseDecimal checks the integer parser against math/big: whatever it accepts equals the
// exact rational value scaled and rounded, and it never panics.
func FuzzParseDecimal(f *testing.F) {
	for _, seed := range []string{"50000.00", "0.0005", "1", "0", "9223372036854775807", "1.999999999", "12.345", "", "-1", "1e5", ".", "00.10"} {
		f.Add(seed, uint8(2), uint8(2))
	}
	f.Fuzz(func(t *testing.T, s string, scaleByte, modeByte uint8) {
		scale, mode := int(scaleByte%12), rounding(modeByte%3)
		got, err := parseDecimal(s, scale, mode)
		if err != nil {
			require.ErrorIs(t, err, errDecimal)
			return
		}
		require.GreaterOrEqual(t, got, int64(0))
		want, ok := new(big.Rat).SetString(s)
		require.True(t, ok, "accepted %q, which big.Rat refuses", s)
		want.Mul(want, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
		whole := new(big.Int).Quo(want.Num(), want.Denom())
		remainder := new(big.Rat).Sub(want, new(big.Rat).SetInt(whole))
		switch {
		case mode == exact:
			require.Zero(t, remainder.Sign(), "exact accepted %q at scale %d", s, scale)
		case mode == halfUp && remainder.Cmp(big.NewRat(1, 2)) >= 0:
			whole.Add(whole, big.NewInt(1))
		}
		require.Equal(t, whole.String(), strconv.FormatInt(got, 10), "parse %q at scale %d mode %d", s, scale, mode)
	})
}

func TestPaidSats(t *testing.T) {
	t.Parallel()

	t.Run("SumsBitcoinMethods", func(t *testing.T) {
		t.Parallel()
		paid, confirmed, err := paidSats([]paymentMethodData{
			{Currency: "BTC", PaymentMethodPaid: "0.00030000", Payments: []paymentData{
				{Value: "0.00010000", Status: "Settled"}, {Value: "0.00020000", Status: "Processing"},
			}},
			{CryptoCode: "BTC", PaymentMethodPaid: "0.00020000123", Payments: []paymentData{
				{Value: "0.00020000123", Status: "Complete"}, {Value: "0.1", Status: "Invalid"},
			}},
			{Currency: "LTC", PaymentMethodPaid: "5.0", Payments: []paymentData{{Value: "5.0", Status: "Settled"}}},
			{Currency: "BTC"},
		})
		require.NoError(t, err)
		require.Equal(t, int64(50_000), paid)
		require.Equal(t, int64(30_000), confirmed, "only confirmed bitcoin payments")
	})
	t.Run("RefusesMalformedAmount", func(t *testing.T) {
		t.Parallel()
		_, _, err := paidSats([]paymentMethodData{{Currency: "BTC", PaymentMethodPaid: "lots"}})
		require.ErrorIs(t, err, errDecimal)
		_, _, err = paidSats([]paymentMethodData{{Currency: "BTC", PaymentMethodPaid: "1", Payments: []paymentData{{Value: "x", Status: "Settled"}}}})
		require.ErrorIs(t, err, errDecimal)
	})
}
