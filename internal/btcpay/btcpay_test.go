package btcpay_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/btcpay"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/fakebtcpay"
	"github.com/tessera/tessera/internal/payment"
)

const (
	storeID = "store-1"
	apiKey  = "api-key-1"
	secret  = "webhook-secret-1"
)

// bundle is a btcpay client talking over loopback to a fake BTCPay server, whose webhooks go
// to a receiver that parses them with the client.
type bundle struct {
	client *btcpay.Client
	fake   *fakebtcpay.Server
	clock  *clock.Manual
	url    string

	mu       sync.Mutex
	received []payment.WebhookEvent
}

// events returns the webhook events the receiver accepted so far.
func (b *bundle) events() []payment.WebhookEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]payment.WebhookEvent(nil), b.received...)
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{clock: clock.NewManual(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		event, err := b.client.ParseWebhook(body, r.Header)
		if errors.Is(err, payment.ErrBadSignature) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.received = append(b.received, event)
		b.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(receiver.Close)

	fake, err := fakebtcpay.New(fakebtcpay.Config{
		StoreID: storeID, APIKey: apiKey, WebhookSecret: secret, WebhookURL: receiver.URL,
		Clock: b.clock, Rates: map[string]string{"USD": "50000.00", "EUR": "46123.456"},
	})
	require.NoError(t, err)
	server := httptest.NewServer(fake.Handler())
	t.Cleanup(server.Close)
	b.fake, b.url = fake, server.URL

	b.client, err = btcpay.New(btcpay.Config{
		BaseURL: server.URL + "/", StoreID: storeID, APIKey: apiKey, WebhookSecret: secret,
		HTTPClient: server.Client(), Clock: b.clock,
	})
	require.NoError(t, err)
	return b
}

// createInvoice creates an invoice of sats for order "order-1".
func (b *bundle) createInvoice(t *testing.T, sats int64) payment.Invoice {
	t.Helper()
	inv, err := b.client.CreateInvoice(t.Context(), payment.InvoiceRequest{
		OrderID: "order-1", AmountSats: sats, Metadata: map[string]string{"tenantId": "tenant-1"},
	})
	require.NoError(t, err)
	return inv
}

func TestNew(t *testing.T) {
	t.Parallel()

	valid := btcpay.Config{BaseURL: "https://btcpay.example", StoreID: "s", APIKey: "k", WebhookSecret: "w"}
	for _, tt := range []struct {
		name   string
		modify func(*btcpay.Config)
		err    string
	}{
		{name: "Valid", modify: func(*btcpay.Config) {}},
		{name: "NoBaseURL", modify: func(c *btcpay.Config) { c.BaseURL = "" }, err: "BaseURL is required"},
		{name: "NotHTTP", modify: func(c *btcpay.Config) { c.BaseURL = "ftp://btcpay.example" }, err: "not an http(s) URL"},
		{name: "NoHost", modify: func(c *btcpay.Config) { c.BaseURL = "https://" }, err: "not an http(s) URL"},
		{name: "NoStore", modify: func(c *btcpay.Config) { c.StoreID = "" }, err: "StoreID is required"},
		{name: "NoAPIKey", modify: func(c *btcpay.Config) { c.APIKey = "" }, err: "APIKey is required"},
		{name: "NoWebhookSecret", modify: func(c *btcpay.Config) { c.WebhookSecret = "" }, err: "WebhookSecret is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.modify(&cfg)
			client, err := btcpay.New(cfg)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "btcpay", client.Name())
		})
	}
}

func TestCreateInvoice(t *testing.T) {
	t.Parallel()

	t.Run("InSatsWithOrderID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		inv := b.createInvoice(t, 50_000)
		require.NotEmpty(t, inv.ID)
		require.Equal(t, payment.Invoice{
			ID: inv.ID, OrderID: "order-1", Status: payment.InvoiceNew, AmountSats: 50_000,
			CheckoutURL: b.url + "/i/" + inv.ID, ExpiresAt: b.clock.Now().Add(15 * time.Minute).Truncate(time.Second),
		}, inv)

		stored, err := b.fake.Invoice(inv.ID)
		require.NoError(t, err)
		require.Equal(t, map[string]any{"orderId": "order-1", "tenantId": "tenant-1"}, stored.Metadata)
		require.Equal(t, int64(50_000), stored.AmountSats)
	})
	t.Run("RefusesNonPositiveAmount", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.CreateInvoice(t.Context(), payment.InvoiceRequest{OrderID: "o", AmountSats: 0})
		require.ErrorContains(t, err, "not positive")
		require.Zero(t, b.fake.Requests())
	})
	t.Run("ProviderDown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.FailNext(2)
		for range 2 {
			_, err := b.client.CreateInvoice(t.Context(), payment.InvoiceRequest{OrderID: "o", AmountSats: 1})
			require.ErrorContains(t, err, "503")
			require.NotErrorIs(t, err, payment.ErrNotFound)
		}
		b.createInvoice(t, 1)
		require.Equal(t, 3, b.fake.Requests())
		require.Len(t, b.fake.Invoices(), 1)
	})
	t.Run("WrongAPIKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		client, err := btcpay.New(btcpay.Config{BaseURL: b.url, StoreID: storeID, APIKey: "wrong", WebhookSecret: secret})
		require.NoError(t, err)
		_, err = client.CreateInvoice(t.Context(), payment.InvoiceRequest{OrderID: "o", AmountSats: 1})
		require.ErrorContains(t, err, "401")
	})
	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		hung := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(hung.Close)
		t.Cleanup(func() { close(release) })
		client, err := btcpay.New(btcpay.Config{BaseURL: hung.URL, StoreID: storeID, APIKey: apiKey, WebhookSecret: secret})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err = client.CreateInvoice(ctx, payment.InvoiceRequest{OrderID: "o", AmountSats: 1})
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestFindInvoice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	older := b.createInvoice(t, 1_000)
	newer := b.createInvoice(t, 2_000)
	_, err := b.client.CreateInvoice(t.Context(), payment.InvoiceRequest{OrderID: "order-2", AmountSats: 3_000})
	require.NoError(t, err)

	found, err := b.client.FindInvoice(t.Context(), "order-1")
	require.NoError(t, err)
	require.Equal(t, newer, found, "the newest invoice of the order")
	require.NotEqual(t, older.ID, found.ID)

	_, err = b.client.FindInvoice(t.Context(), "order-none")
	require.ErrorIs(t, err, payment.ErrNotFound)
	_, err = b.client.FindInvoice(t.Context(), "")
	require.Error(t, err)
	b.fake.FailNext(1)
	_, err = b.client.FindInvoice(t.Context(), "order-1")
	require.ErrorContains(t, err, "503")
	require.NotErrorIs(t, err, payment.ErrNotFound, "an outage is not an absence")
}

func TestGetInvoice(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name   string
		mark   func(f *fakebtcpay.Server, id string) error
		status payment.InvoiceStatus
		paid   int64
	}{
		{name: "New", mark: func(*fakebtcpay.Server, string) error { return nil }, status: payment.InvoiceNew},
		{name: "Settled", mark: func(f *fakebtcpay.Server, id string) error { return f.Settle(id, 60) }, status: payment.InvoiceSettled, paid: 60},
		{name: "Underpaid", mark: func(f *fakebtcpay.Server, id string) error { return f.Settle(id, 59) }, status: payment.InvoiceSettled, paid: 59},
		{name: "Overpaid", mark: func(f *fakebtcpay.Server, id string) error { return f.Settle(id, 100_000_061) }, status: payment.InvoiceSettled, paid: 100_000_061},
		{name: "Expired", mark: func(f *fakebtcpay.Server, id string) error { return f.Expire(id) }, status: payment.InvoiceExpired},
		{name: "Invalid", mark: func(f *fakebtcpay.Server, id string) error { return f.Invalidate(id) }, status: payment.InvoiceInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			created := b.createInvoice(t, 60)
			require.NoError(t, tt.mark(b.fake, created.ID))
			got, err := b.client.GetInvoice(t.Context(), created.ID)
			require.NoError(t, err)
			want := created
			want.Status, want.PaidSats, want.ConfirmedSats = tt.status, tt.paid, tt.paid
			require.Equal(t, want, got)
		})
	}

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.GetInvoice(t.Context(), "nope")
		require.ErrorIs(t, err, payment.ErrNotFound)
	})
	t.Run("OtherStoreIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		client, err := btcpay.New(btcpay.Config{BaseURL: b.url, StoreID: "other", APIKey: apiKey, WebhookSecret: secret})
		require.NoError(t, err)
		_, err = client.GetInvoice(t.Context(), b.createInvoice(t, 1).ID)
		require.ErrorIs(t, err, payment.ErrNotFound)
	})
	t.Run("RefusesPathInID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.GetInvoice(t.Context(), "../rates")
		require.ErrorContains(t, err, "invalid invoice id")
		require.Zero(t, b.fake.Requests())
	})
	t.Run("ProviderDown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.createInvoice(t, 1).ID
		b.fake.FailNext(1)
		_, err := b.client.GetInvoice(t.Context(), id)
		require.ErrorContains(t, err, "503")
		require.NotErrorIs(t, err, payment.ErrNotFound)
	})
}

func TestInvalidateInvoice(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name    string
		mark    func(f *fakebtcpay.Server, id string) error
		wantErr error
		status  string
	}{
		{name: "New", mark: func(*fakebtcpay.Server, string) error { return nil }, status: "Invalid"},
		{name: "Expired", mark: func(f *fakebtcpay.Server, id string) error { return f.Expire(id) }, status: "Invalid"},
		{name: "Settled", mark: func(f *fakebtcpay.Server, id string) error { return f.Settle(id, 60) }, wantErr: payment.ErrNotInvalidatable, status: "Settled"},
		{name: "InvalidAlready", mark: func(f *fakebtcpay.Server, id string) error { return f.MarkInvalid(id) }, wantErr: payment.ErrNotInvalidatable, status: "Invalid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			id := b.createInvoice(t, 60).ID
			require.NoError(t, tt.mark(b.fake, id))
			err := b.client.InvalidateInvoice(t.Context(), id)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			inv, err := b.fake.Invoice(id)
			require.NoError(t, err)
			require.Equal(t, tt.status, inv.Status)
		})
	}

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.ErrorIs(t, b.client.InvalidateInvoice(t.Context(), "nope"), payment.ErrNotFound)
	})
	t.Run("ProviderDown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.createInvoice(t, 1).ID
		b.fake.FailNext(1)
		err := b.client.InvalidateInvoice(t.Context(), id)
		require.ErrorContains(t, err, "503")
		require.NotErrorIs(t, err, payment.ErrNotInvalidatable)
	})
	t.Run("LatePaymentIsRead", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.createInvoice(t, 60).ID
		require.NoError(t, b.client.InvalidateInvoice(t.Context(), id))
		require.Error(t, b.fake.Settle(id, 60), "an invalid invoice's checkout takes no payment")
		require.NoError(t, b.fake.PayLate(id, 60))
		require.NoError(t, b.fake.PayLateUnconfirmed(id, 40))
		got, err := b.client.GetInvoice(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, payment.InvoiceInvalid, got.Status)
		require.Equal(t, int64(100), got.PaidSats)
		require.Equal(t, int64(60), got.ConfirmedSats, "the unconfirmed payment is not counted yet")
		require.NoError(t, b.fake.ConfirmPayments(id))
		got, err = b.client.GetInvoice(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, int64(100), got.ConfirmedSats)
	})
}

func TestRate(t *testing.T) {
	t.Parallel()

	b := setup(t)
	for _, tt := range []struct {
		name     string
		currency string
		want     int64
		err      string
	}{
		{name: "USD", currency: "USD", want: 5_000_000},
		{name: "LowerCase", currency: "usd", want: 5_000_000},
		{name: "EURRoundsToCent", currency: "EUR", want: 4_612_346},
		{name: "NotConfigured", currency: "GBP", err: "no rate for BTC_GBP"},
		{name: "Unsupported", currency: "XYZ", err: "unsupported currency"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rate, err := b.client.Rate(t.Context(), tt.currency)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, payment.Rate{
				Currency: rate.Currency, MinorPerBTC: tt.want, Source: "btcpay", FetchedAt: b.clock.Now(),
			}, rate)
			require.Len(t, rate.Currency, 3)
		})
	}
}

func TestWebhook(t *testing.T) {
	t.Parallel()

	t.Run("SettledRoundTrip", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		inv := b.createInvoice(t, 60)
		require.NoError(t, b.fake.Settle(inv.ID, 60))
		statuses, err := b.fake.SendWebhook(inv.ID, fakebtcpay.EventInvoiceSettled, 3)
		require.NoError(t, err)
		require.Equal(t, []int{200, 200, 200}, statuses)

		events := b.events()
		require.Len(t, events, 3)
		first := events[0]
		require.Equal(t, first.DeliveryID, first.OriginalDeliveryID)
		require.Equal(t, payment.WebhookEvent{
			DeliveryID: first.DeliveryID, OriginalDeliveryID: first.DeliveryID,
			Type: "InvoiceSettled", InvoiceID: inv.ID, OrderID: "order-1",
		}, first)
		seen := map[string]bool{}
		for _, e := range events {
			require.Equal(t, first.OriginalDeliveryID, e.OriginalDeliveryID)
			require.Equal(t, inv.ID, e.InvoiceID)
			require.False(t, seen[e.DeliveryID], "delivery %s sent twice", e.DeliveryID)
			seen[e.DeliveryID] = true
		}
	})
	t.Run("SignedWebhookReplays", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		inv := b.createInvoice(t, 60)
		body, header, err := b.fake.SignedWebhook(inv.ID, fakebtcpay.EventInvoiceExpired)
		require.NoError(t, err)
		first, err := b.client.ParseWebhook(body, header)
		require.NoError(t, err)
		again, err := b.client.ParseWebhook(body, header)
		require.NoError(t, err)
		require.Equal(t, first, again)
		require.Equal(t, "InvoiceExpired", first.Type)
	})
	t.Run("BadSignatures", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		inv := b.createInvoice(t, 60)
		body, header, err := b.fake.SignedWebhook(inv.ID, fakebtcpay.EventInvoiceSettled)
		require.NoError(t, err)
		sig := header.Get(btcpay.SignatureHeader)

		tampered := append([]byte(nil), body...)
		tampered[len(tampered)-2] ^= 1
		for _, tt := range []struct {
			name string
			body []byte
			sig  string
		}{
			{name: "Missing", body: body, sig: ""},
			{name: "NoPrefix", body: body, sig: sig[len("sha256="):]},
			{name: "NotHex", body: body, sig: "sha256=zz"},
			{name: "Truncated", body: body, sig: sig[:len(sig)-2]},
			{name: "OtherSecret", body: body, sig: btcpay.Sign([]byte("other"), body)},
			{name: "TamperedBody", body: tampered, sig: sig},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				h := http.Header{}
				if tt.sig != "" {
					h.Set(btcpay.SignatureHeader, tt.sig)
				}
				_, err := b.client.ParseWebhook(tt.body, h)
				require.ErrorIs(t, err, payment.ErrBadSignature)
			})
		}
	})
	t.Run("SignedButMalformed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, tt := range []struct {
			name string
			body string
			err  string
		}{
			{name: "NotJSON", body: "nope", err: "decode webhook"},
			{name: "NoDeliveryID", body: `{"type":"InvoiceSettled","invoiceId":"i"}`, err: "no deliveryId"},
			{name: "NoType", body: `{"deliveryId":"d","invoiceId":"i"}`, err: "no type"},
			{name: "OtherStore", body: `{"deliveryId":"d","type":"InvoiceSettled","storeId":"other"}`, err: "is for store"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				h := http.Header{}
				h.Set(btcpay.SignatureHeader, btcpay.Sign([]byte(secret), []byte(tt.body)))
				_, err := b.client.ParseWebhook([]byte(tt.body), h)
				require.ErrorContains(t, err, tt.err)
				require.NotErrorIs(t, err, payment.ErrBadSignature)
			})
		}
	})
	t.Run("RedeliveryAndNonStringOrderID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := []byte(`{"deliveryId":"d2","originalDeliveryId":"d1","isRedelivery":true,"type":"InvoiceInvalid","invoiceId":"i","storeId":"store-1","metadata":{"orderId":42}}`)
		h := http.Header{}
		h.Set(btcpay.SignatureHeader, btcpay.Sign([]byte(secret), body))
		event, err := b.client.ParseWebhook(body, h)
		require.NoError(t, err)
		require.Equal(t, payment.WebhookEvent{DeliveryID: "d2", OriginalDeliveryID: "d1", Type: "InvoiceInvalid", InvoiceID: "i"}, event)
	})
}

// FuzzParseWebhook feeds arbitrary bodies and signatures to ParseWebhook, signed correctly or
// not: it never panics, refuses every wrong signature with ErrBadSignature, and what it
// accepts has a delivery id and a type.
func FuzzParseWebhook(f *testing.F) {
	client, err := btcpay.New(btcpay.Config{BaseURL: "http://127.0.0.1:1", StoreID: storeID, APIKey: apiKey, WebhookSecret: secret})
	require.NoError(f, err)
	for _, seed := range []string{
		`{"deliveryId":"d","webhookId":"w","originalDeliveryId":"d","isRedelivery":false,"type":"InvoiceSettled","timestamp":1,"storeId":"store-1","invoiceId":"i","metadata":{"orderId":"o"}}`,
		`{"deliveryId":"d","type":"InvoiceExpired","metadata":null}`,
		`{"deliveryId":"","type":""}`, `{}`, `[]`, `null`, ``, `{"metadata":{"orderId":{"x":1}}}`,
	} {
		f.Add([]byte(seed), "", true)
		f.Add([]byte(seed), "sha256=00", false)
	}
	f.Fuzz(func(t *testing.T, body []byte, sig string, sign bool) {
		h := http.Header{}
		if sign {
			sig = btcpay.Sign([]byte(secret), body)
		}
		h.Set(btcpay.SignatureHeader, sig)
		event, err := client.ParseWebhook(body, h)
		if sig != btcpay.Sign([]byte(secret), body) && !sign {
			// Only the exact signature (modulo hex case and surrounding spaces) verifies.
			if err == nil {
				require.Equal(t, btcpay.Sign([]byte(secret), body), normalize(sig))
			}
			return
		}
		if err != nil {
			require.NotErrorIs(t, err, payment.ErrBadSignature)
			return
		}
		require.NotEmpty(t, event.DeliveryID)
		require.NotEmpty(t, event.OriginalDeliveryID)
		require.NotEmpty(t, event.Type)
	})
}

// normalize is a BTCPay-Sig value as Sign writes it: no surrounding spaces, lower-case hex.
func normalize(sig string) string { return strings.ToLower(strings.TrimSpace(sig)) }
