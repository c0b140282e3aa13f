package jobs

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// setupCreateInvoice is a SAT PayIn of 100 with 30 paid from credits, waiting for its
// invoice, and the invoice worker on the fake BTCPay, in a rolled-back transaction.
func setupCreateInvoice(t *testing.T) (pgx.Tx, factory.Payments, *rivertest.Worker[jobargs.PayInCreateInvoice, pgx.Tx], sql.PayIn, *PayInCreateInvoiceWorker) {
	t.Helper()
	return setupCreateInvoiceOf(t, func(tx pgx.Tx) sql.Tenant { return factory.Tenant(t, tx) })
}

// setupCreateInvoiceOf is setupCreateInvoice for the tenant newTenant makes.
func setupCreateInvoiceOf(t *testing.T, newTenant func(pgx.Tx) sql.Tenant) (pgx.Tx, factory.Payments, *rivertest.Worker[jobargs.PayInCreateInvoice, pgx.Tx], sql.PayIn, *PayInCreateInvoiceWorker) {
	t.Helper()
	ctx := context.Background()
	tx := testdb.Tx(t)
	payments := factory.FakeBTCPay(t, "")
	worker := &PayInCreateInvoiceWorker{cfg: Config{DB: tx, Clock: clock.NewManual(factory.Now), Log: slog.New(slog.DiscardHandler), Box: factory.Box, Payments: payments.Client}}
	w := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, worker)

	tenant := newTenant(tx)
	customer := factory.Customer(t, tx, tenant.ID)
	policy := factory.Policy(t, tx, tenant.ID, factory.PolicyPrice(sql.CurrencySAT, 100))
	_, err := sql.New().BalanceCredit(ctx, tx, sql.BalanceCreditParams{TenantID: tenant.ID, CustomerID: customer.ID, Asset: sql.AssetCredits, Amount: 30, Now: factory.Now})
	require.NoError(t, err)
	var payin sql.PayIn
	require.NoError(t, pg.InTx(ctx, tx, func(tx pgx.Tx) error {
		payin, err = core.PayInCreate(ctx, tx, factory.Step(), core.PayInCreateParams{
			TenantID: tenant.ID, CustomerID: customer.ID, Type: sql.PayinTypeLicensePurchase, PriceCurrency: sql.CurrencySAT, PriceValue: 100,
			PolicyID: &policy.ID, Assets: []sql.Asset{sql.AssetCredits},
		})
		return err
	}))
	return tx, payments, w, payin, worker
}

// TestPayInCreateInvoiceWorker drives invoice creation against the fake BTCPay: success,
// a provider outage that is retried, and the last attempt failing the PayIn with refunds.
func TestPayInCreateInvoiceWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	state := func(t *testing.T, tx pgx.Tx, p sql.PayIn) sql.PayIn {
		got, err := sql.New().PayInGet(ctx, tx, sql.PayInGetParams{TenantID: p.TenantID, ID: p.ID})
		require.NoError(t, err)
		return got
	}

	t.Run("CreatesTheInvoiceForTheRest", func(t *testing.T) {
		t.Parallel()
		tx, payments, w, payin, _ := setupCreateInvoice(t)
		res, err := w.Work(ctx, t, tx, jobargs.PayInCreateInvoice{TenantID: payin.TenantID, PayInID: payin.ID}, nil)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.Equal(t, sql.PayinStatePENDING, state(t, tx, payin).State)
		invoices := payments.Fake.Invoices()
		require.Len(t, invoices, 1)
		require.Equal(t, int64(70), invoices[0].AmountSats, "the cost less the custodial part")
		require.Equal(t, payin.ID.String(), invoices[0].OrderID)

		res, err = w.Work(ctx, t, tx, jobargs.PayInCreateInvoice{TenantID: payin.TenantID, PayInID: payin.ID}, nil)
		require.NoError(t, err, "a duplicate job finds the PayIn PENDING and does nothing")
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.Len(t, payments.Fake.Invoices(), 1)
	})

	t.Run("ProviderDownIsRetried", func(t *testing.T) {
		t.Parallel()
		tx, payments, w, payin, worker := setupCreateInvoice(t)
		payments.Fake.FailNext(1)
		_, err := w.Work(ctx, t, tx, jobargs.PayInCreateInvoice{TenantID: payin.TenantID, PayInID: payin.ID}, nil)
		require.Error(t, err, "River retries it")
		require.Equal(t, sql.PayinStatePENDINGINVOICECREATION, state(t, tx, payin).State)
		next := worker.NextRetry(&river.Job[jobargs.PayInCreateInvoice]{JobRow: &rivertype.JobRow{Attempt: 1}})
		require.Equal(t, factory.Now.Add(10*time.Second), next, "backs off by the injected clock")
	})

	t.Run("LastAttemptFailsAndRefunds", func(t *testing.T) {
		t.Parallel()
		tx, payments, w, payin, _ := setupCreateInvoice(t)
		payments.Fake.FailNext(1)
		res, err := w.Work(ctx, t, tx, jobargs.PayInCreateInvoice{TenantID: payin.TenantID, PayInID: payin.ID}, &river.InsertOpts{MaxAttempts: 1})
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		failed := state(t, tx, payin)
		require.Equal(t, sql.PayinStateFAILED, failed.State)
		require.Equal(t, sql.PayinFailureReasonINVOICECREATIONFAILED, *failed.FailureReason)
		var credits int64
		require.NoError(t, tx.QueryRow(ctx, "SELECT amount FROM balances WHERE tenant_id = $1 AND customer_id = $2 AND asset = 'credits'",
			payin.TenantID, payin.CustomerID).Scan(&credits))
		require.Equal(t, int64(30), credits, "the custodial part is refunded")
		violations, err := sql.New().PayInInvariantViolations(ctx, tx, payin.TenantID)
		require.NoError(t, err)
		require.Empty(t, violations)
	})
}

// TestPayInCreateInvoiceAtTheTenantsClock: a live tenant's invoice is created, and its PayIn
// moved to PENDING, at the worker's clock; a sandbox tenant's PayIn was invoiced at its own
// checkout when it was created, and the job leaves it alone without asking the provider.
func TestPayInCreateInvoiceAtTheTenantsClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sandboxClock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		newTenant func(*testing.T, pgx.Tx) sql.Tenant
		provider  string
		want      time.Time
	}{
		{"Sandbox", func(t *testing.T, tx pgx.Tx) sql.Tenant { return factory.SandboxTenant(t, tx, sandboxClock) }, core.SandboxProvider, factory.Now},
		{"Live", func(t *testing.T, tx pgx.Tx) sql.Tenant { return factory.Tenant(t, tx) }, "btcpay", factory.Now.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tx, payments, w, payin, worker := setupCreateInvoiceOf(t, func(tx pgx.Tx) sql.Tenant { return tc.newTenant(t, tx) })
			worker.cfg.Clock.(*clock.Manual).Advance(time.Hour)
			requests := payments.Fake.Requests()
			_, err := w.Work(ctx, t, tx, jobargs.PayInCreateInvoice{TenantID: payin.TenantID, PayInID: payin.ID}, nil)
			require.NoError(t, err)
			var provider string
			var invoiceCreated, stateChanged time.Time
			require.NoError(t, tx.QueryRow(ctx, `SELECT i.provider, i.created_at, p.state_changed_at FROM payins p
				JOIN payin_invoices i ON i.tenant_id = p.tenant_id AND i.payin_id = p.id WHERE p.tenant_id = $1 AND p.id = $2`,
				payin.TenantID, payin.ID).Scan(&provider, &invoiceCreated, &stateChanged))
			require.Equal(t, tc.provider, provider)
			require.True(t, tc.want.Equal(invoiceCreated), "invoice created at %s", invoiceCreated)
			require.True(t, tc.want.Equal(stateChanged), "PayIn PENDING at %s", stateChanged)
			if tc.provider == core.SandboxProvider {
				require.Equal(t, requests, payments.Fake.Requests(), "a sandbox never reaches the provider")
			}
		})
	}
}

// TestPayInSettleWorkerLocksByInvoice: a settle finds the PayIn by the invoice the job names
// and locks it in one statement (PayInLockByInvoice): an invoice the database does not know
// is an error for River to retry, changing nothing; a known one paid at BTCPay is PAID at the
// worker's clock, with its licence.
func TestPayInSettleWorkerLocksByInvoice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx, payments, w, payin, worker := setupCreateInvoice(t)
	_, err := w.Work(ctx, t, tx, jobargs.PayInCreateInvoice{TenantID: payin.TenantID, PayInID: payin.ID}, nil)
	require.NoError(t, err)
	invoice, err := sql.New().PayInInvoiceGet(ctx, tx, sql.PayInInvoiceGetParams{TenantID: payin.TenantID, PayInID: payin.ID})
	require.NoError(t, err)
	require.NoError(t, payments.Fake.Settle(invoice.ProviderInvoiceID, invoice.AmountSats))
	worker.cfg.Clock.(*clock.Manual).Advance(time.Hour)
	settle := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &PayInSettleWorker{cfg: worker.cfg})

	_, err = settle.Work(ctx, t, tx, jobargs.PayInSettle{Provider: "btcpay", InvoiceID: "unknown-" + invoice.ProviderInvoiceID}, nil)
	require.ErrorIs(t, err, core.ErrNotFound)

	res, err := settle.Work(ctx, t, tx, jobargs.PayInSettle{Provider: "btcpay", InvoiceID: invoice.ProviderInvoiceID}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
	paid, err := sql.New().PayInGet(ctx, tx, sql.PayInGetParams{TenantID: payin.TenantID, ID: payin.ID})
	require.NoError(t, err)
	require.Equal(t, sql.PayinStatePAID, paid.State)
	require.NotNil(t, paid.LicenseID)
	require.True(t, factory.Now.Add(time.Hour).Equal(paid.StateChangedAt), "PayIn PAID at %s", paid.StateChangedAt)
}

// TestPayInCreateInvoiceRetryReusesInvoice: a retry finds the invoice an earlier attempt
// created at the provider but did not record (it crashed, or its commit failed) and records
// that one instead of invoicing the PayIn twice; an expired one is not reused.
func TestPayInCreateInvoiceRetryReusesInvoice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		expire bool
	}{{"Open", false}, {"Expired", true}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tx, payments, w, payin, _ := setupCreateInvoice(t)
			payments.Fake.FailNext(1)
			res, err := w.Work(ctx, t, tx, jobargs.PayInCreateInvoice{TenantID: payin.TenantID, PayInID: payin.ID}, nil)
			require.Error(t, err, "the first attempt fails")
			orphan, err := payments.Client.CreateInvoice(ctx, payment.InvoiceRequest{OrderID: payin.ID.String(), AmountSats: 70})
			require.NoError(t, err) // as if that attempt had reached BTCPay before failing
			if c.expire {
				require.NoError(t, payments.Fake.Expire(orphan.ID))
			}

			_, err = w.WorkJob(ctx, t, tx, res.Job)
			require.NoError(t, err)
			invoice, err := sql.New().PayInInvoiceGet(ctx, tx, sql.PayInInvoiceGetParams{TenantID: payin.TenantID, PayInID: payin.ID})
			require.NoError(t, err)
			if c.expire {
				require.NotEqual(t, orphan.ID, invoice.ProviderInvoiceID, "an expired invoice is not payable")
				require.Len(t, payments.Fake.Invoices(), 2)
			} else {
				require.Equal(t, orphan.ID, invoice.ProviderInvoiceID, "the earlier invoice is recorded")
				require.Len(t, payments.Fake.Invoices(), 1, "no second invoice")
			}
		})
	}
}

// TestPayInReconcileSweepWorker asks again about PayIns left PENDING too long: it enqueues a
// settle for each, and none for recent ones.
func TestPayInReconcileSweepWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)
	clk := clock.NewManual(factory.Now)
	worker := &PayInReconcileSweepWorker{cfg: Config{DB: tx, Clock: clk, Log: slog.New(slog.DiscardHandler), Box: factory.Box, Payments: factory.FakeBTCPay(t, "").Client}}
	w := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, worker)

	tenant := factory.Tenant(t, tx)
	customer := factory.Customer(t, tx, tenant.ID)
	policy := factory.Policy(t, tx, tenant.ID, factory.PolicyPrice(sql.CurrencySAT, 100))
	pending := func(invoiceID string) {
		require.NoError(t, pg.InTx(ctx, tx, func(tx pgx.Tx) error {
			payin, err := core.PayInCreate(ctx, tx, factory.Step(), core.PayInCreateParams{
				TenantID: tenant.ID, CustomerID: customer.ID, Type: sql.PayinTypeLicensePurchase, PriceCurrency: sql.CurrencySAT, PriceValue: 100, PolicyID: &policy.ID,
			})
			if err != nil {
				return err
			}
			st := factory.Step()
			st.Now = clk.Now()
			_, _, err = core.PayInInvoiceCreated(ctx, tx, st, core.PayInInvoiceParams{PayIn: payin, Provider: "btcpay", Invoice: payment.Invoice{ID: invoiceID, AmountSats: 100, CheckoutURL: "http://pay"}})
			return err
		}))
	}
	pending("stale-" + tenant.ID.String())
	clk.Advance(9 * time.Minute)
	pending("fresh-" + tenant.ID.String())
	clk.Advance(2 * time.Minute)

	res, err := w.Work(ctx, t, tx, jobargs.PayInReconcileSweep{}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
	settles := rivertest.RequireManyInsertedTx[*riverpgxv5.Driver](ctx, t, tx, []rivertest.ExpectedJob{
		{Args: &jobargs.PayInSettle{}, Opts: nil},
	})
	var args jobargs.PayInSettle
	require.NoError(t, json.Unmarshal(settles[0].EncodedArgs, &args))
	require.Equal(t, jobargs.PayInSettle{Provider: "btcpay", InvoiceID: "stale-" + tenant.ID.String()}, args, "only the PayIn pending for over 10 minutes")
}

// TestCompletePlansGeneric: a job completes with the rest of its transaction on generic plans
// (complete), so that River's completion query is not planned anew at every call.
func TestCompletePlansGeneric(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx, _, w, payin, _ := setupCreateInvoice(t)
	planCacheMode := func() string {
		var mode string
		require.NoError(t, tx.QueryRow(ctx, "SELECT current_setting('plan_cache_mode')").Scan(&mode))
		return mode
	}
	require.Equal(t, "auto", planCacheMode())
	res, err := w.Work(ctx, t, tx, jobargs.PayInCreateInvoice{TenantID: payin.TenantID, PayInID: payin.ID}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
	require.Equal(t, "force_generic_plan", planCacheMode(), "the job's transaction, local to it")
}
