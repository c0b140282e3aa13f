package jobs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
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

// operated is a River client working all of Tessera's workers on the test's own database,
// against the fake BTCPay, driven as an operator drives River UI: through River's client API
// (JobCancel, JobDelete, JobRetry) on real jobs. A test sets its jobs up before start, so
// that nothing runs before the operator acts.
type operated struct {
	*renewals
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	policy sql.Policy
}

func setupOperated(t *testing.T) *operated {
	t.Helper()
	pool, _ := testdb.Clone(t)
	b := &operated{renewals: setupRenewals(t, pool), pool: pool}
	b.policy = factory.Policy(t, pool, b.tenant.ID, factory.PolicyPrice(sql.CurrencySAT, 100))
	workers, err := Workers(b.cfg)
	require.NoError(t, err)
	b.client, err = river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger: slog.New(slog.DiscardHandler), Workers: workers, TestOnly: true,
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
		FetchCooldown: 20 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	return b
}

// start starts the client; it is stopped when the test ends.
func (b *operated) start(t *testing.T) {
	t.Helper()
	require.NoError(t, b.client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, b.client.StopAndCancel(ctx))
	})
}

// inTx runs f in a transaction on the pool, its errors translated as in production.
func (b *operated) inTx(t *testing.T, f func(tx pgx.Tx, st core.Step) error) {
	t.Helper()
	require.NoError(t, pg.InTx(context.Background(), core.DB(b.pool), func(tx pgx.Tx) error { return f(tx, step(b.renewals, b.client)) }))
}

// purchase creates a licence purchase of 100 sats, 30 of them from credits: a PayIn waiting
// for its invoice, with its payin.create_invoice job.
func (b *operated) purchase(t *testing.T) sql.PayIn {
	t.Helper()
	_, err := sql.New().BalanceCredit(context.Background(), b.pool, sql.BalanceCreditParams{
		TenantID: b.tenant.ID, CustomerID: b.customer.ID, Asset: sql.AssetCredits, Amount: 30, Now: b.clock.Now(),
	})
	require.NoError(t, err)
	var payin sql.PayIn
	b.inTx(t, func(tx pgx.Tx, st core.Step) error {
		payin, err = core.PayInCreate(context.Background(), tx, st, core.PayInCreateParams{
			TenantID: b.tenant.ID, CustomerID: b.customer.ID, Type: sql.PayinTypeLicensePurchase, PriceCurrency: sql.CurrencySAT, PriceValue: 100,
			PolicyID: &b.policy.ID, Assets: []sql.Asset{sql.AssetCredits},
		})
		return err
	})
	return payin
}

// invoiced gives a purchase its 70-sat invoice at the fake BTCPay, as the invoice job would
// have: a PENDING PayIn.
func (b *operated) invoiced(t *testing.T) (sql.PayIn, payment.Invoice) {
	t.Helper()
	ctx := context.Background()
	payin := b.purchase(t)
	invoice, err := b.payments.Client.CreateInvoice(ctx, payment.InvoiceRequest{OrderID: payin.ID.String(), AmountSats: 70})
	require.NoError(t, err)
	b.inTx(t, func(tx pgx.Tx, st core.Step) error {
		payin, _, err = core.PayInInvoiceCreated(ctx, tx, st, core.PayInInvoiceParams{PayIn: payin, Provider: b.payments.Client.Name(), Invoice: invoice})
		return err
	})
	return payin, invoice
}

// cancelled is an invoiced purchase the buyer cancelled, with its payin.invalidate_invoice job.
func (b *operated) cancelled(t *testing.T) (sql.PayIn, payment.Invoice) {
	t.Helper()
	payin, invoice := b.invoiced(t)
	b.inTx(t, func(tx pgx.Tx, st core.Step) error {
		_, err := core.PayInFail(context.Background(), tx, st, core.PayInFailParams{TenantID: payin.TenantID, ID: payin.ID, Move: core.PayInMoveCancel})
		return err
	})
	return payin, invoice
}

// job returns the id of the newest job of kind whose args contain args.
func (b *operated) job(t *testing.T, kind string, args map[string]any) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(),
		"SELECT id FROM river_job WHERE kind = $1 AND args @> $2 ORDER BY id DESC LIMIT 1", kind, args).Scan(&id))
	return id
}

// discard leaves job discarded, as River leaves a job whose last attempt failed (a timeout,
// a crash) — what River UI's Retry is for.
func (b *operated) discard(t *testing.T, id int64) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(),
		"UPDATE river_job SET state = 'discarded', attempt = max_attempts, finalized_at = now() WHERE id = $1", id)
	require.NoError(t, err)
}

// retryDiscarded makes job id discarded (its last attempt failed), starts the workers and
// retries it through River's client, as River UI's Retry does.
func (b *operated) retryDiscarded(t *testing.T, id int64) {
	t.Helper()
	b.discard(t, id)
	b.start(t)
	_, err := b.client.JobRetry(context.Background(), id)
	require.NoError(t, err)
}

// insert enqueues args through the client and returns the job's id.
func (b *operated) insert(t *testing.T, args river.JobArgs, opts *river.InsertOpts) int64 {
	t.Helper()
	res, err := b.client.Insert(context.Background(), args, opts)
	require.NoError(t, err)
	require.False(t, res.UniqueSkippedAsDuplicate)
	return res.Job.ID
}

// later is insert options that keep a job waiting past the test, for the operator to act on.
func later() *river.InsertOpts {
	return &river.InsertOpts{ScheduledAt: clock.System{}.Now().Add(time.Hour)}
}

// sweep runs one payin.reconcile_sweep after the orphan bound has passed, and waits for it.
func (b *operated) sweep(t *testing.T) {
	t.Helper()
	b.clock.Advance(payInReconcileAfter + time.Minute)
	b.awaitJob(t, b.insert(t, jobargs.PayInReconcileSweep{}, nil), rivertype.JobStateCompleted)
}

// awaitJob waits until job id is in state.
func (b *operated) awaitJob(t *testing.T, id int64, state rivertype.JobState) {
	t.Helper()
	require.Eventually(t, func() bool {
		job, err := b.client.JobGet(context.Background(), id)
		require.NoError(t, err)
		return job.State == state
	}, 20*time.Second, 20*time.Millisecond, "job %d never became %s", id, state)
}

// awaitPayIn waits until the PayIn is in state and returns it.
func (b *operated) awaitPayIn(t *testing.T, p sql.PayIn, state sql.PayInState) sql.PayIn {
	t.Helper()
	var got sql.PayIn
	require.Eventually(t, func() bool {
		var err error
		got, err = sql.New().PayInGet(context.Background(), b.pool, sql.PayInGetParams{TenantID: p.TenantID, ID: p.ID})
		require.NoError(t, err)
		return got.State == state
	}, 20*time.Second, 20*time.Millisecond, "payin %s never became %s", p.ID, state)
	return got
}

// awaitInvalid waits until the fake BTCPay's invoice is Invalid and Tessera recorded it.
func (b *operated) awaitInvalid(t *testing.T, p sql.PayIn, id string) {
	t.Helper()
	require.Eventually(t, func() bool {
		inv, err := b.payments.Fake.Invoice(id)
		require.NoError(t, err)
		row, err := sql.New().PayInInvoiceGet(context.Background(), b.pool, sql.PayInInvoiceGetParams{TenantID: p.TenantID, PayInID: p.ID})
		if errors.Is(err, pgx.ErrNoRows) {
			return false // not recorded yet
		}
		require.NoError(t, err)
		return inv.Status == "Invalid" && row.InvalidatedAt != nil
	}, 20*time.Second, 20*time.Millisecond, "invoice %s never invalidated", id)
}

func (b *operated) credits(t *testing.T) int64 {
	t.Helper()
	return b.balanceOf(t, sql.AssetCredits)
}

func (b *operated) balanceOf(t *testing.T, asset sql.Asset) int64 {
	t.Helper()
	var amount int64
	require.NoError(t, b.pool.QueryRow(context.Background(),
		"SELECT coalesce((SELECT amount FROM balances WHERE tenant_id = $1 AND customer_id = $2 AND asset = $3), 0)",
		b.tenant.ID, b.customer.ID, asset).Scan(&amount))
	return amount
}

func (b *operated) requireInvariants(t *testing.T) {
	t.Helper()
	violations, err := sql.New().PayInInvariantViolations(context.Background(), b.pool, b.tenant.ID)
	require.NoError(t, err)
	require.Empty(t, violations)
}

func payInArgs(p sql.PayIn) map[string]any {
	return map[string]any{"tenant_id": p.TenantID, "payin_id": p.ID}
}

// TestPayInCreateInvoiceOperated: what River UI's Retry, Cancel and Delete do to a
// payin.create_invoice job, and the sweep that heals a PayIn whose job is gone.
func TestPayInCreateInvoiceOperated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const kind = "payin.create_invoice"

	t.Run("CancelFailsThePayInWithARefund", func(t *testing.T) {
		t.Parallel()
		b := setupOperated(t)
		payin := b.purchase(t)
		_, err := b.client.JobCancel(ctx, b.job(t, kind, payInArgs(payin)))
		require.NoError(t, err)
		b.start(t)
		b.sweep(t)
		failed := b.awaitPayIn(t, payin, sql.PayinStateFAILED)
		require.Equal(t, sql.PayinFailureReasonSYSTEMCANCELLED, *failed.FailureReason)
		require.Equal(t, int64(30), b.credits(t), "the custodial part is refunded")
		require.Empty(t, b.payments.Fake.Invoices())
		b.requireInvariants(t)
	})

	t.Run("RetryAfterCancelRedoesIt", func(t *testing.T) {
		t.Parallel()
		b := setupOperated(t)
		payin := b.purchase(t)
		id := b.job(t, kind, payInArgs(payin))
		_, err := b.client.JobCancel(ctx, id)
		require.NoError(t, err)
		b.start(t)
		_, err = b.client.JobRetry(ctx, id)
		require.NoError(t, err)
		b.awaitPayIn(t, payin, sql.PayinStatePENDING)
		require.Len(t, b.payments.Fake.Invoices(), 1)
		b.requireInvariants(t)
	})

	t.Run("RetryAfterDiscardRedoesIt", func(t *testing.T) {
		t.Parallel()
		b := setupOperated(t)
		payin := b.purchase(t)
		id := b.job(t, kind, payInArgs(payin))
		b.retryDiscarded(t, id)
		b.awaitPayIn(t, payin, sql.PayinStatePENDING)
		require.Len(t, b.payments.Fake.Invoices(), 1)
	})

	t.Run("DeleteIsEnqueuedAgain", func(t *testing.T) {
		t.Parallel()
		b := setupOperated(t)
		payin := b.purchase(t)
		_, err := b.client.JobDelete(ctx, b.job(t, kind, payInArgs(payin)))
		require.NoError(t, err)
		b.start(t)
		b.sweep(t)
		b.awaitPayIn(t, payin, sql.PayinStatePENDING)
		require.Len(t, b.payments.Fake.Invoices(), 1)
	})

	t.Run("LostInACrashIsEnqueuedAgain", func(t *testing.T) {
		t.Parallel()
		b := setupOperated(t)
		payin := b.purchase(t)
		// After a Postgres crash with synchronous_commit=off: River has the job completed,
		// but the work it committed is gone.
		_, err := b.pool.Exec(ctx, "UPDATE river_job SET state = 'completed', attempt = 1, finalized_at = now() WHERE id = $1", b.job(t, kind, payInArgs(payin)))
		require.NoError(t, err)
		b.start(t)
		b.sweep(t)
		b.awaitPayIn(t, payin, sql.PayinStatePENDING)
		require.Len(t, b.payments.Fake.Invoices(), 1)
		b.requireInvariants(t)
	})

	t.Run("AbandonedInvoiceIsRecordedAndInvalidated", func(t *testing.T) {
		t.Parallel()
		b := setupOperated(t)
		payin := b.purchase(t)
		// An attempt created the invoice at BTCPay, then the buyer cancelled before it was
		// recorded.
		orphan, err := b.payments.Client.CreateInvoice(ctx, payment.InvoiceRequest{OrderID: payin.ID.String(), AmountSats: 70})
		require.NoError(t, err)
		b.inTx(t, func(tx pgx.Tx, st core.Step) error {
			_, err := core.PayInFail(ctx, tx, st, core.PayInFailParams{TenantID: payin.TenantID, ID: payin.ID, Move: core.PayInMoveCancel})
			return err
		})
		b.start(t)
		b.awaitInvalid(t, payin, orphan.ID)
		// Money paid to it all the same is credited.
		require.NoError(t, b.payments.Fake.PayLate(orphan.ID, 70))
		b.awaitJob(t, b.insert(t, jobargs.PayInSettle{Provider: "btcpay", InvoiceID: orphan.ID, Trigger: "late"}, nil), rivertype.JobStateCompleted)
		require.Equal(t, int64(30+70), b.credits(t))
		b.requireInvariants(t)
	})
}

// TestPayInSettleOperated: what River UI's Retry, Cancel and Delete do to a payin.settle job.
func TestPayInSettleOperated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RetryAfterDiscardRedoesIt", func(t *testing.T) {
		t.Parallel()
		b := setupOperated(t)
		payin, invoice := b.invoiced(t)
		require.NoError(t, b.payments.Fake.Settle(invoice.ID, 70))
		id := b.insert(t, jobargs.PayInSettle{Provider: "btcpay", InvoiceID: invoice.ID, Trigger: "d1"}, later())
		b.retryDiscarded(t, id)
		b.awaitPayIn(t, payin, sql.PayinStatePAID)
		b.requireInvariants(t)
	})

	for _, op := range operatorStops {
		t.Run(op.name+"IsReconciled", func(t *testing.T) {
			t.Parallel()
			b := setupOperated(t)
			payin, invoice := b.invoiced(t)
			require.NoError(t, b.payments.Fake.Settle(invoice.ID, 70))
			require.NoError(t, op.do(ctx, b.client, b.insert(t, jobargs.PayInSettle{Provider: "btcpay", InvoiceID: invoice.ID, Trigger: "d1"}, later())))
			b.start(t)
			b.sweep(t)
			b.awaitPayIn(t, payin, sql.PayinStatePAID)
			b.requireInvariants(t)
		})
	}

	t.Run("InvoiceUnknownToTheProviderFailsThePayIn", func(t *testing.T) {
		t.Parallel()
		b := setupOperated(t)
		payin := b.purchase(t)
		b.inTx(t, func(tx pgx.Tx, st core.Step) error {
			_, _, err := core.PayInInvoiceCreated(ctx, tx, st, core.PayInInvoiceParams{PayIn: payin, Provider: "btcpay", Invoice: payment.Invoice{ID: "deleted-at-btcpay", AmountSats: 70, CheckoutURL: "http://pay"}})
			return err
		})
		id := b.insert(t, jobargs.PayInSettle{Provider: "btcpay", InvoiceID: "deleted-at-btcpay"}, nil)
		b.start(t)
		b.awaitJob(t, id, rivertype.JobStateCompleted)
		failed := b.awaitPayIn(t, payin, sql.PayinStateFAILED)
		require.Equal(t, sql.PayinFailureReasonINVOICENOTFOUND, *failed.FailureReason)
		require.Equal(t, int64(30), b.credits(t), "the custodial part is refunded")
		b.requireInvariants(t)
	})

	t.Run("ConcurrentSettlesCreditALatePaymentOnce", func(t *testing.T) {
		t.Parallel()
		b := setupOperated(t)
		payin, invoice := b.cancelled(t)
		b.start(t)
		b.awaitInvalid(t, payin, invoice.ID)
		require.NoError(t, b.payments.Fake.PayLate(invoice.ID, 70))
		// Ten deliveries about the payment, settled by four workers at once.
		var wg sync.WaitGroup
		ids := make([]int64, 10)
		for i := range ids {
			wg.Go(func() {
				ids[i] = b.insert(t, jobargs.PayInSettle{Provider: "btcpay", InvoiceID: invoice.ID, Trigger: uuid.NewString()}, nil)
			})
		}
		wg.Wait()
		for _, id := range ids {
			b.awaitJob(t, id, rivertype.JobStateCompleted)
		}
		var credited []int64
		rows, err := b.pool.Query(ctx, "SELECT amount FROM payouts WHERE tenant_id = $1 AND payin_id = $2 AND type = 'late_payment_credit'", payin.TenantID, payin.ID)
		require.NoError(t, err)
		credited, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		require.Equal(t, []int64{70}, credited, "credited exactly once")
		require.Equal(t, int64(30+70), b.credits(t))
		b.requireInvariants(t)
	})
}

// TestPayInInvalidateInvoiceOperated: what River UI's Retry, Cancel and Delete do to a
// payin.invalidate_invoice job.
func TestPayInInvalidateInvoiceOperated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const kind = "payin.invalidate_invoice"

	t.Run("RetryAfterDiscardRedoesIt", func(t *testing.T) {
		t.Parallel()
		b := setupOperated(t)
		payin, invoice := b.cancelled(t)
		id := b.job(t, kind, payInArgs(payin))
		b.retryDiscarded(t, id)
		b.awaitInvalid(t, payin, invoice.ID)
		b.requireInvariants(t)
	})

	for _, op := range operatorStops {
		t.Run(op.name+"IsEnqueuedAgain", func(t *testing.T) {
			t.Parallel()
			b := setupOperated(t)
			payin, invoice := b.cancelled(t)
			require.NoError(t, op.do(ctx, b.client, b.job(t, kind, payInArgs(payin))))
			b.start(t)
			b.sweep(t)
			b.awaitInvalid(t, payin, invoice.ID)
			b.requireInvariants(t)
		})
	}
}

// TestPayInReconcileSweepOperated: retrying a discarded payin.reconcile_sweep redoes it; a
// cancelled or deleted one leaves its work to the next (every 5 minutes).
func TestPayInReconcileSweepOperated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupOperated(t)
	payin := b.purchase(t)
	_, err := b.client.JobDelete(ctx, b.job(t, "payin.create_invoice", payInArgs(payin)))
	require.NoError(t, err)
	b.clock.Advance(payInReconcileAfter + time.Minute)
	cancelled := b.insert(t, jobargs.PayInReconcileSweep{}, later())
	_, err = b.client.JobCancel(ctx, cancelled)
	require.NoError(t, err)
	discarded := b.insert(t, jobargs.PayInReconcileSweep{}, later())
	b.discard(t, discarded)
	b.start(t)
	require.Never(t, func() bool { return len(b.payments.Fake.Invoices()) > 0 }, 300*time.Millisecond, 20*time.Millisecond,
		"a cancelled or discarded sweep does nothing")

	_, err = b.client.JobRetry(ctx, discarded)
	require.NoError(t, err)
	b.awaitJob(t, discarded, rivertype.JobStateCompleted)
	b.awaitPayIn(t, payin, sql.PayinStatePENDING)
}

// TestSubscriptionRenewOperated: what River UI's Retry, Cancel and Delete do to a
// subscription.renew job.
func TestSubscriptionRenewOperated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RetryAfterDiscardRedoesIt", func(t *testing.T) {
		t.Parallel()
		b := setupOperated(t)
		sub, _ := b.subscription(t, sql.CurrencySAT, 1000)
		b.clock.Advance(30 * 24 * time.Hour)
		id := b.insert(t, jobargs.SubscriptionRenew{TenantID: sub.TenantID, SubscriptionID: sub.ID, CycleNumber: 1}, later())
		b.retryDiscarded(t, id)
		b.awaitJob(t, id, rivertype.JobStateCompleted)
		require.Len(t, b.cycles(t, sub), 1, "the cycle is open with its PayIn")
		require.Len(t, b.payins(t), 1)
	})

	for _, op := range operatorStops {
		t.Run(op.name+"IsEnqueuedAgainBySweep", func(t *testing.T) {
			t.Parallel()
			b := setupOperated(t)
			sub, _ := b.subscription(t, sql.CurrencySAT, 1000)
			b.clock.Advance(30 * 24 * time.Hour)
			require.NoError(t, op.do(ctx, b.client, b.insert(t, jobargs.SubscriptionRenew{TenantID: sub.TenantID, SubscriptionID: sub.ID, CycleNumber: 1}, later())))
			b.start(t)
			require.Empty(t, b.cycles(t, sub), "nothing renewed it")
			b.awaitJob(t, b.insert(t, jobargs.SubscriptionRenewSweep{}, nil), rivertype.JobStateCompleted)
			require.Eventually(t, func() bool { return len(b.cycles(t, sub)) == 1 }, 20*time.Second, 20*time.Millisecond,
				"the next renewal sweep renews it")
			require.Len(t, b.payins(t), 1)
		})
	}
}

// TestSubscriptionRenewalInvoiceCancelled: an operator cancels the invoice creation of a
// renewal PayIn; the reconcile sweep fails it with SYSTEM_CANCELLED, which releases the cycle
// and backs the renewal off, like an invoice the provider could not create: the next renewal
// opens the cycle again with a new PayIn.
func TestSubscriptionRenewalInvoiceCancelled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupOperated(t)
	sub, _ := b.subscription(t, sql.CurrencySAT, 1000)
	b.clock.Advance(30 * 24 * time.Hour)
	b.inTx(t, func(tx pgx.Tx, st core.Step) error {
		_, err := core.SubscriptionRenew(ctx, tx, st, core.SubscriptionRenewParams{TenantID: sub.TenantID, SubscriptionID: sub.ID, CycleNumber: 1})
		return err
	})
	payin := b.payins(t)[0]
	_, err := b.client.JobCancel(ctx, b.job(t, "payin.create_invoice", payInArgs(payin)))
	require.NoError(t, err)
	b.start(t)
	b.sweep(t)
	failed := b.awaitPayIn(t, payin, sql.PayinStateFAILED)
	require.Equal(t, sql.PayinFailureReasonSYSTEMCANCELLED, *failed.FailureReason)
	require.Empty(t, b.cycles(t, sub), "the cycle nobody could pay is released")
	require.Equal(t, int32(1), b.get(t, sub).ConsecutiveFailures)
	b.requireInvariants(t)
}

// operatorStops are the two ways an operator stops a job in River UI: Cancel and Delete.
var operatorStops = []struct {
	name string
	do   func(ctx context.Context, c *river.Client[pgx.Tx], id int64) error
}{
	{"Cancel", func(ctx context.Context, c *river.Client[pgx.Tx], id int64) error {
		_, err := c.JobCancel(ctx, id)
		return err
	}},
	{"Delete", func(ctx context.Context, c *river.Client[pgx.Tx], id int64) error {
		_, err := c.JobDelete(ctx, id)
		return err
	}},
}
