package factory

import (
	"testing"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/payment"
)

// Rates is a fixed rate source at Now: $50,000.00/BTC and €45,000.00/BTC, the fake BTCPay's
// rates.
func Rates(tb testing.TB) *payment.Fixed {
	tb.Helper()
	rates, err := payment.NewFixed(clock.NewManual(Now), map[string]int64{"USD": 5_000_000, "EUR": 4_500_000})
	if err != nil {
		tb.Fatalf("factory: rates: %v", err)
	}
	return rates
}
