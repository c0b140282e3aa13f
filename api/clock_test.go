package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
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

// TestClockAdvanceInJob: an advance with more due than a request does answers 202 with its
// Location, having done its request's share; its clock.advance job is enqueued in the same
// transaction, and the advance reads as running until the job ends it.
func TestClockAdvanceInJob(t *testing.T) {
	t.Parallel()
	b := newBundle(t, testdb.Tx(t), func(c *api.Config) { c.ClockAdvanceInline = 2 })
	b.tenant = factory.SandboxTenant(t, b.db, sandboxClock)
	key, secret := factory.APIKey(t, b.db, b.tenant.ID)
	b.key, b.keyID = secret, key.ID
	policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30), factory.PolicyPrice(sql.CurrencySAT, 100))
	for range 5 {
		factory.Subscription(t, b.db, b.tenant.ID, policy.ID, factory.Customer(t, b.db, b.tenant.ID).ID)
	}
	// factory.Subscription starts them at factory.Now, long before the sandbox's clock: all
	// five are due at once.
	res := b.request(t, http.MethodPost, "/v1/admin/clock/advance", `{"by":"1d"}`)
	require.Equal(t, http.StatusAccepted, res.status, "body: %s", res.body)
	got := decode[clockAdvance](t, res)
	require.Equal(t, "running", got.Status)
	require.Equal(t, 2, got.RenewalsStarted)
	require.True(t, sandboxClock.Equal(got.Clock), "the clock stays where the due renewals are")
	require.Equal(t, "/v1/admin/clock/advances/"+got.ID, res.header.Get("Location"))
	var jobs int
	require.NoError(t, b.db.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE kind = 'clock.advance' AND args->>'advance_id' = $1`, got.ID).Scan(&jobs))
	require.Equal(t, 1, jobs)

	polled := decode[clockAdvance](t, b.request(t, http.MethodGet, "/v1/admin/clock/advances/"+got.ID, ""))
	require.Equal(t, got, polled)
	requireCode(t, b.request(t, http.MethodPost, "/v1/admin/clock/advance", `{"by":"1d"}`), http.StatusConflict, "clock_advance_running")
	requireCode(t, b.request(t, http.MethodGet, "/v1/admin/clock/advances/"+uuid.NewString(), ""), http.StatusNotFound, "not_found")
}

// TestClockAdvanceConcurrent: advances of one clock sent at once run one after the other or
// are refused while another runs (clock_advance_running), never interleaved: the clock ends
// 30 days ahead for each advance that ran.
func TestClockAdvanceConcurrent(t *testing.T) {
	t.Parallel()
	b, srv := setupServer(t)
	b.tenant = factory.SandboxTenant(t, b.db, sandboxClock)
	key, secret := factory.APIKey(t, b.db, b.tenant.ID)
	b.key, b.keyID = secret, key.ID
	policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30), factory.PolicyPrice(sql.CurrencySAT, 100))
	for range 20 { // something to do, so that the advances overlap
		factory.Subscription(t, b.db, b.tenant.ID, policy.ID, factory.Customer(t, b.db, b.tenant.ID).ID)
	}
	const n = 4
	statuses := make(chan int, n)
	for range n {
		go func() { statuses <- b.send(t, srv, http.MethodPost, "/v1/admin/clock/advance", `{"by":"30d"}`).status }()
	}
	ran := 0
	for range n {
		switch status := <-statuses; status {
		case http.StatusOK:
			ran++
		default:
			require.Equal(t, http.StatusConflict, status)
		}
	}
	require.Positive(t, ran)
	var clockAt time.Time
	require.NoError(t, b.db.QueryRow(t.Context(), "SELECT clock_at FROM tenants WHERE id = $1", b.tenant.ID).Scan(&clockAt))
	require.True(t, sandboxClock.AddDate(0, 0, 30*ran).Equal(clockAt), "%d advances ran; the clock is at %s", ran, clockAt)
}

// TestClockAdvanceIsolation: an advance moves its own tenant only: another sandbox's due
// subscription and a live tenant's stay as they were.
func TestClockAdvanceIsolation(t *testing.T) {
	t.Parallel()
	b := setupSandbox(t)
	other := factory.SandboxTenant(t, b.db, sandboxClock)
	subs := map[uuid.UUID]sql.Subscription{}
	for _, tenant := range []uuid.UUID{b.tenant.ID, other.ID, factory.Tenant(t, b.db).ID} {
		policy := factory.Policy(t, b.db, tenant, factory.PolicyRecurring(30), factory.PolicyPrice(sql.CurrencySAT, 100))
		subs[tenant], _ = factory.Subscription(t, b.db, tenant, policy.ID, factory.Customer(t, b.db, tenant).ID)
	}
	got := b.advance(t, `{"by":"1y"}`)
	require.Positive(t, got.RenewalsStarted)
	for tenant, sub := range subs {
		now, err := sql.New().SubscriptionGet(t.Context(), b.db, sql.SubscriptionGetParams{TenantID: tenant, ID: sub.ID})
		require.NoError(t, err)
		if tenant == b.tenant.ID {
			require.Equal(t, sql.SubscriptionStatusLapsed, now.Status)
			continue
		}
		require.Equal(t, sub.Status, now.Status)
		require.Equal(t, sub.UpdatedAt, now.UpdatedAt)
	}
}

// TestSandboxInvoice: the sandbox checkout shows an invoice by its tenant's clock, refuses a
// second payment and an unknown id, and settles an underpayment as a provider's settled
// invoice would: AMOUNT_MISMATCH, what was paid credited.
func TestSandboxInvoice(t *testing.T) {
	t.Parallel()
	b := setupSandbox(t)
	factory.Customer(t, b.db, b.tenant.ID, factory.CustomerEmail("buyer@example.com"))
	factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug("pro"), factory.PolicyPrice(sql.CurrencySAT, 1000))
	buy := func() payin {
		res := b.request(t, http.MethodPost, "/v1/purchase", fmt.Sprintf(`{"tenant":%q,"policy":"pro","customer_email":"buyer@example.com","assets":[]}`, b.tenant.Slug), "Authorization", "")
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		return decode[payin](t, res)
	}
	type invoiceView struct {
		Status     string    `json:"status"`
		AmountSats int64     `json:"amount_sats"`
		ExpiresAt  time.Time `json:"expires_at"`
	}

	p := buy()
	view := decode[invoiceView](t, b.request(t, http.MethodGet, p.Invoice.CheckoutURL, "", "Authorization", ""))
	require.Equal(t, invoiceView{Status: "New", AmountSats: 1000, ExpiresAt: sandboxClock.Add(15 * time.Minute)}, view)
	res := b.request(t, http.MethodPost, p.Invoice.CheckoutURL+"/pay", `{"sats":400}`, "Authorization", "")
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	failed := decode[payin](t, b.request(t, http.MethodGet, "/v1/payins/"+p.ID, "", "Authorization", ""))
	require.Equal(t, "FAILED", failed.State)
	require.Equal(t, "AMOUNT_MISMATCH", failed.FailureReason)
	requireCode(t, b.request(t, http.MethodPost, p.Invoice.CheckoutURL+"/pay", "", "Authorization", ""), http.StatusConflict, "sandbox_invoice_closed")

	p = buy()
	b.payCheckout(t, p.Invoice.CheckoutURL)
	requireCode(t, b.request(t, http.MethodPost, p.Invoice.CheckoutURL+"/pay", "", "Authorization", ""), http.StatusConflict, "sandbox_invoice_closed")
	var credits int64
	require.NoError(t, b.db.QueryRow(t.Context(), "SELECT amount FROM balances WHERE tenant_id = $1 AND asset = 'credits'", b.tenant.ID).Scan(&credits))
	require.Equal(t, int64(400), credits, "the underpayment was credited")
	requireCode(t, b.request(t, http.MethodGet, "/v1/sandbox/invoices/sbx_nope", "", "Authorization", ""), http.StatusNotFound, "not_found")
	requireCode(t, b.request(t, http.MethodPost, "/v1/sandbox/invoices/sbx_nope/pay", "", "Authorization", ""), http.StatusNotFound, "not_found")
}

// TestSandboxInvoicePayConcurrent: of payments of one sandbox invoice sent at once, one
// settles the PayIn and the others are refused as closed; the PayIn is paid once.
func TestSandboxInvoicePayConcurrent(t *testing.T) {
	t.Parallel()
	b, srv := setupServer(t)
	b.tenant = factory.SandboxTenant(t, b.db, sandboxClock)
	factory.Customer(t, b.db, b.tenant.ID, factory.CustomerEmail("buyer@example.com"))
	factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug("pro"), factory.PolicyPrice(sql.CurrencySAT, 1000))
	res := b.send(t, srv, http.MethodPost, "/v1/purchase", fmt.Sprintf(`{"tenant":%q,"policy":"pro","customer_email":"buyer@example.com","assets":[]}`, b.tenant.Slug), "Authorization", "")
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	p := decode[payin](t, res)

	const n = 4
	answers := make(chan response, n)
	for range n {
		go func() {
			answers <- b.send(t, srv, http.MethodPost, p.Invoice.CheckoutURL+"/pay", "", "Authorization", "")
		}()
	}
	paid := 0
	for range n {
		res := <-answers
		if res.status == http.StatusOK {
			paid++
			continue
		}
		requireCode(t, res, http.StatusConflict, "sandbox_invoice_closed")
	}
	require.Equal(t, 1, paid)
	var payouts int
	require.NoError(t, b.db.QueryRow(t.Context(), "SELECT count(*) FROM payouts WHERE tenant_id = $1", b.tenant.ID).Scan(&payouts))
	require.Equal(t, 1, payouts, "the tenant's revenue, once")
	violations, err := sql.New().PayInInvariantViolations(t.Context(), b.db, b.tenant.ID)
	require.NoError(t, err)
	require.Empty(t, violations)
}
