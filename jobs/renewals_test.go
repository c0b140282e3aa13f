package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// errRates is a rate source that is down.
type errRates struct{}

func (errRates) Rate(context.Context, string) (payment.Rate, error) {
	return payment.Rate{}, errors.New("rates: connection refused")
}

// switchRates answers from a fixed source, or fails while down is set.
type switchRates struct {
	mu    sync.Mutex
	down  bool
	fixed payment.RateSource
}

func (s *switchRates) Rate(ctx context.Context, currency string) (payment.Rate, error) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		return errRates{}.Rate(ctx, currency)
	}
	return s.fixed.Rate(ctx, currency)
}

func (s *switchRates) set(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// renewals is a test's bundle: a transaction, a clock, a tenant with a customer, and the
// renewal workers on them.
type renewals struct {
	db       pg.DB
	clock    *clock.Manual
	rates    *switchRates
	tenant   sql.Tenant
	customer sql.Customer
	payments factory.Payments
	cfg      Config
	renew    *rivertest.Worker[jobargs.SubscriptionRenew, pgx.Tx]
	sweep    *rivertest.Worker[jobargs.SubscriptionRenewSweep, pgx.Tx]
	lapse    *rivertest.Worker[jobargs.SubscriptionLapseSweep, pgx.Tx]
}

func setupRenewals(t *testing.T, db pg.DB) *renewals {
	t.Helper()
	clk := clock.NewManual(factory.Now)
	b := &renewals{db: db, clock: clk, rates: &switchRates{fixed: factory.Rates(t)}, payments: factory.FakeBTCPay(t, "")}
	b.cfg = Config{DB: db, Clock: clk, Log: slog.New(slog.DiscardHandler), Box: factory.Box, Payments: b.payments.Client, Rates: b.rates}
	b.renew = rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &SubscriptionRenewWorker{cfg: b.cfg})
	b.sweep = rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &SubscriptionRenewSweepWorker{cfg: b.cfg})
	b.lapse = rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &SubscriptionLapseSweepWorker{cfg: b.cfg})
	b.tenant = factory.Tenant(t, db)
	b.customer = factory.Customer(t, db, b.tenant.ID)
	t.Cleanup(func() { factory.RequireEventsDocumented(t, db) })
	return b
}

// subscription starts a 30-day subscription at factory.Now to a policy priced value in
// currency, with 7 grace days.
func (b *renewals) subscription(t *testing.T, currency sql.Currency, value int64) (sql.Subscription, sql.License) {
	t.Helper()
	policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30), factory.PolicyPrice(currency, value), factory.PolicyGraceDays(7))
	return factory.Subscription(t, b.db, b.tenant.ID, policy.ID, b.customer.ID)
}

func (b *renewals) get(t *testing.T, s sql.Subscription) sql.Subscription {
	t.Helper()
	got, err := sql.New().SubscriptionGet(context.Background(), b.db, sql.SubscriptionGetParams{TenantID: s.TenantID, ID: s.ID})
	require.NoError(t, err)
	return got
}

func (b *renewals) cycles(t *testing.T, s sql.Subscription) []sql.SubscriptionCycle {
	t.Helper()
	cycles, err := sql.New().SubscriptionCycles(context.Background(), b.db, sql.SubscriptionCyclesParams{TenantID: s.TenantID, SubscriptionID: s.ID})
	require.NoError(t, err)
	return cycles
}

// payins lists the subscription_renewal PayIns of the bundle's customer.
func (b *renewals) payins(t *testing.T) []sql.PayIn {
	t.Helper()
	rows, err := b.db.Query(context.Background(),
		"SELECT * FROM payins WHERE tenant_id = $1 AND customer_id = $2 AND type = 'subscription_renewal' ORDER BY id",
		b.tenant.ID, b.customer.ID)
	require.NoError(t, err)
	payins, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sql.PayIn])
	require.NoError(t, err)
	return payins
}

// work runs one renew job in tx for the subscription's cycle.
func (b *renewals) work(t *testing.T, tx pgx.Tx, s sql.Subscription, cycle int32) {
	t.Helper()
	res, err := b.renew.Work(context.Background(), t, tx, jobargs.SubscriptionRenew{TenantID: s.TenantID, SubscriptionID: s.ID, CycleNumber: cycle}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
}

// TestSubscriptionRenewWorker renews one subscription for one cycle.
func TestSubscriptionRenewWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("SATPriceChargedVerbatimWithNoRate", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		sub, _ := b.subscription(t, sql.CurrencySAT, 21_000)
		b.clock.Advance(30 * 24 * time.Hour)

		b.work(t, tx, sub, 1)
		payins := b.payins(t)
		require.Len(t, payins, 1)
		require.Equal(t, int64(21_000), payins[0].CostSats, "the listed sats, verbatim")
		require.Nil(t, payins[0].RateMinorPerBTC, "no rate for a SAT price")
		require.Nil(t, payins[0].RateSource)
		require.Equal(t, sql.PayinStatePENDINGINVOICECREATION, payins[0].State)

		got := b.get(t, sub)
		require.Equal(t, sql.SubscriptionStatusPastDue, got.Status, "past_due until paid")
		require.Equal(t, sub.CurrentPeriodEnd.UTC().Add(30*24*time.Hour), got.NextRenewalAt.UTC(), "due again at the end of the new cycle")
		require.Equal(t, b.clock.Now(), got.LastRenewalAttemptAt.UTC())
		require.Equal(t, sub.CurrentPeriodEnd.UTC(), got.CurrentPeriodEnd.UTC(), "the current period is the last paid one")
		cycles := b.cycles(t, sub)
		require.Len(t, cycles, 1)
		require.Equal(t, int32(1), cycles[0].CycleNumber)
		require.Equal(t, payins[0].ID, cycles[0].PayInID)
		require.Equal(t, sub.CurrentPeriodEnd.UTC(), cycles[0].PeriodStart.UTC())
		require.Equal(t, sub.CurrentPeriodEnd.UTC().Add(30*24*time.Hour), cycles[0].PeriodEnd.UTC())

		rivertest.RequireInsertedTx[*riverpgxv5.Driver](ctx, t, tx, &jobargs.PayInCreateInvoice{}, nil)
		require.Zero(t, b.events(t, core.EventSubscriptionRenewalPending), "pending is announced with its invoice")

		create := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &PayInCreateInvoiceWorker{cfg: b.cfg})
		_, err := create.Work(ctx, t, tx, jobargs.PayInCreateInvoice{TenantID: payins[0].TenantID, PayInID: payins[0].ID}, nil)
		require.NoError(t, err)
		invoice, err := sql.New().PayInInvoiceGet(ctx, tx, sql.PayInInvoiceGetParams{TenantID: payins[0].TenantID, PayInID: payins[0].ID})
		require.NoError(t, err)
		var data map[string]any
		require.NoError(t, tx.QueryRow(ctx, "SELECT data FROM events WHERE tenant_id = $1 AND type = 'subscription.renewal_pending'", b.tenant.ID).Scan(&data))
		require.Equal(t, invoice.CheckoutURL, data["checkout_url"], "the buyer pays the renewal there")
		require.Equal(t, float64(1), data["cycle_number"])
		require.Equal(t, payins[0].ID.String(), data["payin_id"])
	})

	t.Run("FiatRequotedAtTheCurrentRate", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		sub, _ := b.subscription(t, sql.CurrencyUSD, 2500)
		b.clock.Advance(30 * 24 * time.Hour)

		b.work(t, tx, sub, 1)
		payins := b.payins(t)
		require.Len(t, payins, 1)
		require.Equal(t, int64(50_000), payins[0].CostSats, "$25 at $50,000/BTC")
		require.Equal(t, int64(5_000_000), *payins[0].RateMinorPerBTC, "the rate is stored")
		require.Equal(t, "fixed", *payins[0].RateSource)
		require.Equal(t, sql.CurrencyUSD, payins[0].PriceCurrency)
		require.Equal(t, int64(2500), payins[0].PriceValue)
	})

	t.Run("RateFailureBacksOffAndLeavesNoPayIn", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		b.rates.set(true)
		sub, _ := b.subscription(t, sql.CurrencyUSD, 2500)
		b.clock.Advance(30 * 24 * time.Hour)

		for i, backoff := range []time.Duration{5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour} {
			b.work(t, tx, sub, 1)
			got := b.get(t, sub)
			require.Equal(t, int32(i+1), got.ConsecutiveFailures)
			require.Equal(t, b.clock.Now().Add(backoff), got.NextRenewalAt.UTC(), "failure %d", i+1)
			require.Equal(t, sql.SubscriptionStatusPastDue, got.Status)
			require.Equal(t, b.clock.Now(), got.LastRenewalAttemptAt.UTC())
			require.Empty(t, b.payins(t), "no PayIn left behind")
			require.Empty(t, b.cycles(t, sub))
			b.clock.Advance(backoff)
		}
		b.rates.set(false)
		b.work(t, tx, sub, 1)
		require.Empty(t, b.payins(t), "at the cap a job does nothing")
		require.Equal(t, int32(5), b.get(t, sub).ConsecutiveFailures)
	})

	t.Run("RetriedJobCreatesOnePayIn", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		sub, _ := b.subscription(t, sql.CurrencySAT, 1000)
		b.clock.Advance(30 * 24 * time.Hour)

		b.work(t, tx, sub, 1)
		b.work(t, tx, sub, 1) // River retrying the job after a crash once it had committed
		b.work(t, tx, sub, 2) // a stale or early job for a cycle that is not due
		require.Len(t, b.payins(t), 1)
		require.Len(t, b.cycles(t, sub), 1)
	})

	t.Run("CrashBeforeCommitLeavesNothing", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		sub, _ := b.subscription(t, sql.CurrencySAT, 1000)
		b.clock.Advance(30 * 24 * time.Hour)

		// A renewal that dies mid-way rolls back: here its transaction is a savepoint
		// rolled back after the job's work.
		crash := errors.New("crash")
		err := pg.InTx(ctx, tx, func(crashed pgx.Tx) error {
			b.work(t, crashed, sub, 1)
			return crash
		})
		require.ErrorIs(t, err, crash)
		require.Empty(t, b.payins(t))
		b.work(t, tx, sub, 1)
		require.Len(t, b.payins(t), 1, "the retry creates the one PayIn")
	})

	t.Run("AutoPayTakesCreditsFirst", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		_, err := tx.Exec(ctx, "UPDATE customers SET auto_pay = true WHERE tenant_id = $1 AND id = $2", b.tenant.ID, b.customer.ID)
		require.NoError(t, err)
		_, err = sql.New().BalanceCredit(ctx, tx, sql.BalanceCreditParams{TenantID: b.tenant.ID, CustomerID: b.customer.ID, Asset: sql.AssetCredits, Amount: 300, Now: factory.Now})
		require.NoError(t, err)
		sub, _ := b.subscription(t, sql.CurrencySAT, 1000)
		b.clock.Advance(30 * 24 * time.Hour)

		b.work(t, tx, sub, 1)
		payins := b.payins(t)
		require.Len(t, payins, 1)
		parts, err := sql.New().PayInParts(ctx, tx, sql.PayInPartsParams{TenantID: b.tenant.ID, PayInID: payins[0].ID})
		require.NoError(t, err)
		require.Len(t, parts, 1)
		require.Equal(t, sql.AssetCredits, parts[0].Asset)
		require.Equal(t, int64(300), parts[0].Amount)
	})

	t.Run("WithoutAutoPayBalancesAreLeftAlone", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		_, err := sql.New().BalanceCredit(ctx, tx, sql.BalanceCreditParams{TenantID: b.tenant.ID, CustomerID: b.customer.ID, Asset: sql.AssetCredits, Amount: 300, Now: factory.Now})
		require.NoError(t, err)
		sub, _ := b.subscription(t, sql.CurrencySAT, 1000)
		b.clock.Advance(30 * 24 * time.Hour)

		b.work(t, tx, sub, 1)
		payins := b.payins(t)
		require.Len(t, payins, 1)
		parts, err := sql.New().PayInParts(ctx, tx, sql.PayInPartsParams{TenantID: b.tenant.ID, PayInID: payins[0].ID})
		require.NoError(t, err)
		require.Empty(t, parts)
	})

	t.Run("NotDueDoesNothing", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		sub, _ := b.subscription(t, sql.CurrencySAT, 1000)
		b.work(t, tx, sub, 1) // a day early: not due
		b.work(t, tx, sql.Subscription{TenantID: b.tenant.ID, ID: uuid.New()}, 1)
		require.Empty(t, b.payins(t))
		require.Equal(t, sql.SubscriptionStatusActive, b.get(t, sub).Status)
	})
}

// TestSubscriptionRenewSweepWorker renews the due subscriptions in batches.
func TestSubscriptionRenewSweepWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// sweep runs the sweep worker once.
	sweep := func(t *testing.T, b *renewals, tx pgx.Tx) {
		t.Helper()
		res, err := b.sweep.Work(ctx, t, tx, jobargs.SubscriptionRenewSweep{}, nil)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
	}
	// batches counts the payin.create_invoices jobs.
	batches := func(t *testing.T, tx pgx.Tx) int {
		t.Helper()
		var n int
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = 'payin.create_invoices'").Scan(&n))
		return n
	}

	t.Run("RenewsEveryDueSubscriptionOnce", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		due, _ := b.subscription(t, sql.CurrencySAT, 1000)
		notYet, _ := b.subscription(t, sql.CurrencyUSD, 2500)
		_, err := tx.Exec(ctx, "UPDATE subscriptions SET next_renewal_at = next_renewal_at + make_interval(0, 0, 0, 1) WHERE tenant_id = $1 AND id = $2", notYet.TenantID, notYet.ID)
		require.NoError(t, err)
		b.clock.Advance(30 * 24 * time.Hour)

		sweep(t, b, tx)
		require.Len(t, b.cycles(t, due), 1)
		require.Empty(t, b.cycles(t, notYet))
		payins := b.payins(t)
		require.Len(t, payins, 1)
		require.Equal(t, sql.PayinStatePENDINGINVOICECREATION, payins[0].State)
		require.Equal(t, []uuid.UUID{payins[0].ID}, invoiceJobPayIns(t, tx, b.tenant.ID), "its invoice is the batch's payin.create_invoices job's")
		require.Equal(t, 1, batches(t, tx))
		sweep(t, b, tx)
		require.Len(t, b.payins(t), 1, "a second sweep finds the cycle open")

		b.clock.Advance(30 * 24 * time.Hour)
		sweep(t, b, tx)
		require.Len(t, b.cycles(t, due), 2, "the next cycle of the renewed one")
		require.Len(t, b.cycles(t, notYet), 1, "and the other, now due, quoted at the current rate")
		require.Len(t, b.payins(t), 3)
		require.Len(t, invoiceJobPayIns(t, tx, b.tenant.ID), 3)
		require.Equal(t, 2, batches(t, tx), "one job per batch")
	})

	t.Run("NothingDueDoesNothing", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		b.subscription(t, sql.CurrencySAT, 1000)
		sweep(t, b, tx)
		require.Empty(t, b.payins(t))
	})

	t.Run("SkipsAtTheFailureCap", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		sub, _ := b.subscription(t, sql.CurrencySAT, 1000)
		_, err := tx.Exec(ctx, "UPDATE subscriptions SET consecutive_failures = 5 WHERE tenant_id = $1 AND id = $2", sub.TenantID, sub.ID)
		require.NoError(t, err)
		b.clock.Advance(60 * 24 * time.Hour)
		sweep(t, b, tx)
		require.Empty(t, b.payins(t))
	})

	t.Run("FailedQuoteIsRenewedAgainWhenDue", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		sub, _ := b.subscription(t, sql.CurrencyUSD, 2500)
		sat, _ := b.subscription(t, sql.CurrencySAT, 1000)
		b.clock.Advance(30 * 24 * time.Hour)
		b.rates.set(true)
		sweep(t, b, tx)
		got := b.get(t, sub)
		require.Equal(t, int32(1), got.ConsecutiveFailures, "not quoted: recorded and backed off")
		require.Equal(t, b.clock.Now().Add(5*time.Minute), got.NextRenewalAt.UTC())
		require.Len(t, b.cycles(t, sat), 1, "a SAT price needs no rate: renewed in the same batch")
		b.rates.set(false)
		sweep(t, b, tx)
		require.Empty(t, b.cycles(t, sub), "not due during the backoff")
		b.clock.Advance(5 * time.Minute)
		sweep(t, b, tx)
		require.Len(t, b.cycles(t, sub), 1, "due again after the backoff: the same cycle")
		require.Len(t, b.payins(t), 2)
	})

	t.Run("OneFailingSubscriptionDoesNotBlockTheBatch", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		subs := make([]sql.Subscription, 3)
		for i := range subs {
			subs[i], _ = b.subscription(t, sql.CurrencySAT, 1000)
		}
		bad := subs[1]
		// A bad row: a price no PayIn can hold in sats (bigint out of range).
		_, err := tx.Exec(ctx, "UPDATE subscriptions SET price_currency = 'USD', price_value = 9000000000000000000 WHERE tenant_id = $1 AND id = $2", bad.TenantID, bad.ID)
		require.NoError(t, err)
		b.clock.Advance(30 * 24 * time.Hour)

		outcomes := &core.Outcomes{} // as the metrics middleware hands them to the attempt
		res, err := b.sweep.Work(context.WithValue(ctx, outcomesKey{}, outcomes), t, tx, jobargs.SubscriptionRenewSweep{}, nil)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.ElementsMatch(t, []core.RenewalOutcome{core.RenewalStarted, core.RenewalStarted, core.RenewalFailed}, outcomes.Renewals,
			"the rolled-back batch's renewals are not counted")
		for _, s := range subs {
			if s.ID == bad.ID {
				continue
			}
			require.Len(t, b.cycles(t, s), 1, "the others are renewed")
		}
		require.Empty(t, b.cycles(t, bad))
		got := b.get(t, bad)
		require.Equal(t, int32(1), got.ConsecutiveFailures, "recorded as a failed renewal")
		require.Equal(t, b.clock.Now().Add(5*time.Minute), got.NextRenewalAt.UTC(), "and backed off")
		var cause string
		require.NoError(t, tx.QueryRow(ctx, "SELECT details->>'error' FROM audit_log WHERE tenant_id = $1 AND action = 'subscription.renewal_fail' AND subject_id = $2",
			b.tenant.ID, bad.ID.String()).Scan(&cause))
		require.Contains(t, cause, "out of range", "the operator sees why")

		for range 4 { // failing at every attempt, it reaches the cap: the stuck renewals' list
			b.clock.Advance(12 * time.Hour)
			sweep(t, b, tx)
		}
		stuck, err := sql.New().SubscriptionListStuck(ctx, tx, sql.SubscriptionListStuckParams{TenantID: b.tenant.ID, RowLimit: 10})
		require.NoError(t, err)
		require.Len(t, stuck, 1)
		require.Equal(t, bad.ID, stuck[0].ID)
		_, err = tx.Exec(ctx, "UPDATE subscriptions SET price_value = 2500 WHERE tenant_id = $1 AND id = $2", bad.TenantID, bad.ID)
		require.NoError(t, err)
		_, err = sql.New().SubscriptionRenewalReset(ctx, tx, sql.SubscriptionRenewalResetParams{TenantID: b.tenant.ID, ID: bad.ID, Now: b.clock.Now()})
		require.NoError(t, err)
		sweep(t, b, tx)
		require.Len(t, b.cycles(t, bad), 1, "reset by an operator, it renews")
	})
}

// step is a core.Step at the bundle's time, enqueueing through client.
func step(b *renewals, client *river.Client[pgx.Tx]) core.Step {
	return core.Step{Now: b.clock.Now(), Actor: core.Actor{Type: core.ActorJob, ID: "test"}, Box: factory.Box, Jobs: client}
}

// TestSubscriptionRenewSweepRace runs sweeps of the same due subscriptions on several
// connections at once, in small batches, with single renewals of the same cycles
// (subscription.renew jobs) among them: each cycle is renewed exactly once, with one PayIn
// and one invoice job.
func TestSubscriptionRenewSweepRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testdb.Clone(t)
	b := setupRenewals(t, pool)
	subs := make([]sql.Subscription, 20)
	for i := range subs {
		subs[i], _ = b.subscription(t, sql.CurrencySAT, 1000)
	}
	b.clock.Advance(30 * 24 * time.Hour)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 4 {
		wg.Go(func() {
			for {
				var n int
				err := pg.InTx(ctx, core.DB(pool), func(tx pgx.Tx) (err error) {
					n, err = core.SubscriptionRenewSweep(ctx, tx, step(b, client), core.SubscriptionRenewSweepParams{Batch: 3})
					return err
				})
				if err != nil || n == 0 {
					errs <- err
					return
				}
			}
		})
	}
	for _, s := range subs {
		wg.Go(func() {
			errs <- pg.InTx(ctx, core.DB(pool), func(tx pgx.Tx) error {
				_, err := core.SubscriptionRenew(ctx, tx, step(b, client), core.SubscriptionRenewParams{TenantID: s.TenantID, SubscriptionID: s.ID, CycleNumber: 1})
				return err
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, b.payins(t), len(subs), "one PayIn per cycle")
	for _, s := range subs {
		require.Len(t, b.cycles(t, s), 1)
	}
	var payins []uuid.UUID
	for _, p := range b.payins(t) {
		payins = append(payins, p.ID)
	}
	require.ElementsMatch(t, payins, invoiceJobPayIns(t, pool, b.tenant.ID), "one invoice job per PayIn: its own or its batch's")
}

// invoiceJobPayIns lists the PayIns of tenantID named by invoice jobs, once per job naming
// them: payin.create_invoice jobs and payin.create_invoices batches.
func invoiceJobPayIns(t *testing.T, db sql.DBTX, tenantID uuid.UUID) []uuid.UUID {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT (args->>'payin_id')::uuid FROM river_job WHERE kind = 'payin.create_invoice' AND args->>'tenant_id' = $1
		UNION ALL
		SELECT (p->>'payin_id')::uuid FROM river_job j, jsonb_array_elements(j.args->'payins') p WHERE j.kind = 'payin.create_invoices' AND p->>'tenant_id' = $1`, tenantID.String())
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	return ids
}

// TestSubscriptionLapseSweepWorker lapses past_due subscriptions unpaid for longer than their
// grace days since their unpaid cycle started.
func TestSubscriptionLapseSweepWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)
	b := setupRenewals(t, tx)
	old, _ := b.subscription(t, sql.CurrencySAT, 1000)
	recent, _ := b.subscription(t, sql.CurrencySAT, 1000)
	active, _ := b.subscription(t, sql.CurrencySAT, 1000)
	_, err := tx.Exec(ctx, "UPDATE subscriptions SET next_renewal_at = next_renewal_at + make_interval(0, 0, 0, 8) WHERE tenant_id = $1 AND id = $2", recent.TenantID, recent.ID)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE subscriptions SET next_renewal_at = NULL WHERE tenant_id = $1 AND id = $2", active.TenantID, active.ID)
	require.NoError(t, err)

	b.clock.Advance(30 * 24 * time.Hour)
	b.work(t, tx, old, 1) // past_due from the end of the first period
	b.clock.Advance(8 * 24 * time.Hour)
	b.work(t, tx, recent, 1) // past_due too, but its unpaid cycle also started 8 days ago
	_, err = tx.Exec(ctx, "UPDATE subscriptions SET current_period_end = current_period_end + make_interval(0, 0, 0, 8), current_period_start = current_period_start + make_interval(0, 0, 0, 8) WHERE tenant_id = $1 AND id = $2", recent.TenantID, recent.ID)
	require.NoError(t, err)
	b.clock.Advance(7 * 24 * time.Hour) // old: 15 days past_due with 7 grace days; recent: 7 days

	res, err := b.lapse.Work(ctx, t, tx, jobargs.SubscriptionLapseSweep{}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
	require.Equal(t, sql.SubscriptionStatusLapsed, b.get(t, old).Status, "15 days unpaid with 7 grace days")
	require.Equal(t, sql.SubscriptionStatusPastDue, b.get(t, recent).Status, "still within its grace days")
	require.Equal(t, sql.SubscriptionStatusActive, b.get(t, active).Status)
	var lapsed int
	require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'subscription.lapsed'", b.tenant.ID).Scan(&lapsed))
	require.Equal(t, 1, lapsed)

	res, err = b.lapse.Work(ctx, t, tx, jobargs.SubscriptionLapseSweep{}, nil)
	require.NoError(t, err, "a second sweep finds nothing more")
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
	require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'subscription.lapsed'", b.tenant.ID).Scan(&lapsed))
	require.Equal(t, 1, lapsed)
	b.clock.Advance(30 * 24 * time.Hour)
	b.work(t, tx, old, 2)
	require.Equal(t, sql.SubscriptionStatusLapsed, b.get(t, old).Status, "a lapsed subscription is not renewed")
}

// pay creates the invoice of a renewal PayIn at the fake BTCPay, pays it in full there and
// settles it through payin.settle, as a webhook would.
func (b *renewals) pay(t *testing.T, tx pgx.Tx, payin sql.PayIn) {
	t.Helper()
	ctx := context.Background()
	create := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &PayInCreateInvoiceWorker{cfg: b.cfg})
	_, err := create.Work(ctx, t, tx, jobargs.PayInCreateInvoice{TenantID: payin.TenantID, PayInID: payin.ID}, nil)
	require.NoError(t, err)
	invoice, err := sql.New().PayInInvoiceGet(ctx, tx, sql.PayInInvoiceGetParams{TenantID: payin.TenantID, PayInID: payin.ID})
	require.NoError(t, err)
	require.NoError(t, b.payments.Fake.Settle(invoice.ProviderInvoiceID, invoice.AmountSats))
	b.settle(t, tx, invoice.ProviderInvoiceID)
}

// settle runs payin.settle for a provider invoice.
func (b *renewals) settle(t *testing.T, tx pgx.Tx, invoiceID string) {
	t.Helper()
	w := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &PayInSettleWorker{cfg: b.cfg})
	res, err := w.Work(context.Background(), t, tx, jobargs.PayInSettle{Provider: "btcpay", InvoiceID: invoiceID}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
}

func (b *renewals) license(t *testing.T, l sql.License) sql.License {
	t.Helper()
	got, err := sql.New().LicenseGet(context.Background(), b.db, sql.LicenseGetParams{TenantID: l.TenantID, ID: l.ID})
	require.NoError(t, err)
	return got
}

func (b *renewals) events(t *testing.T, typ string) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.QueryRow(context.Background(), "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = $2", b.tenant.ID, typ).Scan(&n))
	return n
}

func (b *renewals) requireLedgerBalanced(t *testing.T) {
	t.Helper()
	violations, err := sql.New().PayInInvariantViolations(context.Background(), b.db, b.tenant.ID)
	require.NoError(t, err)
	require.Empty(t, violations)
}

// TestSubscriptionRenewalPaid settles renewal PayIns through the payments settle path.
func TestSubscriptionRenewalPaid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const day = 24 * time.Hour

	t.Run("SettlingARenewalMakesItActiveAgain", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		sub, license := b.subscription(t, sql.CurrencyUSD, 2500)
		b.clock.Advance(30 * day)
		b.work(t, tx, sub, 1)
		payins := b.payins(t)
		require.Len(t, payins, 1)
		b.clock.Advance(day)
		b.pay(t, tx, payins[0])

		got := b.get(t, sub)
		require.Equal(t, sql.SubscriptionStatusActive, got.Status)
		require.Equal(t, int32(0), got.ConsecutiveFailures)
		cycleEnd := sub.CurrentPeriodEnd.UTC().Add(30 * day)
		require.Equal(t, sub.CurrentPeriodEnd.UTC(), got.CurrentPeriodStart.UTC(), "the current period is the paid cycle")
		require.Equal(t, cycleEnd, got.CurrentPeriodEnd.UTC())
		require.Equal(t, cycleEnd, got.NextRenewalAt.UTC())
		require.Equal(t, cycleEnd.Add(7*day), b.license(t, license).ExpiresAt.UTC(), "the period's end plus 7 grace days")
		require.Equal(t, 1, b.events(t, "subscription.renewed"))
		require.NotNil(t, b.cycles(t, sub)[0].PaidAt)
		b.requireLedgerBalanced(t)

		invoice, err := sql.New().PayInInvoiceGet(ctx, tx, sql.PayInInvoiceGetParams{TenantID: b.tenant.ID, PayInID: payins[0].ID})
		require.NoError(t, err)
		b.settle(t, tx, invoice.ProviderInvoiceID) // the webhook delivered again
		require.Equal(t, 1, b.events(t, "subscription.renewed"), "a second settle changes nothing")
		require.Equal(t, cycleEnd.Add(7*day), b.license(t, license).ExpiresAt.UTC())
		b.requireLedgerBalanced(t)
	})

	t.Run("PaidAfterALapseReactivatesForThePaidCycle", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		sub, license := b.subscription(t, sql.CurrencySAT, 1000)
		b.clock.Advance(30 * day)
		b.work(t, tx, sub, 1)
		b.clock.Advance(15 * day)
		_, err := b.lapse.Work(ctx, t, tx, jobargs.SubscriptionLapseSweep{}, nil)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "UPDATE licenses SET status = 'expired' WHERE tenant_id = $1 AND id = $2", license.TenantID, license.ID)
		require.NoError(t, err)
		require.Equal(t, sql.SubscriptionStatusLapsed, b.get(t, sub).Status)

		b.pay(t, tx, b.payins(t)[0])
		got := b.get(t, sub)
		require.Equal(t, sql.SubscriptionStatusActive, got.Status)
		require.Equal(t, sub.CurrentPeriodEnd.UTC().Add(30*day), got.CurrentPeriodEnd.UTC(), "the paid cycle as scheduled, not shifted")
		l := b.license(t, license)
		require.Equal(t, sql.LicenseStatusActive, l.Status, "the expired licence is active again")
		require.Equal(t, got.CurrentPeriodEnd.UTC().Add(7*day), l.ExpiresAt.UTC())
	})

	t.Run("RetryOfAFailedRenewalPaysItsCycle", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		sub, _ := b.subscription(t, sql.CurrencySAT, 1000)
		b.clock.Advance(30 * day)
		b.work(t, tx, sub, 1)
		first := b.payins(t)[0]
		create := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &PayInCreateInvoiceWorker{cfg: b.cfg})
		_, err := create.Work(ctx, t, tx, jobargs.PayInCreateInvoice{TenantID: first.TenantID, PayInID: first.ID}, nil)
		require.NoError(t, err)
		invoice, err := sql.New().PayInInvoiceGet(ctx, tx, sql.PayInInvoiceGetParams{TenantID: first.TenantID, PayInID: first.ID})
		require.NoError(t, err)
		require.NoError(t, b.payments.Fake.Expire(invoice.ProviderInvoiceID))
		b.settle(t, tx, invoice.ProviderInvoiceID)
		failed, err := sql.New().PayInGet(ctx, tx, sql.PayInGetParams{TenantID: first.TenantID, ID: first.ID})
		require.NoError(t, err)
		require.Equal(t, sql.PayinStateFAILED, failed.State)
		require.Equal(t, sql.SubscriptionStatusPastDue, b.get(t, sub).Status)

		var retry sql.PayIn
		require.NoError(t, pg.InTx(ctx, tx, func(tx pgx.Tx) error {
			retry, err = core.PayInRetry(ctx, tx, step(b, factory.Jobs), core.PayInRetryParams{Failed: failed})
			return err
		}))
		b.pay(t, tx, retry)
		got := b.get(t, sub)
		require.Equal(t, sql.SubscriptionStatusActive, got.Status, "the retry, in the first PayIn's chain, pays its cycle")
		require.Equal(t, sub.CurrentPeriodEnd.UTC().Add(30*day), got.CurrentPeriodEnd.UTC())
		require.Len(t, b.cycles(t, sub), 1)
		b.requireLedgerBalanced(t)
	})

	t.Run("AutoPayFullyCoveredIsPaidAtOnce", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		b := setupRenewals(t, tx)
		_, err := tx.Exec(ctx, "UPDATE customers SET auto_pay = true WHERE tenant_id = $1 AND id = $2", b.tenant.ID, b.customer.ID)
		require.NoError(t, err)
		_, err = sql.New().BalanceCredit(ctx, tx, sql.BalanceCreditParams{TenantID: b.tenant.ID, CustomerID: b.customer.ID, Asset: sql.AssetRewardSats, Amount: 1000, Now: factory.Now})
		require.NoError(t, err)
		sub, _ := b.subscription(t, sql.CurrencySAT, 1000)
		b.clock.Advance(30 * day)
		b.work(t, tx, sub, 1)
		payins := b.payins(t)
		require.Len(t, payins, 1)
		require.Equal(t, sql.PayinStatePAID, payins[0].State)
		got := b.get(t, sub)
		require.Equal(t, sql.SubscriptionStatusActive, got.Status)
		require.Equal(t, sub.CurrentPeriodEnd.UTC().Add(30*day), got.CurrentPeriodEnd.UTC())
		require.Equal(t, 1, b.events(t, "subscription.renewed"))
		b.requireLedgerBalanced(t)
	})
}

// TestSubscriptionRenewalYear simulates, for several random seeds, a year of monthly
// renewals, each preceded by a random number of failed quotes (rates down) and paid after a
// random delay within the grace days: at the end the subscription has exactly 12 cycles, 12
// PAID PayIns of 50,000 sats, and its licence expires 13 periods plus the grace days after the
// start. (A seeded loop rather than rapid: one year is some 60 jobs, too slow for 100 runs.)
func TestSubscriptionRenewalYear(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprintf("Seed%d", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, seed))
			tx := testdb.Tx(t)
			b := setupRenewals(t, tx)
			sub, license := b.subscription(t, sql.CurrencyUSD, 2500)
			start := sub.CurrentPeriodStart.UTC()
			for cycle := int32(1); cycle <= 12; cycle++ {
				b.clock.Advance(b.get(t, sub).NextRenewalAt.UTC().Sub(b.clock.Now()))
				b.rates.set(true)
				for range rng.IntN(5) {
					b.work(t, tx, sub, cycle)
					b.clock.Advance(b.get(t, sub).NextRenewalAt.UTC().Sub(b.clock.Now()))
				}
				b.rates.set(false)
				b.work(t, tx, sub, cycle)
				b.work(t, tx, sub, cycle) // a duplicate does nothing
				payins := b.payins(t)
				require.Len(t, payins, int(cycle))
				b.clock.Advance(time.Duration(rng.IntN(6*24)) * time.Hour)
				b.pay(t, tx, payins[len(payins)-1])
				require.Equal(t, sql.SubscriptionStatusActive, b.get(t, sub).Status)
			}
			got := b.get(t, sub)
			require.Len(t, b.cycles(t, sub), 12)
			for _, p := range b.payins(t) {
				require.Equal(t, sql.PayinStatePAID, p.State)
				require.Equal(t, int64(50_000), p.CostSats)
			}
			require.Equal(t, start.Add(13*30*day), got.CurrentPeriodEnd.UTC())
			require.Equal(t, start.Add(13*30*day).Add(7*day), b.license(t, license).ExpiresAt.UTC())
			require.Equal(t, 12, b.events(t, "subscription.renewed"))
			b.requireLedgerBalanced(t)
		})
	}
}

// TestSubscriptionRenewAppliesScheduledDowngrade: a buyer's recurring downgrade takes effect
// when the next renewal starts, which charges the lower tier; a paid renewal keeps it.
func TestSubscriptionRenewAppliesScheduledDowngrade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)
	b := setupRenewals(t, tx)
	product := factory.Product(t, tx, b.tenant.ID)
	tier := func(slug string, rank int32, value int64, entitlements ...string) sql.Policy {
		return factory.Policy(t, tx, b.tenant.ID, factory.PolicyProduct(product.ID), factory.PolicySlug(slug), factory.PolicyTierRank(rank),
			factory.PolicyRecurring(30), factory.PolicyPrice(sql.CurrencySAT, value), factory.PolicyGraceDays(2), factory.PolicyEntitlements(entitlements...))
	}
	basic, plus := tier("basic", 1, 1000, "basic"), tier("plus", 2, 4000, "basic", "export")
	sub, l := factory.Subscription(t, tx, b.tenant.ID, plus.ID, b.customer.ID)

	var change sql.TierChange
	require.NoError(t, pg.InTx(ctx, tx, func(tx pgx.Tx) error {
		var err error
		change, err = core.TierDowngradeSchedule(ctx, tx, step(b, factory.Jobs), core.TierDowngradeScheduleParams{License: l, ToPolicyID: basic.ID})
		return err
	}))
	require.Equal(t, sql.TierChangeStatusScheduled, change.Status)

	b.clock.Advance(30 * 24 * time.Hour)
	b.work(t, tx, sub, 1)
	payins := b.payins(t)
	require.Len(t, payins, 1)
	require.Equal(t, int64(1000), payins[0].CostSats, "the renewal charges the lower tier")
	got := b.get(t, sub)
	require.Equal(t, basic.ID, got.PolicyID)
	require.Equal(t, int64(1000), got.PriceValue)
	license := b.license(t, l)
	require.Equal(t, basic.ID, license.PolicyID, "same licence, lower tier")
	require.Equal(t, []string{"basic"}, license.Entitlements)
	require.Equal(t, 1, b.events(t, core.EventLicenseTierChanged))
	applied, err := sql.New().TierChangeGet(ctx, tx, sql.TierChangeGetParams{TenantID: b.tenant.ID, ID: change.ID})
	require.NoError(t, err)
	require.Equal(t, sql.TierChangeStatusApplied, applied.Status)

	b.pay(t, tx, payins[0])
	license = b.license(t, l)
	require.Equal(t, basic.ID, license.PolicyID)
	require.Equal(t, got.NextRenewalAt.UTC().Add(2*24*time.Hour), license.ExpiresAt.UTC(), "the paid cycle plus the lower tier's grace")
	b.requireLedgerBalanced(t)
}

// TestSubscriptionRenewalInvoiceFailure: when the provider cannot invoice a renewal for good,
// the renewal counts as failed and backs off, and the same cycle is opened again with a new
// PayIn — not skipped, not left to lapse.
func TestSubscriptionRenewalInvoiceFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)
	b := setupRenewals(t, tx)
	sub, _ := b.subscription(t, sql.CurrencySAT, 1000)
	b.clock.Advance(30 * 24 * time.Hour)
	b.work(t, tx, sub, 1)
	first := b.payins(t)[0]

	create := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &PayInCreateInvoiceWorker{cfg: b.cfg})
	b.payments.Fake.FailNext(1)
	_, err := create.Work(ctx, t, tx, jobargs.PayInCreateInvoice{TenantID: first.TenantID, PayInID: first.ID}, &river.InsertOpts{MaxAttempts: 1})
	require.NoError(t, err)

	got := b.get(t, sub)
	require.Equal(t, int32(1), got.ConsecutiveFailures)
	require.Equal(t, b.clock.Now().Add(5*time.Minute), got.NextRenewalAt.UTC(), "backed off like a failed quote")
	require.Empty(t, b.cycles(t, sub), "the cycle nobody could pay is released")
	require.Equal(t, sql.PayinStateFAILED, b.payins(t)[0].State)

	b.clock.Advance(5 * time.Minute)
	b.work(t, tx, sub, 1)
	payins := b.payins(t)
	require.Len(t, payins, 2)
	cycles := b.cycles(t, sub)
	require.Len(t, cycles, 1)
	require.Equal(t, payins[1].ID, cycles[0].PayInID, "the same cycle, with a new PayIn")
	require.Equal(t, sub.CurrentPeriodEnd.UTC(), cycles[0].PeriodStart.UTC())
	b.pay(t, tx, payins[1])
	got = b.get(t, sub)
	require.Equal(t, sql.SubscriptionStatusActive, got.Status)
	require.Zero(t, got.ConsecutiveFailures)
	b.requireLedgerBalanced(t)
}

// TestTierChangesWithRenewals runs random sequences of buyer upgrades (paid or failed),
// scheduled and cancelled downgrades, admin changes and paid renewals on one subscription:
// the licence and its subscription always agree on the tier, the subscription renews at its
// tier's listed price and period, a licence has at most one scheduled downgrade and no
// unpaid upgrade once its PayIn is settled, each applied change emitted one
// license.tier_changed, and the ledger balances.
func TestTierChangesWithRenewals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)

	rapid.Check(t, func(rt *rapid.T) {
		b := setupRenewals(t, tx)
		product := factory.Product(t, tx, b.tenant.ID)
		tiers := make([]sql.Policy, 3)
		for i := range tiers {
			tiers[i] = factory.Policy(t, tx, b.tenant.ID, factory.PolicyProduct(product.ID), factory.PolicyTierRank(int32(i)),
				factory.PolicyRecurring([]int32{30, 30, 90}[i]), factory.PolicyPrice(sql.CurrencySAT, []int64{1000, 3000, 12000}[i]),
				factory.PolicyEntitlements([]string{"basic", "plus", "pro"}[:i+1]...))
		}
		start := rapid.IntRange(0, 2).Draw(rt, "start")
		sub, l := factory.Subscription(t, tx, b.tenant.ID, tiers[start].ID, b.customer.ID)
		cycle := int32(0)
		run := func(f func(tx pgx.Tx) error) error {
			return pg.InTx(ctx, tx, f)
		}
		tolerated := func(err error) {
			if err != nil && !errors.Is(err, core.ErrRefused) && !errors.Is(err, core.ErrConflict) {
				require.NoError(t, err)
			}
		}
		target := func(rt *rapid.T) uuid.UUID { return tiers[rapid.IntRange(0, 2).Draw(rt, "tier")].ID }
		// pay invoices a PayIn and settles it in full through core, without the provider
		// round trips (the payment path has its own tests).
		pay := func(payin sql.PayIn) {
			require.NoError(t, run(func(tx pgx.Tx) error {
				st := step(b, factory.Jobs)
				payin, _, err := core.PayInInvoiceCreated(ctx, tx, st, core.PayInInvoiceParams{PayIn: payin, Provider: "test", Invoice: payment.Invoice{
					ID: payin.ID.String(), AmountSats: payin.CostSats, CheckoutURL: "https://pay.example/" + payin.ID.String(),
				}})
				if err != nil {
					return err
				}
				_, err = core.PayInPaid(ctx, tx, st, core.PayInPaidParams{PayIn: payin, Move: core.PayInMovePay})
				return err
			}))
		}

		actions := map[string]func(*rapid.T){
			"upgrade": func(rt *rapid.T) {
				to, paid := target(rt), rapid.Bool().Draw(rt, "paid")
				var payin sql.PayIn
				err := run(func(tx pgx.Tx) error {
					var err error
					_, payin, err = core.TierUpgradeStart(ctx, tx, step(b, factory.Jobs), core.TierUpgradeStartParams{License: l, ToPolicyID: to})
					return err
				})
				if tolerated(err); err != nil {
					return
				}
				if paid {
					pay(payin)
					err := run(func(tx pgx.Tx) error { // a replayed settlement changes nothing
						_, err := core.PayInPaid(ctx, tx, step(b, factory.Jobs), core.PayInPaidParams{PayIn: payin, Move: core.PayInMovePay})
						return err
					})
					require.ErrorIs(t, err, core.ErrConflict)
					return
				}
				require.NoError(t, run(func(tx pgx.Tx) error {
					_, err := core.PayInFail(ctx, tx, step(b, factory.Jobs), core.PayInFailParams{TenantID: payin.TenantID, ID: payin.ID, Move: core.PayInMoveCancel})
					return err
				}))
			},
			"downgrade": func(rt *rapid.T) {
				to := target(rt)
				tolerated(run(func(tx pgx.Tx) error {
					_, err := core.TierDowngradeSchedule(ctx, tx, step(b, factory.Jobs), core.TierDowngradeScheduleParams{License: l, ToPolicyID: to})
					return err
				}))
			},
			"cancel_downgrade": func(rt *rapid.T) {
				err := run(func(tx pgx.Tx) error {
					_, err := core.TierDowngradeCancel(ctx, tx, step(b, factory.Jobs), l)
					return err
				})
				if !errors.Is(err, core.ErrNotFound) {
					require.NoError(t, err)
				}
			},
			"admin": func(rt *rapid.T) {
				to := target(rt)
				tolerated(run(func(tx pgx.Tx) error {
					_, _, err := core.TierChangeAdmin(ctx, tx, step(b, factory.Jobs), core.TierChangeAdminParams{TenantID: b.tenant.ID, LicenseID: l.ID, ToPolicyID: to})
					return err
				}))
			},
			"renew": func(rt *rapid.T) {
				b.clock.Set(b.get(t, sub).NextRenewalAt.UTC())
				cycle++
				b.work(t, tx, sub, cycle)
				payins := b.payins(t)
				pay(payins[len(payins)-1])
				b.clock.Advance(time.Duration(rapid.IntRange(0, 20).Draw(rt, "days")) * 24 * time.Hour)
			},
			"check": func(rt *rapid.T) {
				s, license := b.get(t, sub), b.license(t, l)
				require.Equal(t, s.PolicyID, license.PolicyID, "the licence and its subscription agree on the tier")
				var policy sql.Policy
				for _, p := range tiers {
					if p.ID == s.PolicyID {
						policy = p
					}
				}
				require.Equal(t, policy.ListedValue, s.PriceValue, "renewals charge the tier's price")
				require.Equal(t, *policy.PeriodDays, s.PeriodDays)
				require.Equal(t, policy.Entitlements, license.Entitlements)
			},
		}
		// Up to 12 actions, each followed by the check.
		for range rapid.IntRange(1, 12).Draw(rt, "steps") {
			actions[rapid.SampledFrom([]string{"upgrade", "downgrade", "cancel_downgrade", "admin", "renew"}).Draw(rt, "action")](rt)
			actions["check"](rt)
		}
		var scheduled, pending, applied int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'scheduled'), count(*) FILTER (WHERE status = 'pending'),
			count(*) FILTER (WHERE status = 'applied') FROM tier_changes WHERE tenant_id = $1`, b.tenant.ID).Scan(&scheduled, &pending, &applied))
		require.LessOrEqual(t, scheduled, 1)
		require.Zero(t, pending, "every upgrade was paid or failed")
		require.Equal(t, applied, b.events(t, core.EventLicenseTierChanged), "one event per applied change")
		b.requireLedgerBalanced(t)
	})
}
