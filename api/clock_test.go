package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

// clockAdvance is the answer of clock-advance and clock-advance-get.
type clockAdvance struct {
	ID                  string    `json:"id"`
	Status              string    `json:"status"`
	Clock               time.Time `json:"clock"`
	Instants            int       `json:"instants"`
	RenewalsStarted     int       `json:"renewals_started"`
	RenewalsPaid        int       `json:"renewals_paid"`
	SubscriptionsLapsed int       `json:"subscriptions_lapsed"`
	LicensesExpired     int       `json:"licenses_expired"`
	InvoicesExpired     int       `json:"invoices_expired"`
}

// advance advances b's sandbox clock and requires that the advance finished in the request.
func (b *bundle) advance(t *testing.T, body string) clockAdvance {
	t.Helper()
	res := b.request(t, http.MethodPost, "/v1/admin/clock/advance", body)
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	got := decode[clockAdvance](t, res)
	require.Equal(t, "succeeded", got.Status)
	return got
}

// payCheckout pays a sandbox invoice at its checkout URL, as a buyer.
func (b *bundle) payCheckout(t *testing.T, checkoutURL string) {
	t.Helper()
	res := b.request(t, http.MethodPost, checkoutURL+"/pay", "", "Authorization", "")
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	require.Contains(t, string(res.body), `"status":"Settled"`)
}

// subscriptionStatus reads the status of the one subscription of b's tenant.
func (b *bundle) subscriptionStatus(t *testing.T) string {
	t.Helper()
	var status string
	require.NoError(t, b.db.QueryRow(t.Context(), "SELECT status FROM subscriptions WHERE tenant_id = $1", b.tenant.ID).Scan(&status))
	return status
}

// TestClockAdvance walks a monthly subscription of a sandbox tenant through a renewal, an
// unpaid lapse, a late payment and three years of auto-paid renewals to its perpetual
// fallback, moving the sandbox's clock by the API (the README's walk-through).
func TestClockAdvance(t *testing.T) {
	t.Parallel()
	b := setupSandbox(t)
	product := factory.Product(t, b.db, b.tenant.ID)
	factory.Policy(t, b.db, b.tenant.ID, factory.PolicyProduct(product.ID), factory.PolicySlug("monthly"), factory.PolicyRecurring(30),
		factory.PolicyGraceDays(7), factory.PolicyPrice(sql.CurrencySAT, 1000), factory.PolicyPerpetualAfterDays(365))
	customer := factory.Customer(t, b.db, b.tenant.ID, factory.CustomerEmail("buyer@example.com"))

	// A sandbox PayIn is invoiced at once, at Tessera's own checkout.
	res := b.request(t, http.MethodPost, "/v1/purchase", fmt.Sprintf(`{"tenant":%q,"policy":"monthly","customer_email":"buyer@example.com","assets":[]}`, b.tenant.Slug), "Authorization", "")
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	purchase := decode[payin](t, res)
	require.Equal(t, "PENDING", purchase.State)
	require.True(t, strings.HasPrefix(purchase.Invoice.CheckoutURL, "/v1/sandbox/invoices/sbx_"), purchase.Invoice.CheckoutURL)
	b.payCheckout(t, purchase.Invoice.CheckoutURL)
	purchase = decode[payin](t, b.request(t, http.MethodGet, "/v1/payins/"+purchase.ID, "", "Authorization", ""))
	require.Equal(t, "PAID", purchase.State)
	key := purchase.LicenseKey
	require.True(t, strings.HasPrefix(key, "TST1."))

	// 30 days: the renewal is pending with its checkout URL.
	got := b.advance(t, `{"by":"30d"}`)
	require.Equal(t, 1, got.RenewalsStarted)
	require.True(t, sandboxClock.AddDate(0, 0, 30).Equal(got.Clock))
	require.Equal(t, "past_due", b.subscriptionStatus(t))
	pending := decode[struct {
		Items []payin `json:"items"`
	}](t, b.request(t, http.MethodGet, "/v1/admin/payins?state=PENDING", ""))
	require.Len(t, pending.Items, 1)
	renewal := pending.Items[0]
	require.NotNil(t, renewal.Invoice)

	// 8 more days unpaid: the invoice expired, the subscription lapsed, the licence expired.
	got = b.advance(t, `{"by":"8d"}`)
	require.Equal(t, 1, got.InvoicesExpired)
	require.Equal(t, 1, got.SubscriptionsLapsed)
	require.Equal(t, 1, got.LicensesExpired)
	require.Equal(t, "lapsed", b.subscriptionStatus(t))
	v, _ := b.validate(t, map[string]any{"key": key})
	require.Equal(t, "EXPIRED", v.Code)
	res = b.request(t, http.MethodPost, renewal.Invoice.CheckoutURL+"/pay", "", "Authorization", "")
	requireCode(t, res, http.StatusConflict, "sandbox_invoice_closed")

	// Paying the renewal late (a retry of its PayIn) makes it active again.
	res = b.request(t, http.MethodPost, "/v1/payins/"+renewal.ID+"/retry", `{}`, "Authorization", "")
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	b.payCheckout(t, decode[payin](t, res).Invoice.CheckoutURL)
	require.Equal(t, "active", b.subscriptionStatus(t))
	v, _ = b.validate(t, map[string]any{"key": key})
	require.Equal(t, "VALID", v.Code)

	// Three years of renewals paid from credits, then the cancel keeps a perpetual licence
	// of the builds released before it.
	require.Equal(t, http.StatusCreated, b.request(t, http.MethodPost, "/v1/admin/customers/"+customer.ID.String()+"/credits", `{"amount":1000000}`).status)
	require.Equal(t, http.StatusOK, b.request(t, http.MethodPut, "/v1/admin/customers/"+customer.ID.String()+"/auto-pay", `{"auto_pay":true}`).status)
	got = b.advance(t, `{"by":"3y"}`)
	require.Equal(t, 36, got.RenewalsStarted, "1095 days of 30-day periods, the first due on day 60")
	require.Equal(t, 36, got.RenewalsPaid)
	require.Zero(t, got.SubscriptionsLapsed)
	require.Equal(t, "active", b.subscriptionStatus(t))
	var subscriptionID string
	require.NoError(t, b.db.QueryRow(t.Context(), "SELECT id FROM subscriptions WHERE tenant_id = $1", b.tenant.ID).Scan(&subscriptionID))
	res = b.request(t, http.MethodPost, "/v1/admin/subscriptions/"+subscriptionID+"/cancel", "")
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	later := got.Clock.AddDate(0, 1, 0).Format(time.RFC3339)
	res = b.request(t, http.MethodPost, "/v1/admin/products/"+product.ID.String()+"/releases", fmt.Sprintf(`{"version":"9.0.0","released_at":%q}`, later))
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	v, _ = b.validate(t, map[string]any{"key": key})
	require.Equal(t, "VALID", v.Code)
	v, _ = b.validate(t, map[string]any{"key": key, "version": "9.0.0"})
	require.Equal(t, "BUILD_NOT_COVERED", v.Code)
}

func TestClockAdvanceRefusals(t *testing.T) {
	t.Parallel()

	t.Run("LiveTenant", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireCode(t, b.request(t, http.MethodPost, "/v1/admin/clock/advance", `{"by":"1d"}`), http.StatusConflict, "sandbox_only")
	})

	t.Run("Backwards", func(t *testing.T) {
		t.Parallel()
		b := setupSandbox(t)
		res := b.request(t, http.MethodPost, "/v1/admin/clock/advance", fmt.Sprintf(`{"to":%q}`, sandboxClock.Add(-time.Second).Format(time.RFC3339)))
		p := requireProblem(t, res, http.StatusUnprocessableEntity)
		require.Contains(t, p.Detail, "moves only forward")
	})

	for name, body := range map[string]string{
		"Neither":     `{}`,
		"Both":        fmt.Sprintf(`{"by":"1d","to":%q}`, sandboxClock.Format(time.RFC3339)),
		"BadDuration": `{"by":"1 day"}`,
		"HugeNumber":  `{"by":"99999999999999999999d"}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupSandbox(t)
			requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/clock/advance", body), http.StatusUnprocessableEntity)
		})
	}
}
