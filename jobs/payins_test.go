package jobs

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
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
		var batched []jobargs.PayInRef // as the renewal sweep does: no job of its own
		require.NoError(t, pg.InTx(ctx, tx, func(tx pgx.Tx) error {
			payin, err := core.PayInCreate(ctx, tx, factory.Step(), core.PayInCreateParams{
				TenantID: tenant.ID, CustomerID: customer.ID, Type: sql.PayinTypeLicensePurchase, PriceCurrency: sql.CurrencySAT, PriceValue: 100, PolicyID: &policy.ID,
				Invoices: &batched,
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

// createInvoicesBatch is a batch of PayIns waiting for their invoice — n of one tenant and
// one of another — and the payin.create_invoices worker and the single payin.create_invoice
// worker on the fake BTCPay, in a rolled-back transaction.
type createInvoicesBatch struct {
	tx       pgx.Tx
	payments factory.Payments
	batch    *rivertest.Worker[jobargs.PayInCreateInvoices, pgx.Tx]
	single   *rivertest.Worker[jobargs.PayInCreateInvoice, pgx.Tx]
	payins   []sql.PayIn
}

// setupCreateInvoices makes a createInvoicesBatch of n+1 PayIns.
func setupCreateInvoices(t *testing.T, n int) *createInvoicesBatch {
	t.Helper()
	ctx := context.Background()
	tx := testdb.Tx(t)
	payments := factory.FakeBTCPay(t, "")
	cfg := Config{DB: tx, Clock: clock.NewManual(factory.Now), Log: slog.New(slog.DiscardHandler), Box: factory.Box, Payments: payments.Client}
	b := &createInvoicesBatch{tx: tx, payments: payments,
		batch:  rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &PayInCreateInvoicesWorker{cfg: cfg}),
		single: rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &PayInCreateInvoiceWorker{cfg: cfg}),
	}
	for i := range n + 1 {
		tenant := factory.Tenant(t, tx)
		if i > 0 {
			tenant = sql.Tenant{ID: b.payins[0].TenantID}
		}
		customer := factory.Customer(t, tx, tenant.ID)
		policy := factory.Policy(t, tx, tenant.ID, factory.PolicyPrice(sql.CurrencySAT, 100))
		var batched []jobargs.PayInRef // as the renewal sweep does: no job of its own
		require.NoError(t, pg.InTx(ctx, tx, func(tx pgx.Tx) error {
			payin, err := core.PayInCreate(ctx, tx, factory.Step(), core.PayInCreateParams{
				TenantID: tenant.ID, CustomerID: customer.ID, Type: sql.PayinTypeLicensePurchase, PriceCurrency: sql.CurrencySAT, PriceValue: 100, PolicyID: &policy.ID,
				Invoices: &batched,
			})
			b.payins = append(b.payins, payin)
			return err
		}))
	}
	return b
}

// args are the batch's job args.
func (b *createInvoicesBatch) args() jobargs.PayInCreateInvoices {
	var args jobargs.PayInCreateInvoices
	for _, p := range b.payins {
		args.PayIns = append(args.PayIns, jobargs.PayInRef{TenantID: p.TenantID, PayInID: p.ID})
	}
	return args
}

// state is PayIn i's state now, and its recorded invoice's provider id ("" without one).
func (b *createInvoicesBatch) state(t *testing.T, i int) (sql.PayInState, string) {
	t.Helper()
	ctx := context.Background()
	p, err := sql.New().PayInGet(ctx, b.tx, sql.PayInGetParams{TenantID: b.payins[i].TenantID, ID: b.payins[i].ID})
	require.NoError(t, err)
	invoice, err := sql.New().PayInInvoiceGet(ctx, b.tx, sql.PayInInvoiceGetParams{TenantID: p.TenantID, PayInID: p.ID})
	if err != nil {
		require.ErrorIs(t, err, core.ErrNotFound)
	}
	return p.State, invoice.ProviderInvoiceID
}

// handedOver returns the payin.create_invoice jobs the batch enqueued, by PayIn.
func (b *createInvoicesBatch) handedOver(t *testing.T) map[uuid.UUID]*rivertype.JobRow {
	t.Helper()
	rows, err := b.tx.Query(context.Background(), "SELECT id FROM river_job WHERE kind = 'payin.create_invoice' ORDER BY id")
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	jobs := map[uuid.UUID]*rivertype.JobRow{}
	for _, id := range ids {
		job, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
		require.NoError(t, err)
		row, err := job.JobGetTx(context.Background(), b.tx, id)
		require.NoError(t, err)
		var args jobargs.PayInCreateInvoice
		require.NoError(t, json.Unmarshal(row.EncodedArgs, &args))
		require.True(t, args.Retry, "the PayIn's own job looks for an invoice the batch created first")
		jobs[args.PayInID] = row
	}
	return jobs
}

// TestPayInCreateInvoicesWorker invoices a batch of PayIns across tenants in one job: each
// once, with one provider call, in one transaction; a PayIn it cannot invoice or record is
// handed over to its own payin.create_invoice job without holding back the others, and a
// retry after a crash between the provider's answer and the record reuses the invoices it
// created.
func TestPayInCreateInvoicesWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("InvoicesTheBatch", func(t *testing.T) {
		t.Parallel()
		b := setupCreateInvoices(t, 3)
		res, err := b.batch.Work(ctx, t, b.tx, b.args(), nil)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		for i := range b.payins {
			state, invoice := b.state(t, i)
			require.Equal(t, sql.PayinStatePENDING, state)
			require.NotEmpty(t, invoice)
		}
		require.Len(t, b.payments.Fake.Invoices(), 4)
		require.Equal(t, 4, b.payments.Fake.Requests(), "one provider call per PayIn")
		require.Empty(t, b.handedOver(t))

		res, err = b.batch.Work(ctx, t, b.tx, b.args(), nil)
		require.NoError(t, err, "a duplicated batch finds its PayIns invoiced")
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.Len(t, b.payments.Fake.Invoices(), 4)
	})

	t.Run("ProviderFailureHandsOneOver", func(t *testing.T) {
		t.Parallel()
		b := setupCreateInvoices(t, 3)
		b.payments.Fake.FailNext(1)
		res, err := b.batch.Work(ctx, t, b.tx, b.args(), nil)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State, "the others are not held back")
		jobs := b.handedOver(t)
		require.Len(t, jobs, 1)
		for i, p := range b.payins {
			state, _ := b.state(t, i)
			if jobs[p.ID] != nil {
				require.Equal(t, sql.PayinStatePENDINGINVOICECREATION, state)
				continue
			}
			require.Equal(t, sql.PayinStatePENDING, state)
		}
		for id, job := range jobs {
			res, err := b.single.WorkJob(ctx, t, b.tx, job)
			require.NoError(t, err)
			require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
			_, err = sql.New().PayInInvoiceGet(ctx, b.tx, sql.PayInInvoiceGetParams{TenantID: b.payins[0].TenantID, PayInID: id})
			require.NoError(t, err, "its own job invoices it")
		}
		require.Len(t, b.payments.Fake.Invoices(), 4)
	})

	t.Run("RecordRefusedHandsAllOver", func(t *testing.T) {
		t.Parallel()
		b := setupCreateInvoices(t, 2)
		bad := b.payins[1] // an invoice row already there: recording its invoice violates the primary key
		_, err := b.tx.Exec(ctx, `INSERT INTO payin_invoices (tenant_id, payin_id, provider, provider_invoice_id, checkout_url, amount_sats, created_at)
			VALUES ($1, $2, 'btcpay', 'stray', 'https://example.invalid', 100, $3)`, bad.TenantID, bad.ID, factory.Now)
		require.NoError(t, err)
		res, err := b.batch.Work(ctx, t, b.tx, b.args(), nil)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		created := b.payments.Fake.Invoices()
		require.Len(t, created, 3, "every PayIn invoiced at the provider, none recorded")
		jobs := b.handedOver(t)
		require.Len(t, jobs, 3, "each PayIn handed over to its own job")
		for i, p := range b.payins {
			state, _ := b.state(t, i)
			require.Equal(t, sql.PayinStatePENDINGINVOICECREATION, state)
			res, err := b.single.WorkJob(ctx, t, b.tx, jobs[p.ID])
			if p.ID == bad.ID {
				require.Error(t, err, "the refused PayIn retries on its own")
				continue
			}
			require.NoError(t, err)
			require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
			state, invoice := b.state(t, i)
			require.Equal(t, sql.PayinStatePENDING, state)
			require.Contains(t, []string{created[0].ID, created[1].ID, created[2].ID}, invoice, "the invoice the batch created, found")
		}
		require.Len(t, b.payments.Fake.Invoices(), 3, "no second invoice for any PayIn")
	})

	t.Run("RetryAfterACrashReusesInvoices", func(t *testing.T) {
		t.Parallel()
		b := setupCreateInvoices(t, 2)
		// The first attempt reached the provider for PayIn 0, then its process died.
		orphan, err := b.payments.Client.CreateInvoice(ctx, payment.InvoiceRequest{OrderID: b.payins[0].ID.String(), AmountSats: 100})
		require.NoError(t, err)
		client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
		require.NoError(t, err)
		inserted, err := client.InsertTx(ctx, b.tx, b.args(), nil)
		require.NoError(t, err)
		rescued := *inserted.Job
		rescued.Attempt = 1 // rescued: the next run is attempt 2

		res, err := b.batch.WorkJob(ctx, t, b.tx, &rescued)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		state, invoice := b.state(t, 0)
		require.Equal(t, sql.PayinStatePENDING, state)
		require.Equal(t, orphan.ID, invoice, "the earlier attempt's invoice is recorded")
		require.Len(t, b.payments.Fake.Invoices(), 3, "no second invoice")
	})

	t.Run("FailedPayInIsHandedOver", func(t *testing.T) {
		t.Parallel()
		b := setupCreateInvoices(t, 1)
		cancelled := b.payins[1]
		require.NoError(t, pg.InTx(ctx, b.tx, func(tx pgx.Tx) error {
			_, err := core.PayInFail(ctx, tx, factory.Step(), core.PayInFailParams{TenantID: cancelled.TenantID, ID: cancelled.ID, Move: core.PayInMoveCancel})
			return err
		}))
		res, err := b.batch.Work(ctx, t, b.tx, b.args(), nil)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.Len(t, b.payments.Fake.Invoices(), 1, "no invoice for the cancelled PayIn")
		jobs := b.handedOver(t)
		require.Len(t, jobs, 1, "its own job looks for an invoice a lost attempt created, to invalidate it")
		require.NotNil(t, jobs[cancelled.ID])
	})
}

// TestPayInReconcileSweepBatchedInvoices: the reconcile sweep counts a payin.create_invoices
// batch naming a PayIn as the PayIn's live invoice job; once the batch is gone it enqueues the
// PayIn's own job (with Retry: the batch may have reached the provider), and a batch an
// operator cancelled fails its PayIns with SYSTEM_CANCELLED.
func TestPayInReconcileSweepBatchedInvoices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupCreateInvoices(t, 1)
	cfg := Config{DB: b.tx, Clock: clock.NewManual(factory.Now.Add(payInReconcileAfter)), Log: slog.New(slog.DiscardHandler), Box: factory.Box, Payments: b.payments.Client}
	reconcile := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &PayInReconcileSweepWorker{cfg: cfg})
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	require.NoError(t, err)
	inserted, err := client.InsertTx(ctx, b.tx, b.args(), nil)
	require.NoError(t, err)

	_, err = reconcile.Work(ctx, t, b.tx, jobargs.PayInReconcileSweep{}, nil)
	require.NoError(t, err)
	require.Empty(t, b.handedOver(t), "the live batch creates their invoices")

	_, err = b.tx.Exec(ctx, "UPDATE river_job SET state = 'cancelled', finalized_at = $2 WHERE id = $1", inserted.Job.ID, factory.Now)
	require.NoError(t, err)
	_, err = reconcile.Work(ctx, t, b.tx, jobargs.PayInReconcileSweep{}, nil)
	require.NoError(t, err)
	for i := range b.payins {
		state, _ := b.state(t, i)
		require.Equal(t, sql.PayinStateFAILED, state, "an operator cancelled their invoicing")
	}

	b = setupCreateInvoices(t, 1)
	reconcile = rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &PayInReconcileSweepWorker{cfg: Config{DB: b.tx, Clock: cfg.Clock, Log: cfg.Log, Box: factory.Box, Payments: b.payments.Client}})
	inserted, err = client.InsertTx(ctx, b.tx, b.args(), nil)
	require.NoError(t, err)
	_, err = client.JobDeleteTx(ctx, b.tx, inserted.Job.ID)
	require.NoError(t, err)
	_, err = reconcile.Work(ctx, t, b.tx, jobargs.PayInReconcileSweep{}, nil)
	require.NoError(t, err)
	require.Len(t, b.handedOver(t), 2, "a deleted batch's PayIns get their own jobs, looking for an invoice first")
}
