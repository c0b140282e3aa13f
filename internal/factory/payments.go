package factory

import (
	"net/http/httptest"
	"testing"

	"github.com/tessera/tessera/internal/btcpay"
	"github.com/tessera/tessera/internal/fakebtcpay"
)

// Payments is a fake BTCPay server on loopback and a real BTCPay client pointed at it.
type Payments struct {
	Fake   *fakebtcpay.Server
	Client *btcpay.Client
	URL    string
	// WebhookSecret signs the provider's webhooks (btcpay.Sign).
	WebhookSecret string
}

// FakeBTCPay starts a fake BTCPay server on loopback (stopped when the test ends) with a
// $50,000.00/BTC and €45,000.00/BTC rate, delivering webhooks to webhookURL (may be empty
// when the test sends none), and returns it with a client for it.
func FakeBTCPay(tb testing.TB, webhookURL string) Payments {
	tb.Helper()
	const store, key, secret = "store-test", "api-key-test", "webhook-secret-test"
	fake, err := fakebtcpay.New(fakebtcpay.Config{
		StoreID: store, APIKey: key, WebhookSecret: secret, WebhookURL: webhookURL,
		Rates: map[string]string{"USD": "50000.00", "EUR": "45000.00"},
	})
	if err != nil {
		tb.Fatalf("factory: fake btcpay: %v", err)
	}
	srv := httptest.NewServer(fake.Handler())
	tb.Cleanup(srv.Close)
	client, err := btcpay.New(btcpay.Config{BaseURL: srv.URL, StoreID: store, APIKey: key, WebhookSecret: secret})
	if err != nil {
		tb.Fatalf("factory: btcpay client: %v", err)
	}
	return Payments{Fake: fake, Client: client, URL: srv.URL, WebhookSecret: secret}
}
