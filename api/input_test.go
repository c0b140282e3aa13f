package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/btcpay"
)

// TestTextScreened sends NUL characters, invalid UTF-8 and lone surrogates in every part of
// a request and expects a 422 problem naming where, before anything reaches Postgres (which
// answered them with a 500).
func TestTextScreened(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name     string
		method   string
		path     string
		body     string
		header   []string
		location string
	}{
		{"QueryNUL", http.MethodGet, "/v1/admin/customers?email=%00", "", nil, "query.email"},
		{"QueryInvalidUTF8", http.MethodGet, "/v1/admin/customers?external_id=%ff", "", nil, "query.external_id"},
		{"QueryNameNUL", http.MethodGet, "/v1/admin/customers?a%00=1", "", nil, "query"},
		{"PathNUL", http.MethodGet, "/v1/admin/products/%00", "", nil, "path.id"},
		{"HeaderInvalidUTF8", http.MethodGet, "/v1/admin/customers", "", []string{"X-Note", "caf\xe9"}, "header.X-Note"},
		{"AuthorizationInvalidUTF8", http.MethodGet, "/v1/admin/customers", "", []string{"Authorization", "Bearer \xff"}, "header.Authorization"},
		{"BodyEscapedNUL", http.MethodPost, "/v1/admin/customers", `{"email":"a@example.com","external_id":"x\u0000"}`, nil, "body.external_id"},
		{"BodyRawNUL", http.MethodPost, "/v1/admin/customers", "{\"email\":\"a@example.com\",\"external_id\":\"x\x00\"}", nil, "body"},
		{"BodyInvalidUTF8", http.MethodPost, "/v1/admin/customers", "{\"email\":\"a@example.com\",\"external_id\":\"x\xc3\x28\"}", nil, "body.external_id"},
		{"BodyLoneHighSurrogate", http.MethodPost, "/v1/admin/customers", `{"email":"a@example.com","external_id":"x\ud800"}`, nil, "body.external_id"},
		{"BodyLoneLowSurrogate", http.MethodPost, "/v1/admin/customers", `{"email":"a@example.com","external_id":"\udc00x"}`, nil, "body.external_id"},
		{"BodyReversedPair", http.MethodPost, "/v1/admin/customers", `{"email":"a@example.com","external_id":"\udc00\ud800"}`, nil, "body.external_id"},
		{"BodyNestedKey", http.MethodPost, "/v1/admin/customers", `{"email":"a@example.com","metadata":{"ok":[1,{"k\u0000":2}]}}`, nil, "body.metadata.ok[1].k\x00"},
		{"BodyNestedArray", http.MethodPost, "/v1/admin/policies", `{"entitlements":["a",["b","\u0000"]]}`, nil, "body.entitlements[1][1]"},
		{"BuyerPurchase", http.MethodPost, "/v1/purchase", `{"tenant":"\u0000","policy":"pro"}`, []string{"Authorization", ""}, "body.tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			res := b.request(t, tc.method, tc.path, tc.body, tc.header...)
			p := requireProblem(t, res, http.StatusUnprocessableEntity)
			require.Contains(t, p.Detail, "text must be valid UTF-8 without NUL characters")
			errs := decode[struct {
				Errors []struct{ Location string } `json:"errors"`
			}](t, res).Errors
			require.Len(t, errs, 1)
			require.Equal(t, tc.location, errs[0].Location)
		})
	}

	t.Run("CleanTextPasses", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// A surrogate pair is one character (U+1F600); escaped backslashes are not escapes;
		// a literal U+FFFD is valid text.
		res := b.request(t, http.MethodPost, "/v1/admin/customers", `{"email":"a@example.com","external_id":"\ud83d\ude00 \\u0000 \\\"\\ud800 �"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		require.Equal(t, "\U0001F600 \\u0000 \\\"\\ud800 �", decode[struct {
			ExternalID string `json:"external_id"`
		}](t, res).ExternalID)
	})
}

// TestProviderWebhookIDs sends signed BTCPay webhooks with NUL characters and oversized or
// malformed ids, which reached Postgres (500), and expects a 4xx problem that records
// nothing.
func TestProviderWebhookIDs(t *testing.T) {
	t.Parallel()
	sign := func(body string) string { return btcpay.Sign([]byte("webhook-secret-test"), []byte(body)) } // factory.FakeBTCPay's secret

	for _, tc := range []struct {
		name     string
		payload  map[string]any
		location string
	}{
		{"TypeNUL", map[string]any{"deliveryId": "d1", "type": "Invoice\u0000Settled", "invoiceId": "inv"}, "body.type"},
		{"InvoiceIDNUL", map[string]any{"deliveryId": "d1", "type": "InvoiceSettled", "invoiceId": "inv\u0000"}, "body.invoiceId"},
		{"DeliveryIDHuge", map[string]any{"deliveryId": strings.Repeat("d", 10_000), "type": "InvoiceSettled", "invoiceId": "inv"}, "body.deliveryId"},
		{"OriginalDeliveryIDHuge", map[string]any{"deliveryId": "d1", "originalDeliveryId": strings.Repeat("d", 101), "type": "InvoiceSettled"}, "body.originalDeliveryId"},
		{"InvoiceIDWithSpace", map[string]any{"deliveryId": "d1", "type": "InvoiceSettled", "invoiceId": "a b"}, "body.invoiceId"},
		{"TypeNonASCII", map[string]any{"deliveryId": "d1", "type": "Invoicé", "invoiceId": "inv"}, "body.type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			body, err := json.Marshal(tc.payload)
			require.NoError(t, err)
			res := b.request(t, http.MethodPost, "/v1/providers/btcpay/webhook", string(body), "Authorization", "", "BTCPay-Sig", sign(string(body)))
			requireProblem(t, res, http.StatusUnprocessableEntity)
			require.Contains(t, string(res.body), `"location":"`+tc.location+`"`)
			var n int
			require.NoError(t, b.db.QueryRow(context.Background(), "SELECT count(*) FROM provider_webhook_deliveries").Scan(&n))
			require.Zero(t, n)
		})
	}

	t.Run("LongestIDsPass", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := `{"deliveryId":"` + strings.Repeat("d", 100) + `","type":"InvoiceCreated","invoiceId":"` + strings.Repeat("i", 100) + `"}`
		res := b.request(t, http.MethodPost, "/v1/providers/btcpay/webhook", body, "Authorization", "", "BTCPay-Sig", sign(body))
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	})
}

// TestUnmatchedRouteProblemIsJSON requests unknown paths holding invalid UTF-8 and a very
// long path: the 404 stays valid JSON and small (it was Go-quoted, not JSON, and echoed the
// whole path).
func TestUnmatchedRouteProblemIsJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{"/\xff\xfe", "/" + strings.Repeat("x", 200_000), "/\"<&>"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path, req.URL.RawPath = path, ""
		rec := httptest.NewRecorder()
		b.handler.ServeHTTP(rec, req)
		res := response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
		requireProblem(t, res, http.StatusNotFound)
		require.LessOrEqual(t, len(res.body), 2048)
	}
}
