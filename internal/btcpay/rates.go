package btcpay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tessera/tessera/internal/payment"
)

// minorDigits is the number of minor-unit digits of the fiat currencies Tessera prices in.
var minorDigits = map[string]int{
	"USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "JPY": 0,
}

// rateResult is one entry of Greenfield's store rates answer.
type rateResult struct {
	CurrencyPair string   `json:"currencyPair"`
	Errors       []string `json:"errors"`
	Rate         decimal  `json:"rate"`
}

// Rate reads the store's BTC rate in currency (USD, EUR, ...) from GET
// /api/v1/stores/{storeId}/rates?currencyPair=BTC_{currency}, as the store's rate rules compute
// it, and converts the decimal string to minor units per BTC with integer arithmetic, rounding
// to the nearest minor unit (halves up): "50000.00" USD is 5000000. Source is "btcpay".
func (c *Client) Rate(ctx context.Context, currency string) (payment.Rate, error) {
	currency = strings.ToUpper(currency)
	digits, ok := minorDigits[currency]
	if !ok {
		return payment.Rate{}, fmt.Errorf("btcpay: rate: unsupported currency %q", currency)
	}
	pair := "BTC_" + currency
	var results []rateResult
	if err := c.do(ctx, http.MethodGet, c.storePath("rates"), url.Values{"currencyPair": {pair}}, nil, &results); err != nil {
		return payment.Rate{}, fmt.Errorf("btcpay: rate %s: %w", pair, err)
	}
	for _, r := range results {
		if r.CurrencyPair != pair {
			continue
		}
		if len(r.Errors) > 0 {
			return payment.Rate{}, fmt.Errorf("btcpay: rate %s: %s", pair, strings.Join(r.Errors, "; "))
		}
		minor, err := parseDecimal(string(r.Rate), digits, halfUp)
		if err != nil {
			return payment.Rate{}, fmt.Errorf("btcpay: rate %s: %w", pair, err)
		}
		if minor <= 0 {
			return payment.Rate{}, fmt.Errorf("btcpay: rate %s: %q is not positive", pair, r.Rate)
		}
		return payment.Rate{Currency: currency, MinorPerBTC: minor, Source: Name, FetchedAt: c.clock.Now()}, nil
	}
	return payment.Rate{}, fmt.Errorf("btcpay: rate %s: %w", pair, errors.New("not in the answer"))
}
