package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/priority"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/jobs"
	"github.com/tessera/tessera/sql"
)

type payin struct {
	ID            string `json:"id"`
	State         string `json:"state"`
	FailureReason string `json:"failure_reason"`
	CostSats      int64  `json:"cost_sats"`
	Parts         []struct {
		Asset        string `json:"asset"`
		Amount       int64  `json:"amount"`
		BalanceAfter int64  `json:"balance_after"`
	} `json:"parts"`
	Invoice *struct {
		InvoiceID   string `json:"invoice_id"`
		CheckoutURL string `json:"checkout_url"`
		AmountSats  int64  `json:"amount_sats"`
	} `json:"invoice"`
	LicenseKey  string `json:"license_key"`
	GenesisID   string `json:"genesis_id"`
	SuccessorID string `json:"successor_id"`
	RetryCount  int    `json:"retry_count"`
}

// shop is a served bundle with River workers running against the fake BTCPay: the whole
// payment flow on real connections.
type shop struct {
	*bundle
	srv      *httptest.Server
	customer sql.Customer
	policy   sql.Policy
}

func setupShop(t *testing.T, price int64, currency sql.Currency, configure ...func(*api.Config)) *shop {
	t.Helper()
	b, srv := setupServer(t, configure...)
	s := &shop{bundle: b, srv: srv}
	s.customer = factory.Customer(t, b.db, b.tenant.ID, factory.CustomerEmail("buyer@example.com"))
	s.policy = factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug("pro"), factory.PolicyPrice(currency, price),
		factory.PolicyEntitlements("export"))

	workers, err := jobs.Workers(jobs.Config{DB: b.db, Clock: b.clock, Log: slog.New(slog.DiscardHandler), Box: factory.Box, Payments: b.payments.Client, Rates: b.payments.Client})
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(b.db.(*pgxpool.Pool)), &river.Config{
		Logger: slog.New(slog.DiscardHandler), Workers: workers, TestOnly: true,
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
		FetchCooldown: 20 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.StopAndCancel(ctx))
	})
	return s
}

func (s *shop) credit(t *testing.T, asset sql.Asset, amount int64) {
	t.Helper()
	_, err := sql.New().BalanceCredit(context.Background(), s.db, sql.BalanceCreditParams{
		TenantID: s.tenant.ID, CustomerID: s.customer.ID, Asset: asset, Amount: amount, Now: factory.Now,
	})
	require.NoError(t, err)
}

func (s *shop) balance(t *testing.T, asset sql.Asset) int64 {
	t.Helper()
	var amount int64
	require.NoError(t, s.db.QueryRow(context.Background(),
		"SELECT coalesce((SELECT amount FROM balances WHERE tenant_id = $1 AND customer_id = $2 AND asset = $3), 0)",
		s.tenant.ID, s.customer.ID, asset).Scan(&amount))
	return amount
}

// purchase buys the shop's policy, with the admin key when assets are named.
func (s *shop) purchase(t *testing.T, assets string) payin {
	t.Helper()
	body := fmt.Sprintf(`{"tenant":%q,"policy":"pro","customer_email":"buyer@example.com","assets":[%s]}`, s.tenant.Slug, assets)
	res := s.send(t, s.srv, http.MethodPost, "/v1/purchase", body)
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	return decode[payin](t, res)
}

// await polls a PayIn until it reaches state.
func (s *shop) await(t *testing.T, id, state string) payin {
	t.Helper()
	var p payin
	require.Eventually(t, func() bool {
		p = decode[payin](t, s.send(t, s.srv, http.MethodGet, "/v1/payins/"+id, "", "Authorization", ""))
		return p.State == state
	}, 20*time.Second, 20*time.Millisecond, "payin %s never became %s", id, state)
	return p
}

// webhook posts the fake BTCPay's signed webhook about an invoice to Tessera.
func (s *shop) webhook(t *testing.T, invoiceID, eventType string) response {
	t.Helper()
	body, header, err := s.payments.Fake.SignedWebhook(invoiceID, eventType)
	require.NoError(t, err)
	return s.send(t, s.srv, http.MethodPost, "/v1/providers/btcpay/webhook", string(body),
		"Authorization", "", "BTCPay-Sig", header.Get("BTCPay-Sig"))
}

// awaitInvoice waits until the fake BTCPay's invoice has status.
func (s *shop) awaitInvoice(t *testing.T, id, status string) {
	t.Helper()
	require.Eventually(t, func() bool {
		inv, err := s.payments.Fake.Invoice(id)
		require.NoError(t, err)
		return inv.Status == status
	}, 20*time.Second, 20*time.Millisecond, "invoice %s never became %s", id, status)
}

// awaitSettles waits until no payin.settle job of the invoice is left to run.
func (s *shop) awaitSettles(t *testing.T, invoiceID string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, s.db.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind IN ('payin.settle', 'payin.invalidate_invoice')
			AND state NOT IN ('completed', 'cancelled', 'discarded') AND (kind <> 'payin.settle' OR args->>'invoice_id' = $1)`, invoiceID).Scan(&n))
		return n == 0
	}, 20*time.Second, 20*time.Millisecond)
}

// settleJobs counts the payin.settle jobs of the invoice, in any state.
func (s *shop) settleJobs(t *testing.T, invoiceID string) int {
	t.Helper()
	var n int
	require.NoError(t, s.db.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE kind = 'payin.settle' AND args->>'invoice_id' = $1", invoiceID).Scan(&n))
	return n
}

// awaitLateCredit waits for the one late_payment_credit payout of a PayIn and checks it
// was emitted and audited.
func (s *shop) awaitLateCredit(t *testing.T, payinID string, sats int64) {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, s.db.QueryRow(ctx, "SELECT count(*) FROM payouts WHERE tenant_id = $1 AND payin_id = $2 AND type = 'late_payment_credit'",
			s.tenant.ID, payinID).Scan(&n))
		return n > 0
	}, 20*time.Second, 20*time.Millisecond, "payin %s got no late payment credit", payinID)
	var credits []int64
	rows, err := s.db.Query(ctx, "SELECT amount FROM payouts WHERE tenant_id = $1 AND payin_id = $2 AND type = 'late_payment_credit'", s.tenant.ID, payinID)
	require.NoError(t, err)
	for rows.Next() {
		var amount int64
		require.NoError(t, rows.Scan(&amount))
		credits = append(credits, amount)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []int64{sats}, credits, "credited once")
	var events, audits int
	require.NoError(t, s.db.QueryRow(ctx, "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'payin.late_payment_credited' AND data->>'payin_id' = $2",
		s.tenant.ID, payinID).Scan(&events))
	require.NoError(t, s.db.QueryRow(ctx, "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'payin.late_payment_credit' AND subject_id = $2",
		s.tenant.ID, payinID).Scan(&audits))
	require.Equal(t, 1, events)
	require.Equal(t, 1, audits)
}

func (s *shop) requireInvariants(t *testing.T) {
	t.Helper()
	violations, err := sql.New().PayInInvariantViolations(context.Background(), s.db, s.tenant.ID)
	require.NoError(t, err)
	require.Empty(t, violations)
}

func TestPurchaseMixedPayment(t *testing.T) {
	t.Parallel()
	s := setupShop(t, 100, sql.CurrencySAT)
	s.credit(t, sql.AssetCredits, 20)
	s.credit(t, sql.AssetRewardSats, 20)

	// Cost 100: 20 credits + 20 reward sats + a 60-sat invoice.
	p := s.purchase(t, `"credits","reward_sats"`)
	require.Equal(t, "PENDING_INVOICE_CREATION", p.State)
	require.Equal(t, int64(100), p.CostSats)
	require.Len(t, p.Parts, 2)

	p = s.await(t, p.ID, "PENDING")
	require.Equal(t, int64(60), p.Invoice.AmountSats)
	require.NotEmpty(t, p.Invoice.CheckoutURL)
	require.Empty(t, p.LicenseKey)

	require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, 60))
	res := s.webhook(t, p.Invoice.InvoiceID, "InvoiceSettled")
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	p = s.await(t, p.ID, "PAID")
	require.NotEmpty(t, p.LicenseKey)

	v, _ := s.validate(t, map[string]any{"key": p.LicenseKey, "entitlement": "export"})
	require.Equal(t, "VALID", v.Code, "the licence bought validates")
	require.Equal(t, int64(0), s.balance(t, sql.AssetCredits))
	require.Equal(t, int64(0), s.balance(t, sql.AssetRewardSats))
	s.requireInvariants(t)
}

// TestPayInOutcomeMetrics checks that the API counts the PayIn outcomes of its writes once
// they commit: a purchase paid at once from credits, a buyer's cancel; a cancel refused (409,
// rolled back) counts nothing.
func TestPayInOutcomeMetrics(t *testing.T) {
	t.Parallel()
	s := setupShop(t, 100, sql.CurrencySAT)
	s.credit(t, sql.AssetCredits, 100)
	require.Equal(t, "PAID", s.purchase(t, `"credits"`).State)
	p := s.await(t, s.purchase(t, "").ID, "PENDING")
	require.Equal(t, http.StatusOK, s.send(t, s.srv, http.MethodPost, "/v1/payins/"+p.ID+"/cancel", "", "Authorization", "").status)
	requireProblem(t, s.send(t, s.srv, http.MethodPost, "/v1/payins/"+p.ID+"/cancel", "", "Authorization", ""), http.StatusConflict)

	res := s.send(t, s.srv, http.MethodGet, "/metrics", "")
	require.Equal(t, http.StatusOK, res.status)
	for _, want := range []string{
		`tessera_payins_total{outcome="paid",reason="",type="license_purchase"} 1`,
		`tessera_payins_total{outcome="failed",reason="USER_CANCELLED",type="license_purchase"} 1`,
	} {
		require.Contains(t, string(res.body), want)
	}
}

func TestPurchaseOutcomes(t *testing.T) {
	t.Parallel()

	t.Run("Overpayment", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		p := s.await(t, s.purchase(t, "").ID, "PENDING")
		require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, 115))
		s.webhook(t, p.Invoice.InvoiceID, "InvoiceSettled")
		s.await(t, p.ID, "PAID")
		require.Equal(t, int64(15), s.balance(t, sql.AssetCredits), "the surplus is paid back as credits")
		s.requireInvariants(t)
	})

	t.Run("Underpayment", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		s.credit(t, sql.AssetCredits, 30)
		p := s.await(t, s.purchase(t, `"credits"`).ID, "PENDING")
		require.Equal(t, int64(70), p.Invoice.AmountSats)
		require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, 50))
		s.webhook(t, p.Invoice.InvoiceID, "InvoiceSettled")
		p = s.await(t, p.ID, "FAILED")
		require.Equal(t, "AMOUNT_MISMATCH", p.FailureReason)
		require.Empty(t, p.LicenseKey)
		require.Equal(t, int64(30+50), s.balance(t, sql.AssetCredits), "the custodial part refunded, the sats received credited")
		var typ string
		require.NoError(t, s.db.QueryRow(context.Background(), "SELECT type FROM payouts WHERE tenant_id = $1 AND payin_id = $2", s.tenant.ID, p.ID).Scan(&typ))
		require.Equal(t, "underpayment_refund", typ, "the credit names what happened")
		s.requireInvariants(t)
	})

	t.Run("Expired", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		s.credit(t, sql.AssetRewardSats, 40)
		p := s.await(t, s.purchase(t, `"reward_sats"`).ID, "PENDING")
		require.NoError(t, s.payments.Fake.Expire(p.Invoice.InvoiceID))
		s.webhook(t, p.Invoice.InvoiceID, "InvoiceExpired")
		p = s.await(t, p.ID, "FAILED")
		require.Equal(t, "INVOICE_EXPIRED", p.FailureReason)
		require.Equal(t, int64(40), s.balance(t, sql.AssetRewardSats))
		s.requireInvariants(t)
	})

	t.Run("WebhookIsReconfirmed", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		p := s.await(t, s.purchase(t, "").ID, "PENDING")
		// BTCPay says settled in a webhook, but the invoice is not paid: nothing happens.
		s.webhook(t, p.Invoice.InvoiceID, "InvoiceSettled")
		require.Never(t, func() bool {
			return decode[payin](t, s.send(t, s.srv, http.MethodGet, "/v1/payins/"+p.ID, "")).State != "PENDING"
		}, 500*time.Millisecond, 50*time.Millisecond)
	})

	t.Run("BuyerCancels", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		s.credit(t, sql.AssetCredits, 10)
		p := s.await(t, s.purchase(t, `"credits"`).ID, "PENDING")
		res := s.send(t, s.srv, http.MethodPost, "/v1/payins/"+p.ID+"/cancel", "", "Authorization", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.Equal(t, "USER_CANCELLED", decode[payin](t, res).FailureReason)
		require.Equal(t, int64(10), s.balance(t, sql.AssetCredits))
		requireCode(t, s.send(t, s.srv, http.MethodPost, "/v1/payins/"+p.ID+"/cancel", "", "Authorization", ""), http.StatusConflict, api.CodePayInState)

		// The cancel invalidates the invoice: its checkout takes no more payments.
		s.awaitInvoice(t, p.Invoice.InvoiceID, "Invalid")
		require.Error(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, 90))

		// A payment that reaches it all the same (a wallet paying the stale address) is
		// credited to the buyer, once, with an event and an audit row.
		require.NoError(t, s.payments.Fake.PayLate(p.Invoice.InvoiceID, 90))
		s.webhook(t, p.Invoice.InvoiceID, "InvoicePaymentSettled")
		s.awaitLateCredit(t, p.ID, 90)
		s.webhook(t, p.Invoice.InvoiceID, "InvoicePaymentSettled")
		s.awaitSettles(t, p.Invoice.InvoiceID)
		require.Equal(t, int64(10+90), s.balance(t, sql.AssetCredits), "refunded, then credited once")
		require.Equal(t, "FAILED", decode[payin](t, s.send(t, s.srv, http.MethodGet, "/v1/payins/"+p.ID, "")).State)
		s.requireInvariants(t)
	})

	t.Run("PaidBeforeTheInvalidation", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		p := s.await(t, s.purchase(t, "").ID, "PENDING")
		// The buyer pays and cancels at once: the payment settles at BTCPay before Tessera
		// hears of it, so the invalidation is refused (settled) and the money is credited.
		require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, 100))
		res := s.send(t, s.srv, http.MethodPost, "/v1/payins/"+p.ID+"/cancel", "", "Authorization", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		s.awaitLateCredit(t, p.ID, 100)
		inv, err := s.payments.Fake.Invoice(p.Invoice.InvoiceID)
		require.NoError(t, err)
		require.Equal(t, "Settled", inv.Status)
		require.Equal(t, int64(100), s.balance(t, sql.AssetCredits))
		s.requireInvariants(t)
	})

	t.Run("LatePaymentOnAnExpiredInvoice", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		p := s.await(t, s.purchase(t, "").ID, "PENDING")
		require.NoError(t, s.payments.Fake.Expire(p.Invoice.InvoiceID))
		s.webhook(t, p.Invoice.InvoiceID, "InvoiceExpired")
		p = s.await(t, p.ID, "FAILED")
		require.Equal(t, "INVOICE_EXPIRED", p.FailureReason)
		s.awaitInvoice(t, p.Invoice.InvoiceID, "Invalid")
		// Seen but unconfirmed (a double spend could still undo it): nothing yet.
		require.NoError(t, s.payments.Fake.PayLateUnconfirmed(p.Invoice.InvoiceID, 100))
		s.webhook(t, p.Invoice.InvoiceID, "InvoicePaymentSettled")
		s.awaitSettles(t, p.Invoice.InvoiceID)
		require.Equal(t, int64(0), s.balance(t, sql.AssetCredits))
		// Confirmed: credited.
		require.NoError(t, s.payments.Fake.ConfirmPayments(p.Invoice.InvoiceID))
		s.webhook(t, p.Invoice.InvoiceID, "InvoicePaymentSettled")
		s.awaitLateCredit(t, p.ID, 100)
		require.Equal(t, int64(100), s.balance(t, sql.AssetCredits))
		s.requireInvariants(t)
	})

	t.Run("CancelRacesPayment", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		const n = 4
		payins := make([]payin, n)
		for i := range payins {
			s.credit(t, sql.AssetCredits, 30)
			payins[i] = s.await(t, s.purchase(t, `"credits"`).ID, "PENDING")
			require.NoError(t, s.payments.Fake.Settle(payins[i].Invoice.InvoiceID, 70))
		}
		// Each buyer pays and cancels at once: the cancel races the webhook's settle (even
		// PayIns) or follows it (odd ones), on their own connections.
		var wg sync.WaitGroup
		for i, p := range payins {
			body, header, err := s.payments.Fake.SignedWebhook(p.Invoice.InvoiceID, "InvoiceSettled")
			require.NoError(t, err)
			webhooked := make(chan struct{})
			wg.Go(func() {
				defer close(webhooked)
				s.send(t, s.srv, http.MethodPost, "/v1/providers/btcpay/webhook", string(body), "Authorization", "", "BTCPay-Sig", header.Get("BTCPay-Sig"))
			})
			wg.Go(func() {
				if i%2 == 1 {
					<-webhooked
				}
				s.send(t, s.srv, http.MethodPost, "/v1/payins/"+p.ID+"/cancel", "", "Authorization", "")
			})
		}
		wg.Wait()
		want := int64(0)
		for _, p := range payins {
			s.awaitSettles(t, p.Invoice.InvoiceID)
			final := decode[payin](t, s.send(t, s.srv, http.MethodGet, "/v1/payins/"+p.ID, ""))
			switch final.State {
			case "PAID": // the payment won: the licence, nothing back
				require.NotEmpty(t, final.LicenseKey)
			case "FAILED": // the cancel won: the custodial part back, the payment credited once
				s.awaitLateCredit(t, p.ID, 70)
				want += 30 + 70
			default:
				require.Failf(t, "unexpected state", "%s", final.State)
			}
		}
		require.Equal(t, want, s.balance(t, sql.AssetCredits), "no sat lost or paid twice")
		s.requireInvariants(t)
	})

	t.Run("FiatPrice", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 2500, sql.CurrencyUSD)
		p := s.purchase(t, "")
		require.Equal(t, int64(50_000), p.CostSats, "$25 at $50,000/BTC")
		var rate int64
		require.NoError(t, s.db.QueryRow(context.Background(), "SELECT rate_minor_per_btc FROM payins WHERE id = $1", p.ID).Scan(&rate))
		require.Equal(t, int64(5_000_000), rate)
	})
}

func TestPurchaseRefused(t *testing.T) {
	t.Parallel()
	// setupShop returns a bundle whose tenant sells "pro" and knows buyer@example.com, and
	// the key of another tenant.
	setupShop := func(t *testing.T) (b *bundle, otherKey string) {
		t.Helper()
		b = setup(t)
		factory.Customer(t, b.db, b.tenant.ID, factory.CustomerEmail("buyer@example.com"))
		factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug("pro"), factory.PolicyPrice(sql.CurrencySAT, 100))
		_, otherKey = factory.APIKey(t, b.db, factory.Tenant(t, b.db).ID)
		return b, otherKey
	}

	for _, tc := range []struct {
		name, body, auth string
		status           int
		code             api.ProblemCode
	}{
		{"AssetsWithoutKey", `{"tenant":%q,"policy":"pro","customer_email":"buyer@example.com","assets":["credits"]}`, "", http.StatusForbidden, api.CodeCustodialNeedsAdminKey},
		{"OtherTenantsKey", `{"tenant":%q,"policy":"pro","customer_email":"buyer@example.com"}`, "{other}", http.StatusForbidden, api.CodeOtherTenantKey},
		{"UnknownPolicy", `{"tenant":%q,"policy":"gold","customer_email":"buyer@example.com"}`, "", http.StatusNotFound, api.CodeNotFound},
		{"UnknownCustomer", `{"tenant":%q,"policy":"pro","customer_email":"nobody@example.com"}`, "", http.StatusUnprocessableEntity, api.CodeUnknownCustomer},
		{"BothCustomerFields", `{"tenant":%q,"policy":"pro","customer_email":"buyer@example.com","customer_id":"01900000-0000-7000-8000-000000000000"}`, "", http.StatusUnprocessableEntity, api.CodeInvalid},
		{"UnknownAsset", `{"tenant":%q,"policy":"pro","customer_email":"buyer@example.com","assets":["gold"]}`, "{own}", http.StatusUnprocessableEntity, api.CodeInvalid},
		{"BadKey", `{"tenant":%q,"policy":"pro","customer_email":"buyer@example.com"}`, "Bearer nope", http.StatusUnauthorized, api.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, otherKey := setupShop(t)
			auth := strings.NewReplacer("{other}", "Bearer "+otherKey, "{own}", "Bearer "+b.key).Replace(tc.auth)
			requireCode(t, b.request(t, http.MethodPost, "/v1/purchase", fmt.Sprintf(tc.body, b.tenant.Slug), "Authorization", auth), tc.status, tc.code)
			var payins int
			require.NoError(t, b.db.QueryRow(context.Background(), "SELECT count(*) FROM payins WHERE tenant_id = $1", b.tenant.ID).Scan(&payins))
			require.Equal(t, 0, payins)
		})
	}

	t.Run("UnknownTenant", func(t *testing.T) {
		t.Parallel()
		b, _ := setupShop(t)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/purchase", `{"tenant":"no-such-tenant","policy":"pro","customer_email":"buyer@example.com"}`, "Authorization", ""), http.StatusNotFound)
	})
}

// TestPurchaseReadFailures: when reading the policy or the customer fails for the server's
// reasons (here a lock timeout while another transaction holds the table), a purchase
// answers 500, not the buyer's 404 "sells no policy" or 422 "no such customer" it once
// made of any error.
func TestPurchaseReadFailures(t *testing.T) {
	t.Parallel()
	for _, table := range []string{"policies", "customers"} {
		t.Run(table, func(t *testing.T) {
			t.Parallel()
			pool, _ := testdb.Clone(t)
			b := newBundle(t, pool)
			factory.Policy(t, pool, b.tenant.ID, factory.PolicySlug("pro"), factory.PolicyPrice(sql.CurrencySAT, 100))
			factory.Customer(t, pool, b.tenant.ID, factory.CustomerEmail("buyer@example.com"))
			ctx := context.Background()
			_, err := pool.Exec(ctx, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET lock_timeout = ''200ms''', current_database()); END $$`)
			require.NoError(t, err)
			pool.Reset() // new connections take the setting

			holder, err := pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { require.NoError(t, holder.Rollback(ctx)) }()
			_, err = holder.Exec(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE")
			require.NoError(t, err)

			res := b.request(t, http.MethodPost, "/v1/purchase", fmt.Sprintf(`{"tenant":%q,"policy":"pro","customer_email":"buyer@example.com"}`, b.tenant.Slug), "Authorization", "")
			requireCode(t, res, http.StatusInternalServerError, api.CodeInternal)
		})
	}
}

func TestProviderWebhook(t *testing.T) {
	t.Parallel()

	t.Run("ForgedSignatureRecordsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, sig := range []string{"", "sha256=00", "sha256=" + fmt.Sprintf("%064x", 1), "md5=abc"} {
			res := b.request(t, http.MethodPost, "/v1/providers/btcpay/webhook", `{"deliveryId":"d1","type":"InvoiceSettled","invoiceId":"x"}`,
				"Authorization", "", "BTCPay-Sig", sig)
			requireCode(t, res, http.StatusUnauthorized, api.CodeSignatureInvalid)
		}
		var n int
		require.NoError(t, b.db.QueryRow(context.Background(), "SELECT count(*) FROM provider_webhook_deliveries WHERE delivery_id = 'd1'").Scan(&n))
		require.Equal(t, 0, n)
	})

	t.Run("TwentyConcurrentDuplicates", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		p := s.await(t, s.purchase(t, "").ID, "PENDING")
		require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, 100))
		body, header, err := s.payments.Fake.SignedWebhook(p.Invoice.InvoiceID, "InvoiceSettled")
		require.NoError(t, err)

		statuses := make([]int, 20)
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Go(func() {
				statuses[i] = s.send(t, s.srv, http.MethodPost, "/v1/providers/btcpay/webhook", string(body),
					"Authorization", "", "BTCPay-Sig", header.Get("BTCPay-Sig")).status
			})
		}
		wg.Wait()
		for _, status := range statuses {
			require.Equal(t, http.StatusOK, status)
		}
		s.await(t, p.ID, "PAID")
		var licences, payouts int
		require.NoError(t, s.db.QueryRow(context.Background(), "SELECT count(*) FROM licenses WHERE tenant_id = $1", s.tenant.ID).Scan(&licences))
		require.NoError(t, s.db.QueryRow(context.Background(), "SELECT count(*) FROM payouts WHERE tenant_id = $1", s.tenant.ID).Scan(&payouts))
		require.Equal(t, 1, licences)
		require.Equal(t, 1, payouts)
		s.requireInvariants(t)
	})

	t.Run("EveryDeliveryIsProcessed", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		p := s.await(t, s.purchase(t, "").ID, "PENDING")
		// A payment seen but not settled yet: its settle finds the invoice open.
		require.Equal(t, http.StatusOK, s.webhook(t, p.Invoice.InvoiceID, "InvoicePaymentSettled").status)
		s.awaitSettles(t, p.Invoice.InvoiceID)
		// Seconds later the invoice settles: this delivery gets its own settle.
		require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, 100))
		require.Equal(t, http.StatusOK, s.webhook(t, p.Invoice.InvoiceID, "InvoiceSettled").status)
		s.await(t, p.ID, "PAID")
		s.requireInvariants(t)
	})

	t.Run("SettledInline", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		p := s.await(t, s.purchase(t, "").ID, "PENDING")
		require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, 100))
		res := s.webhook(t, p.Invoice.InvoiceID, "InvoiceSettled")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.JSONEq(t, `{"received":true,"duplicate":false}`, string(res.body))
		// Paid when the webhook is answered, by the webhook's own transaction: no job.
		p = decode[payin](t, s.send(t, s.srv, http.MethodGet, "/v1/payins/"+p.ID, "", "Authorization", ""))
		require.Equal(t, "PAID", p.State)
		require.NotEmpty(t, p.LicenseKey)
		require.Zero(t, s.settleJobs(t, p.Invoice.InvoiceID))
		var actor string
		require.NoError(t, s.db.QueryRow(context.Background(), "SELECT actor_type || '/' || actor_id FROM audit_log WHERE tenant_id = $1 AND action = 'payin.paid' AND subject_id = $2",
			s.tenant.ID, p.ID).Scan(&actor))
		require.Equal(t, "provider/btcpay", actor)
		s.requireInvariants(t)
	})

	// The webhook leaves the settle to its payin.settle job when BTCPay cannot re-confirm the
	// invoice, and while serve is answering licence validations, which go first.
	gate := priority.New(2, time.Second)
	gate.Begin() // a validation being answered, for as long as the test runs
	t.Cleanup(gate.End)
	for name, tc := range map[string]struct {
		configure []func(*api.Config)
		before    func(s *shop)
	}{
		"ProviderDownLeavesItToTheJob":       {before: func(s *shop) { s.payments.Fake.FailNext(1) }}, // the re-confirmation gets a 503
		"ValidationsInFlightLeaveItToTheJob": {configure: []func(*api.Config){func(cfg *api.Config) { cfg.Priority = gate }}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := setupShop(t, 100, sql.CurrencySAT, tc.configure...)
			p := s.await(t, s.purchase(t, "").ID, "PENDING")
			require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, 100))
			if tc.before != nil {
				tc.before(s)
			}
			require.Equal(t, http.StatusOK, s.webhook(t, p.Invoice.InvoiceID, "InvoiceSettled").status)
			require.Equal(t, 1, s.settleJobs(t, p.Invoice.InvoiceID), "the delivery was recorded with its job")
			p = s.await(t, p.ID, "PAID") // the job asks BTCPay again
			require.NotEmpty(t, p.LicenseKey)
			s.requireInvariants(t)
		})
	}

	t.Run("DatabaseConflictLeavesItToTheJob", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		p := s.await(t, s.purchase(t, "").ID, "PENDING")
		require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, 100))
		ctx := context.Background()
		pool := s.db.(*pgxpool.Pool)
		_, err := pool.Exec(ctx, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET lock_timeout = ''200ms''', current_database()); END $$`)
		require.NoError(t, err)
		pool.Reset() // new connections take the setting

		// The PayIn is locked by a long transaction: the webhook's settle gives up waiting for
		// the lock, and the delivery is recorded with its job in a second transaction.
		holder, err := pool.Begin(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = holder.Rollback(context.Background()) }) // on failure too; a second rollback is a no-op
		_, err = holder.Exec(ctx, "SELECT 1 FROM payins WHERE tenant_id = $1 AND id = $2 FOR UPDATE", s.tenant.ID, p.ID)
		require.NoError(t, err)
		res := s.webhook(t, p.Invoice.InvoiceID, "InvoiceSettled")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.JSONEq(t, `{"received":true,"duplicate":false}`, string(res.body))
		require.Equal(t, 1, s.settleJobs(t, p.Invoice.InvoiceID))
		require.NoError(t, holder.Rollback(ctx))
		s.await(t, p.ID, "PAID")
		s.requireInvariants(t)
	})

	t.Run("ConcurrentDeliveriesAndSettles", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		p := s.await(t, s.purchase(t, "").ID, "PENDING")
		require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, 100))
		// Distinct deliveries about one invoice, each recorded and settled on its own
		// connection, while a payin.settle job (as the reconcile sweep enqueues) settles it too.
		var bodies [][]byte
		var sigs []string
		for i := range 8 {
			body, header, err := s.payments.Fake.SignedWebhook(p.Invoice.InvoiceID, []string{"InvoiceSettled", "InvoicePaymentSettled"}[i%2])
			require.NoError(t, err)
			bodies, sigs = append(bodies, body), append(sigs, header.Get("BTCPay-Sig"))
		}
		inserter, err := river.NewClient(riverpgxv5.New(s.db.(*pgxpool.Pool)), &river.Config{})
		require.NoError(t, err)
		responses := make([]response, len(bodies))
		var wg sync.WaitGroup
		for i := range bodies {
			wg.Go(func() {
				responses[i] = s.send(t, s.srv, http.MethodPost, "/v1/providers/btcpay/webhook", string(bodies[i]), "Authorization", "", "BTCPay-Sig", sigs[i])
			})
		}
		wg.Go(func() {
			_, err := inserter.InsertMany(context.Background(), []river.InsertManyParams{{Args: jobargs.PayInSettle{Provider: "btcpay", InvoiceID: p.Invoice.InvoiceID}}})
			require.NoError(t, err)
		})
		wg.Wait()
		for _, res := range responses {
			require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
			require.JSONEq(t, `{"received":true,"duplicate":false}`, string(res.body))
		}
		s.awaitSettles(t, p.Invoice.InvoiceID)
		require.Equal(t, "PAID", decode[payin](t, s.send(t, s.srv, http.MethodGet, "/v1/payins/"+p.ID, "")).State)
		ctx := context.Background()
		var licences, payouts, paid int
		require.NoError(t, s.db.QueryRow(ctx, "SELECT count(*) FROM licenses WHERE tenant_id = $1", s.tenant.ID).Scan(&licences))
		require.NoError(t, s.db.QueryRow(ctx, "SELECT count(*) FROM payouts WHERE tenant_id = $1", s.tenant.ID).Scan(&payouts))
		require.NoError(t, s.db.QueryRow(ctx, "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'payin.paid'", s.tenant.ID).Scan(&paid))
		require.Equal(t, 1, licences)
		require.Equal(t, 1, payouts, "the revenue, and no late credit")
		require.Equal(t, 1, paid)
		s.requireInvariants(t)
	})

	t.Run("WebhookBeforeTheInvoiceIsCommitted", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		ctx := context.Background()
		blocker, err := s.db.Begin(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = blocker.Rollback(context.Background()) })      // on failure too; a second rollback is a no-op
		_, err = blocker.Exec(ctx, "LOCK TABLE payin_invoices IN SHARE MODE") // holds the invoice row's insert
		require.NoError(t, err)

		p := s.purchase(t, "")
		require.Eventually(t, func() bool { return len(s.payments.Fake.Invoices()) == 1 }, 10*time.Second, 10*time.Millisecond)
		invoice := s.payments.Fake.Invoices()[0]
		require.NoError(t, s.payments.Fake.Settle(invoice.ID, 100))
		require.Equal(t, http.StatusOK, s.webhook(t, invoice.ID, "InvoiceSettled").status)

		require.NoError(t, blocker.Rollback(ctx))
		p = s.await(t, p.ID, "PAID")
		require.NotEmpty(t, p.LicenseKey)
		s.requireInvariants(t)
	})
}

// failed buys the shop's policy and cancels it once invoiced: a FAILED PayIn to retry.
func (s *shop) failed(t *testing.T) payin {
	t.Helper()
	p := s.await(t, s.purchase(t, "").ID, "PENDING")
	res := s.send(t, s.srv, http.MethodPost, "/v1/payins/"+p.ID+"/cancel", "", "Authorization", "")
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	return decode[payin](t, res)
}

func TestPayInRetry(t *testing.T) {
	t.Parallel()

	t.Run("BuyerRetriesAndPays", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		first := s.failed(t)
		res := s.send(t, s.srv, http.MethodPost, "/v1/payins/"+first.ID+"/retry", "", "Authorization", "")
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		second := decode[payin](t, res)
		require.Equal(t, "PENDING_INVOICE_CREATION", second.State)
		require.Equal(t, first.ID, second.GenesisID)
		require.Equal(t, 1, second.RetryCount)
		require.Equal(t, int64(100), second.CostSats)
		require.Equal(t, second.ID, decode[payin](t, s.send(t, s.srv, http.MethodGet, "/v1/payins/"+first.ID, "")).SuccessorID)

		second = s.await(t, second.ID, "PENDING")
		require.Equal(t, int64(100), second.Invoice.AmountSats)
		require.NoError(t, s.payments.Fake.Settle(second.Invoice.InvoiceID, 100))
		s.webhook(t, second.Invoice.InvoiceID, "InvoiceSettled")
		require.NotEmpty(t, s.await(t, second.ID, "PAID").LicenseKey)

		requireCode(t, s.send(t, s.srv, http.MethodPost, "/v1/payins/"+first.ID+"/retry", "", "Authorization", ""), http.StatusConflict, api.CodePayInRetried)
		requireCode(t, s.send(t, s.srv, http.MethodPost, "/v1/payins/"+second.ID+"/retry", "", "Authorization", ""), http.StatusConflict, api.CodePayInState)
		s.requireInvariants(t)
	})

	t.Run("AdminRetriesWithAssets", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		first := s.failed(t)
		s.credit(t, sql.AssetCredits, 100)
		requireCode(t, s.send(t, s.srv, http.MethodPost, "/v1/payins/"+first.ID+"/retry", `{"assets":["credits"]}`, "Authorization", ""), http.StatusForbidden, api.CodeCustodialNeedsAdminKey)
		other := factory.Tenant(t, s.db)
		_, otherKey := factory.APIKey(t, s.db, other.ID)
		requireProblem(t, s.send(t, s.srv, http.MethodPost, "/v1/payins/"+first.ID+"/retry", "", "Authorization", "Bearer "+otherKey), http.StatusNotFound)

		res := s.send(t, s.srv, http.MethodPost, "/v1/payins/"+first.ID+"/retry", `{"assets":["credits"]}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		second := decode[payin](t, res)
		require.Equal(t, "PAID", second.State, "fully covered by credits")
		require.NotEmpty(t, second.LicenseKey)
		require.Equal(t, int64(0), s.balance(t, sql.AssetCredits))
		s.requireInvariants(t)
	})

	t.Run("FiatIsRequoted", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 2500, sql.CurrencyUSD)
		first := s.failed(t)
		_, err := s.db.Exec(context.Background(), "UPDATE payins SET rate_minor_per_btc = 1000000, cost_sats = 250000 WHERE id = $1", first.ID)
		require.NoError(t, err)
		res := s.send(t, s.srv, http.MethodPost, "/v1/payins/"+first.ID+"/retry", "", "Authorization", "")
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		require.Equal(t, int64(50_000), decode[payin](t, res).CostSats, "$25 at the current $50,000/BTC, not the old rate")
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/payins/01900000-0000-7000-8000-000000000000/retry", "", "Authorization", ""), http.StatusNotFound)
	})

	// Concurrent retries of one PayIn on real connections: exactly one succeeds.
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		s := setupShop(t, 100, sql.CurrencySAT)
		first := s.failed(t)
		statuses := make([]int, 8)
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Go(func() {
				statuses[i] = s.send(t, s.srv, http.MethodPost, "/v1/payins/"+first.ID+"/retry", "", "Authorization", "").status
			})
		}
		wg.Wait()
		count := map[int]int{}
		for _, status := range statuses {
			count[status]++
		}
		require.Equal(t, map[int]int{http.StatusCreated: 1, http.StatusConflict: len(statuses) - 1}, count)
		var successors int
		require.NoError(t, s.db.QueryRow(context.Background(), "SELECT count(*) FROM payins WHERE genesis_id = $1 AND id <> $1", first.ID).Scan(&successors))
		require.Equal(t, 1, successors)
		s.requireInvariants(t)
	})
}

type creditGrant struct {
	PayIn        payin `json:"payin"`
	BalanceAfter int64 `json:"balance_after"`
}

func TestCreditGrant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	customer := factory.Customer(t, b.db, b.tenant.ID)
	path := "/v1/admin/customers/" + customer.ID.String() + "/credits"

	res := b.request(t, http.MethodPost, path, `{"amount":250,"reason":"beta tester"}`)
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	g := decode[creditGrant](t, res)
	require.Equal(t, "PAID", g.PayIn.State)
	require.Equal(t, int64(250), g.PayIn.CostSats)
	require.Empty(t, g.PayIn.Parts)
	require.Nil(t, g.PayIn.Invoice)
	require.Equal(t, int64(250), g.BalanceAfter)
	g = decode[creditGrant](t, b.request(t, http.MethodPost, path, `{"amount":50}`))
	require.Equal(t, int64(300), g.BalanceAfter, "balances after are recorded")

	var audited int
	require.NoError(t, b.db.QueryRow(context.Background(),
		"SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'credit.grant' AND subject_id = $2", b.tenant.ID, customer.ID.String()).Scan(&audited))
	require.Equal(t, 2, audited)

	for _, body := range []string{`{"amount":0}`, `{"amount":1000000000001}`, `{}`, `{"amount":5,"reason":"` + strings.Repeat("x", 501) + `"}`} {
		requireProblem(t, b.request(t, http.MethodPost, path, body), http.StatusUnprocessableEntity)
	}
	requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/customers/01900000-0000-7000-8000-000000000000/credits", `{"amount":5}`), http.StatusNotFound)
	other := factory.Customer(t, b.db, factory.Tenant(t, b.db).ID)
	requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/customers/"+other.ID.String()+"/credits", `{"amount":5}`), http.StatusNotFound)
	requireProblem(t, b.request(t, http.MethodPost, path, `{"amount":5}`, "Authorization", ""), http.StatusUnauthorized)
	violations, err := sql.New().PayInInvariantViolations(context.Background(), b.db, b.tenant.ID)
	require.NoError(t, err)
	require.Empty(t, violations)
}

func TestPayInStatistics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	customer := factory.Customer(t, b.db, b.tenant.ID)
	require.Equal(t, http.StatusCreated, b.request(t, http.MethodPost, "/v1/admin/customers/"+customer.ID.String()+"/credits", `{"amount":250}`).status)

	type stats struct {
		Spent []struct {
			Type        string `json:"type"`
			PayIns      int64  `json:"payins"`
			CostSats    int64  `json:"cost_sats"`
			GrantedSats int64  `json:"granted_sats"`
		} `json:"spent"`
		Earned []struct {
			Type   string `json:"type"`
			Asset  string `json:"asset"`
			Amount int64  `json:"amount"`
		} `json:"earned"`
	}
	b.clock.Advance(time.Minute)
	for _, query := range []string{"", "?customer_id=" + customer.ID.String(), "?from=2026-01-15T11:00:00Z&to=2026-01-15T13:00:00Z"} {
		res := b.request(t, http.MethodGet, "/v1/admin/payins/statistics"+query, "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		st := decode[stats](t, res)
		require.Len(t, st.Spent, 1, query)
		require.Equal(t, []any{"credit_grant", int64(1), int64(250), int64(250)},
			[]any{st.Spent[0].Type, st.Spent[0].PayIns, st.Spent[0].CostSats, st.Spent[0].GrantedSats})
		require.Len(t, st.Earned, 1)
		require.Equal(t, []any{"credit_grant", "credits", int64(250)}, []any{st.Earned[0].Type, st.Earned[0].Asset, st.Earned[0].Amount})
	}
	st := decode[stats](t, b.request(t, http.MethodGet, "/v1/admin/payins/statistics?from=2026-01-15T12:30:00Z", ""))
	require.Empty(t, st.Spent, "out of range")
	require.Empty(t, st.Earned)

	requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/payins/statistics?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", ""), http.StatusUnprocessableEntity)
	requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/payins/statistics?customer_id=01900000-0000-7000-8000-000000000000", ""), http.StatusNotFound)
	requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/payins/statistics?from=yesterday", ""), http.StatusUnprocessableEntity)
}
