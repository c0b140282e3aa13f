package fakebtcpay_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/btcpay"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/fakebtcpay"
)

const (
	storeID = "store-1"
	apiKey  = "api-key-1"
	secret  = "webhook-secret-1"
)

// webhook is one delivery the receiver got.
type webhook struct {
	body  map[string]any
	sigOK bool
}

// bundle is a fake server on loopback and a webhook receiver.
type bundle struct {
	fake *fakebtcpay.Server
	url  string
	http *http.Client

	mu       sync.Mutex
	received []webhook
	answer   int
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{answer: http.StatusOK}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		b.received = append(b.received, webhook{
			body:  body,
			sigOK: r.Header.Get("BTCPay-Sig") == btcpay.Sign([]byte(secret), raw),
		})
		w.WriteHeader(b.answer)
	}))
	t.Cleanup(receiver.Close)

	fake, err := fakebtcpay.New(fakebtcpay.Config{
		StoreID: storeID, APIKey: apiKey, WebhookSecret: secret, WebhookURL: receiver.URL,
		Clock: clock.NewManual(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		Rates: map[string]string{"USD": "50000.00"},
	})
	require.NoError(t, err)
	server := httptest.NewServer(fake.Handler())
	t.Cleanup(server.Close)
	b.fake, b.url, b.http = fake, server.URL, server.Client()
	return b
}

// webhooks returns the deliveries received so far.
func (b *bundle) webhooks() []webhook {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]webhook(nil), b.received...)
}

// call sends a request with the API key (unless key is "") and decodes the JSON answer.
func (b *bundle) call(t *testing.T, method, path, key, body string) (int, any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "token "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := b.http.Do(req)
	require.NoError(t, err)
	defer func() { require.NoError(t, res.Body.Close()) }()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var out any
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(raw, &out), "body: %s", raw)
	} else {
		out = string(raw)
	}
	return res.StatusCode, out
}

// createInvoice creates an invoice of sats through the API and returns its id.
func (b *bundle) createInvoice(t *testing.T, sats int64) string {
	t.Helper()
	status, out := b.call(t, http.MethodPost, "/api/v1/stores/store-1/invoices", apiKey,
		fmt.Sprintf(`{"amount":"%d","currency":"SATS","metadata":{"orderId":"order-1"}}`, sats))
	require.Equal(t, http.StatusOK, status, "%v", out)
	return out.(map[string]any)["id"].(string)
}

func TestNew(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name string
		cfg  fakebtcpay.Config
		err  string
	}{
		{name: "Valid", cfg: fakebtcpay.Config{StoreID: "s", APIKey: "k", WebhookSecret: "w"}},
		{name: "NoStore", cfg: fakebtcpay.Config{APIKey: "k", WebhookSecret: "w"}, err: "StoreID is required"},
		{name: "NoAPIKey", cfg: fakebtcpay.Config{StoreID: "s", WebhookSecret: "w"}, err: "APIKey is required"},
		{name: "NoSecret", cfg: fakebtcpay.Config{StoreID: "s", APIKey: "k"}, err: "WebhookSecret is required"},
		{name: "NegativeExpiry", cfg: fakebtcpay.Config{StoreID: "s", APIKey: "k", WebhookSecret: "w", InvoiceExpiry: -1}, err: "negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := fakebtcpay.New(tt.cfg)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
		})
	}
}

func TestAPI(t *testing.T) {
	t.Parallel()

	t.Run("Auth", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, tt := range []struct {
			name   string
			key    string
			path   string
			status int
		}{
			{name: "NoKey", key: "", path: "/api/v1/stores/store-1/rates", status: http.StatusUnauthorized},
			{name: "WrongKey", key: "wrong", path: "/api/v1/stores/store-1/rates", status: http.StatusUnauthorized},
			{name: "OtherStore", key: apiKey, path: "/api/v1/stores/other/rates", status: http.StatusNotFound},
			{name: "UnknownInvoice", key: apiKey, path: "/api/v1/stores/store-1/invoices/nope", status: http.StatusNotFound},
			{name: "UnknownInvoiceMethods", key: apiKey, path: "/api/v1/stores/store-1/invoices/nope/payment-methods", status: http.StatusNotFound},
			{name: "Valid", key: apiKey, path: "/api/v1/stores/store-1/rates", status: http.StatusOK},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				status, _ := b.call(t, http.MethodGet, tt.path, tt.key, "")
				require.Equal(t, tt.status, status)
			})
		}
	})
	t.Run("CreateRefusesBadRequests", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, body := range []string{`{"amount":"10","currency":"USD"}`, `{"amount":"0","currency":"SATS"}`, `{"amount":"1.5","currency":"SATS"}`} {
			status, _ := b.call(t, http.MethodPost, "/api/v1/stores/store-1/invoices", apiKey, body)
			require.Equal(t, http.StatusUnprocessableEntity, status, body)
		}
		status, _ := b.call(t, http.MethodPost, "/api/v1/stores/store-1/invoices", apiKey, `{`)
		require.Equal(t, http.StatusBadRequest, status)
		require.Empty(t, b.fake.Invoices())
	})
	t.Run("PaymentMethodsInBTC", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.createInvoice(t, 150_000_000)
		require.NoError(t, b.fake.Settle(id, 50_000))
		status, out := b.call(t, http.MethodGet, "/api/v1/stores/store-1/invoices/"+id+"/payment-methods", apiKey, "")
		require.Equal(t, http.StatusOK, status)
		method := out.([]any)[0].(map[string]any)
		require.Equal(t, "1.50000000", method["amount"])
		require.Equal(t, "0.00050000", method["paymentMethodPaid"])
		require.Equal(t, "1.49950000", method["due"])
	})
	t.Run("Rates", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, out := b.call(t, http.MethodGet, "/api/v1/stores/store-1/rates?currencyPair=BTC_USD,BTC_EUR", apiKey, "")
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, []any{
			map[string]any{"currencyPair": "BTC_USD", "errors": []any{}, "rate": "50000.00"},
			map[string]any{"currencyPair": "BTC_EUR", "errors": []any{"The fake BTCPay server has no rate for BTC_EUR"}, "rate": nil},
		}, out)
		_, all := b.call(t, http.MethodGet, "/api/v1/stores/store-1/rates", apiKey, "")
		require.Len(t, all, 1)
	})
	t.Run("FailNextAndRequests", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fake.FailNext(2)
		for range 2 {
			status, _ := b.call(t, http.MethodGet, "/api/v1/stores/store-1/rates", apiKey, "")
			require.Equal(t, http.StatusServiceUnavailable, status)
		}
		status, _ := b.call(t, http.MethodGet, "/api/v1/stores/store-1/rates", apiKey, "")
		require.Equal(t, http.StatusOK, status)
		b.call(t, http.MethodGet, "/fake/invoices", "", "")
		require.Equal(t, 3, b.fake.Requests(), "demo endpoints are not API calls")
	})
	t.Run("ConcurrentCreates", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() { b.createInvoice(t, 1) })
		}
		wg.Wait()
		require.Len(t, b.fake.Invoices(), 20)
		require.Equal(t, 20, b.fake.Requests())
	})
}

func TestTransitions(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name    string
		first   func(f *fakebtcpay.Server, id string) error
		then    func(f *fakebtcpay.Server, id string) error
		allowed bool
	}{
		{name: "SettleSettled", first: settle, then: settle},
		{name: "ExpireSettled", first: settle, then: expire},
		{name: "InvalidateSettled", first: settle, then: invalidate, allowed: true},
		{name: "SettleExpired", first: expire, then: settle},
		{name: "InvalidateExpired", first: expire, then: invalidate},
		{name: "SettleInvalid", first: invalidate, then: settle},
		{name: "ExpireInvalid", first: invalidate, then: expire},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			id := b.createInvoice(t, 10)
			require.NoError(t, tt.first(b.fake, id))
			err := tt.then(b.fake, id)
			if tt.allowed {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, fakebtcpay.ErrState)
		})
	}
	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.ErrorIs(t, settle(b.fake, "nope"), fakebtcpay.ErrNotFound)
		_, err := b.fake.SendWebhook("nope", fakebtcpay.EventInvoiceSettled, 1)
		require.ErrorIs(t, err, fakebtcpay.ErrNotFound)
	})
	t.Run("SettleNegative", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.ErrorContains(t, b.fake.Settle(b.createInvoice(t, 10), -1), "negative")
	})
}

func settle(f *fakebtcpay.Server, id string) error     { return f.Settle(id, 10) }
func expire(f *fakebtcpay.Server, id string) error     { return f.Expire(id) }
func invalidate(f *fakebtcpay.Server, id string) error { return f.Invalidate(id) }

func TestSendWebhook(t *testing.T) {
	t.Parallel()

	b := setup(t)
	id := b.createInvoice(t, 10)
	require.NoError(t, b.fake.Settle(id, 12))
	statuses, err := b.fake.SendWebhook(id, fakebtcpay.EventInvoiceSettled, 3)
	require.NoError(t, err)
	require.Equal(t, []int{200, 200, 200}, statuses)

	got := b.webhooks()
	require.Len(t, got, 3)
	first := got[0].body
	require.Equal(t, first["deliveryId"], first["originalDeliveryId"])
	require.Equal(t, false, first["isRedelivery"])
	require.Equal(t, "InvoiceSettled", first["type"])
	require.Equal(t, storeID, first["storeId"])
	require.Equal(t, id, first["invoiceId"])
	require.Equal(t, true, first["overPaid"])
	require.Equal(t, map[string]any{"orderId": "order-1"}, first["metadata"])
	require.InDelta(t, float64(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Unix()), first["timestamp"], 0)
	for _, w := range got {
		require.True(t, w.sigOK)
		require.Equal(t, first["originalDeliveryId"], w.body["originalDeliveryId"])
	}
	require.NotEqual(t, first["deliveryId"], got[1].body["deliveryId"])
	require.Equal(t, true, got[1].body["isRedelivery"])

	t.Run("ReturnsReceiverStatuses", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.mu.Lock()
		b.answer = http.StatusInternalServerError
		b.mu.Unlock()
		statuses, err := b.fake.SendWebhook(b.createInvoice(t, 1), fakebtcpay.EventInvoiceExpired, 2)
		require.NoError(t, err)
		require.Equal(t, []int{500, 500}, statuses)
	})
	t.Run("NoWebhookURL", func(t *testing.T) {
		t.Parallel()
		fake, err := fakebtcpay.New(fakebtcpay.Config{StoreID: "s", APIKey: "k", WebhookSecret: "w"})
		require.NoError(t, err)
		_, err = fake.SendWebhook("x", fakebtcpay.EventInvoiceSettled, 1)
		require.ErrorContains(t, err, "no WebhookURL")
	})
}

func TestDemoEndpoints(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name      string
		path      string
		status    string
		paid      float64
		eventType string
	}{
		{name: "Settle", path: "settle", status: "Settled", paid: 10, eventType: "InvoiceSettled"},
		{name: "SettleUnderpaid", path: "settle?sats=7", status: "Settled", paid: 7, eventType: "InvoiceSettled"},
		{name: "Expire", path: "expire", status: "Expired", eventType: "InvoiceExpired"},
		{name: "Invalidate", path: "invalidate", status: "Invalid", eventType: "InvoiceInvalid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			id := b.createInvoice(t, 10)
			status, out := b.call(t, http.MethodPost, "/fake/invoices/"+id+"/"+tt.path, "", "")
			require.Equal(t, http.StatusOK, status, "%v", out)
			result := out.(map[string]any)
			require.InDelta(t, 200, result["webhookStatus"], 0)
			invoice := result["invoice"].(map[string]any)
			require.Equal(t, tt.status, invoice["status"])
			require.InDelta(t, tt.paid, invoice["paidSats"], 0)

			got := b.webhooks()
			require.Len(t, got, 1)
			require.True(t, got[0].sigOK)
			require.Equal(t, tt.eventType, got[0].body["type"])
			require.Equal(t, id, got[0].body["invoiceId"])

			status, _ = b.call(t, http.MethodPost, "/fake/invoices/"+id+"/expire", "", "")
			require.Equal(t, http.StatusConflict, status, "a second change is refused")
		})
	}

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, _ := b.call(t, http.MethodPost, "/fake/invoices/nope/settle", "", "")
		require.Equal(t, http.StatusNotFound, status)
		status, _ = b.call(t, http.MethodPost, "/fake/invoices/"+b.createInvoice(t, 1)+"/settle?sats=x", "", "")
		require.Equal(t, http.StatusUnprocessableEntity, status)
		require.Empty(t, b.webhooks())
	})
	t.Run("List", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first, second := b.createInvoice(t, 1), b.createInvoice(t, 2)
		status, out := b.call(t, http.MethodGet, "/fake/invoices", "", "")
		require.Equal(t, http.StatusOK, status)
		list := out.([]any)
		require.Len(t, list, 2)
		require.Equal(t, first, list[0].(map[string]any)["id"])
		require.Equal(t, second, list[1].(map[string]any)["id"])
		require.Equal(t, "order-1", list[0].(map[string]any)["orderId"])
	})
	t.Run("CheckoutPageMarksPaid", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.createInvoice(t, 25)
		inv, err := b.fake.Invoice(id)
		require.NoError(t, err)
		require.Equal(t, b.url+"/i/"+id, inv.CheckoutLink)

		status, page := b.call(t, http.MethodGet, "/i/"+id, "", "")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, page, "25 sats")
		require.Contains(t, page, `action="/fake/invoices/`+id+`/settle"`)
		require.Contains(t, page, "Mark paid")

		// Submit the page's form: the browser posts it and follows the redirect.
		res, err := b.http.PostForm(b.url+"/fake/invoices/"+id+"/settle", url.Values{"redirect": {"1"}, "sats": {"30"}})
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		require.NoError(t, res.Body.Close())
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, "/i/"+id, res.Request.URL.Path)
		require.Contains(t, string(body), "Settled")
		require.NotContains(t, string(body), "Mark paid")

		inv, err = b.fake.Invoice(id)
		require.NoError(t, err)
		require.Equal(t, int64(30), inv.PaidSats)
		require.Equal(t, "PaidOver", inv.AdditionalStatus)

		status, _ = b.call(t, http.MethodGet, "/i/nope", "", "")
		require.Equal(t, http.StatusNotFound, status)
	})
}
