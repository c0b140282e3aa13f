package core_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

var queries = sql.New()

// ledger is what a ledger test needs: a tenant, a customer with balances, a policy.
type ledger struct {
	db pg.DB
	// credits0 and rewardSats0 are the balances the ledger started with.
	credits0, rewardSats0 int64
	tenant                sql.Tenant
	customer              sql.Customer
	policy                sql.Policy
}

func newLedger(t *testing.T, db pg.DB, credits, rewardSats int64) *ledger {
	t.Helper()
	l := &ledger{db: db, tenant: factory.Tenant(t, db), credits0: credits, rewardSats0: rewardSats}
	l.customer = factory.Customer(t, db, l.tenant.ID)
	l.policy = factory.Policy(t, db, l.tenant.ID, factory.PolicyPrice(sql.CurrencySAT, 100))
	l.credit(t, sql.AssetCredits, credits)
	l.credit(t, sql.AssetRewardSats, rewardSats)
	return l
}

func (l *ledger) credit(t *testing.T, asset sql.Asset, amount int64) {
	t.Helper()
	_, err := queries.BalanceCredit(context.Background(), l.db, sql.BalanceCreditParams{
		TenantID: l.tenant.ID, CustomerID: l.customer.ID, Asset: asset, Amount: amount, Now: factory.Now,
	})
	require.NoError(t, err)
}

func (l *ledger) balance(t *testing.T, asset sql.Asset) int64 {
	t.Helper()
	var amount int64
	require.NoError(t, l.db.QueryRow(context.Background(),
		"SELECT amount FROM balances WHERE tenant_id = $1 AND customer_id = $2 AND asset = $3", l.tenant.ID, l.customer.ID, asset).Scan(&amount))
	return amount
}

// purchase creates a licence-purchase PayIn of the ledger's policy in its own transaction.
func (l *ledger) purchase(t *testing.T, price int64, assets ...sql.Asset) (sql.PayIn, error) {
	t.Helper()
	var payin sql.PayIn
	err := pg.InTx(context.Background(), l.db, func(tx pgx.Tx) error {
		var err error
		payin, err = core.PayInCreate(context.Background(), tx, factory.Step(), core.PayInCreateParams{
			TenantID: l.tenant.ID, CustomerID: l.customer.ID, Type: sql.PayinTypeLicensePurchase, PriceCurrency: sql.CurrencySAT, PriceValue: price,
			PolicyID: &l.policy.ID, Assets: assets,
		})
		return err
	})
	return payin, err
}

// requireInvariants runs the ledger's invariant query over the tenant.
func (l *ledger) requireInvariants(t *testing.T) {
	t.Helper()
	violations, err := queries.PayInInvariantViolations(context.Background(), l.db, l.tenant.ID)
	require.NoError(t, err)
	require.Empty(t, violations)
}

// inTx runs fn in a transaction on the ledger's database.
func (l *ledger) inTx(t *testing.T, fn func(tx pgx.Tx) error) {
	t.Helper()
	require.NoError(t, pg.InTx(context.Background(), l.db, fn))
}

func TestPayInMixedPayment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newLedger(t, testdb.Tx(t), 20, 20)

	// Cost 100: 20 credits + 20 reward sats + a 60-sat invoice (SPEC 3, seed 004).
	payin, err := l.purchase(t, 100, core.DefaultAssets...)
	require.NoError(t, err)
	require.Equal(t, sql.PayinStatePENDINGINVOICECREATION, payin.State)
	require.Equal(t, int64(100), payin.CostSats)
	parts, err := queries.PayInParts(ctx, l.db, sql.PayInPartsParams{TenantID: l.tenant.ID, PayInID: payin.ID})
	require.NoError(t, err)
	require.Len(t, parts, 2)
	require.Equal(t, sql.AssetCredits, parts[0].Asset)
	require.Equal(t, []int64{20, 0}, []int64{parts[0].Amount, parts[0].BalanceAfter})
	require.Equal(t, []int64{20, 0}, []int64{parts[1].Amount, parts[1].BalanceAfter})
	var jobs int
	require.NoError(t, l.db.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = 'payin.create_invoice' AND args->>'payin_id' = $1", payin.ID.String()).Scan(&jobs))
	require.Equal(t, 1, jobs, "invoice creation is enqueued with the PayIn")

	l.inTx(t, func(tx pgx.Tx) error {
		_, err := core.PayInPaid(ctx, tx, factory.Step(), core.PayInPaidParams{PayIn: payin, Move: core.PayInMovePay})
		require.ErrorIs(t, err, core.ErrConflict, "not before the invoice exists")
		return nil
	})
	l.inTx(t, func(tx pgx.Tx) error {
		var err error
		payin, _, err = core.PayInInvoiceCreated(ctx, tx, factory.Step(), core.PayInInvoiceParams{PayIn: payin, Provider: "btcpay", Invoice: payment.Invoice{ID: "inv-" + payin.ID.String(), AmountSats: 60, CheckoutURL: "http://pay/inv"}})
		return err
	})
	require.Equal(t, sql.PayinStatePENDING, payin.State)
	l.requireInvariants(t)
	l.inTx(t, func(tx pgx.Tx) error {
		var err error
		payin, err = core.PayInPaid(ctx, tx, factory.Step(), core.PayInPaidParams{PayIn: payin, Move: core.PayInMovePay})
		return err
	})
	require.Equal(t, sql.PayinStatePAID, payin.State)
	require.NotNil(t, payin.LicenseID)
	payouts, err := queries.PayInPayouts(ctx, l.db, sql.PayInPayoutsParams{TenantID: l.tenant.ID, PayInID: payin.ID})
	require.NoError(t, err)
	require.Len(t, payouts, 1)
	require.Equal(t, int64(100), payouts[0].Amount)
	transitions, err := queries.PayInTransitions(ctx, l.db, sql.PayInTransitionsParams{TenantID: l.tenant.ID, PayInID: payin.ID})
	require.NoError(t, err)
	var states []sql.PayInState
	for _, tr := range transitions {
		states = append(states, tr.ToState)
	}
	require.Equal(t, []sql.PayInState{sql.PayinStatePENDINGINVOICECREATION, sql.PayinStatePENDING, sql.PayinStatePAID}, states)
	l.requireInvariants(t)
}

func TestPayInFullyCustodialIsPaidAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newLedger(t, testdb.Tx(t), 70, 50)

	payin, err := l.purchase(t, 100, core.DefaultAssets...)
	require.NoError(t, err)
	require.Equal(t, sql.PayinStatePAID, payin.State)
	require.NotNil(t, payin.LicenseID, "the licence is issued in the same transaction")
	require.Equal(t, int64(0), l.balance(t, sql.AssetCredits))
	require.Equal(t, int64(20), l.balance(t, sql.AssetRewardSats))

	payouts, err := queries.PayInPayouts(ctx, l.db, sql.PayInPayoutsParams{TenantID: l.tenant.ID, PayInID: payin.ID})
	require.NoError(t, err)
	require.Len(t, payouts, 1)
	require.Equal(t, sql.PayoutTypeTenantRevenue, payouts[0].Type)
	require.Equal(t, int64(100), payouts[0].Amount)
	transitions, err := queries.PayInTransitions(ctx, l.db, sql.PayInTransitionsParams{TenantID: l.tenant.ID, PayInID: payin.ID})
	require.NoError(t, err)
	require.Len(t, transitions, 1, "the path it took: created PAID, never waiting for an invoice")
	require.Nil(t, transitions[0].FromState)
	require.Equal(t, sql.PayinStatePAID, transitions[0].ToState)
	l.requireInvariants(t)

	l.inTx(t, func(tx pgx.Tx) error {
		_, err := core.PayInPaid(ctx, tx, factory.Step(), core.PayInPaidParams{PayIn: payin, Move: core.PayInMovePay})
		require.ErrorIs(t, err, core.ErrConflict, "a second settle changes nothing")
		return nil
	})
	l.requireInvariants(t)
}

func TestPayInAssetOrder(t *testing.T) {
	t.Parallel()
	l := newLedger(t, testdb.Tx(t), 50, 50)
	_, err := l.purchase(t, 60, sql.AssetRewardSats, sql.AssetCredits)
	require.NoError(t, err)
	require.Equal(t, int64(0), l.balance(t, sql.AssetRewardSats), "the named order: reward sats first")
	require.Equal(t, int64(40), l.balance(t, sql.AssetCredits))

	payin, err := l.purchase(t, 30)
	require.NoError(t, err)
	require.Equal(t, sql.PayinStatePENDINGINVOICECREATION, payin.State, "no assets named: all by invoice")
	require.Equal(t, int64(40), l.balance(t, sql.AssetCredits))
}

func TestPayInFailRefunds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newLedger(t, testdb.Tx(t), 20, 20)
	payin, err := l.purchase(t, 100, core.DefaultAssets...)
	require.NoError(t, err)

	l.inTx(t, func(tx pgx.Tx) error {
		failed, err := core.PayInFail(ctx, tx, factory.Step(), core.PayInFailParams{TenantID: l.tenant.ID, ID: payin.ID, Move: core.PayInMoveFailInvoiceCreation})
		require.NoError(t, err)
		require.Equal(t, sql.PayinFailureReasonINVOICECREATIONFAILED, *failed.FailureReason)
		return nil
	})
	require.Equal(t, int64(20), l.balance(t, sql.AssetCredits))
	require.Equal(t, int64(20), l.balance(t, sql.AssetRewardSats))
	refunds, err := queries.PayInRefunds(ctx, l.db, sql.PayInRefundsParams{TenantID: l.tenant.ID, PayInID: payin.ID})
	require.NoError(t, err)
	require.Len(t, refunds, 2)
	require.Equal(t, int64(20), refunds[0].BalanceAfter)
	l.requireInvariants(t)

	l.inTx(t, func(tx pgx.Tx) error {
		_, err := core.PayInFail(ctx, tx, factory.Step(), core.PayInFailParams{TenantID: l.tenant.ID, ID: payin.ID, Move: core.PayInMoveCancel})
		require.ErrorIs(t, err, core.ErrConflict, "a failed PayIn fails once, refunds once")
		return nil
	})
	require.Equal(t, int64(20), l.balance(t, sql.AssetCredits))
}

func TestPayInFiatConversion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newLedger(t, testdb.Tx(t), 0, 0)
	for _, tc := range []struct {
		cents, minorPerBTC, sats int64
	}{
		{2500, 5_000_000, 50_000}, // $25 at $50,000/BTC: exactly 50,000 sats
		{1, 5_000_000, 20},
		{3, 7_000_000, 43},         // 42.86 rounds up
		{7500, 6_543_210, 114_623}, // 114,622.16 rounds up
	} {
		l.inTx(t, func(tx pgx.Tx) error {
			payin, err := core.PayInCreate(ctx, tx, factory.Step(), core.PayInCreateParams{
				TenantID: l.tenant.ID, CustomerID: l.customer.ID, Type: sql.PayinTypeCreditPurchase, PriceCurrency: sql.CurrencyUSD, PriceValue: tc.cents,
				Rate: &payment.Rate{Currency: "USD", MinorPerBTC: tc.minorPerBTC, Source: "fixed"},
			})
			require.NoError(t, err)
			require.Equal(t, tc.sats, payin.CostSats, "%d cents at %d", tc.cents, tc.minorPerBTC)
			require.Equal(t, tc.minorPerBTC, *payin.RateMinorPerBTC)
			require.Equal(t, "fixed", *payin.RateSource)
			return nil
		})
	}
	l.inTx(t, func(tx pgx.Tx) error {
		_, err := core.PayInCreate(ctx, tx, factory.Step(), core.PayInCreateParams{
			TenantID: l.tenant.ID, CustomerID: l.customer.ID, Type: sql.PayinTypeCreditPurchase, PriceCurrency: sql.CurrencyEUR, PriceValue: 100,
			Rate: &payment.Rate{Currency: "USD", MinorPerBTC: 1, Source: "fixed"},
		})
		require.Error(t, err, "a rate of another currency is refused")
		return nil
	})
}

// TestPayInConcurrentDebits drains one balance from many connections at once: the balance
// ends at zero, never below, and every sat taken is in exactly one part.
func TestPayInConcurrentDebits(t *testing.T) {
	t.Parallel()
	pool, _ := testdb.Clone(t)
	l := newLedger(t, core.DB(pool), 100, 0)

	const n = 10
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := l.purchase(t, 30, sql.AssetCredits)
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.Equal(t, int64(0), l.balance(t, sql.AssetCredits))
	var taken int64
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT coalesce(sum(amount), 0) FROM payin_custodial_parts WHERE tenant_id = $1", l.tenant.ID).Scan(&taken))
	require.Equal(t, int64(100), taken)
	l.requireInvariants(t)
}

// TestPayInInvariantsProperty creates random PayIns from random balances and asset orders,
// fails or settles them at random, and checks the ledger after each step.
func TestPayInInvariantsProperty(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)
	rapid.Check(t, func(rt *rapid.T) {
		l := newLedger(t, tx, rapid.Int64Range(0, 500).Draw(rt, "credits"), rapid.Int64Range(0, 500).Draw(rt, "reward_sats"))
		assets := rapid.SliceOfDistinct(rapid.SampledFrom([]sql.Asset{sql.AssetCredits, sql.AssetRewardSats}), func(a sql.Asset) sql.Asset { return a }).Draw(rt, "assets")
		before := l.balance(t, sql.AssetCredits) + l.balance(t, sql.AssetRewardSats)
		cost := rapid.Int64Range(0, 1000).Draw(rt, "cost")

		payin, err := l.purchase(t, cost, assets...)
		require.NoError(t, err)
		after := l.balance(t, sql.AssetCredits) + l.balance(t, sql.AssetRewardSats)
		var usable int64
		for _, a := range assets {
			usable += map[sql.Asset]int64{sql.AssetCredits: l.credits0, sql.AssetRewardSats: l.rewardSats0}[a]
		}
		require.Equal(t, min(cost, usable), before-after, "takes the cost, or all it may")
		require.Equal(t, payin.State == sql.PayinStatePAID, before-after == cost)

		if payin.State == sql.PayinStatePENDINGINVOICECREATION {
			switch rapid.IntRange(0, 1).Draw(rt, "outcome") {
			case 0:
				require.NoError(t, pg.InTx(ctx, tx, func(tx pgx.Tx) error {
					_, err := core.PayInFail(ctx, tx, factory.Step(), core.PayInFailParams{TenantID: l.tenant.ID, ID: payin.ID, Move: core.PayInMoveFailInvoiceCreation})
					return err
				}))
				require.Equal(t, before, l.balance(t, sql.AssetCredits)+l.balance(t, sql.AssetRewardSats), "a failure refunds everything")
			default:
				overpaid := rapid.Int64Range(0, 50).Draw(rt, "overpaid")
				require.NoError(t, pg.InTx(ctx, tx, func(tx pgx.Tx) error {
					payin, _, err := core.PayInInvoiceCreated(ctx, tx, factory.Step(), core.PayInInvoiceParams{PayIn: payin, Provider: "btcpay",
						Invoice: payment.Invoice{ID: uuid.NewString(), CheckoutURL: "http://pay", AmountSats: cost - (before - after)}})
					if err != nil {
						return err
					}
					err = queries.PayInInvoiceClose(ctx, tx, sql.PayInInvoiceCloseParams{
						TenantID: l.tenant.ID, PayInID: payin.ID, PaidSats: ptr(cost - (before - after) + overpaid), Settled: true, Now: factory.Now,
					})
					if err != nil {
						return err
					}
					_, err = core.PayInPaid(ctx, tx, factory.Step(), core.PayInPaidParams{PayIn: payin, Move: core.PayInMovePay, OverpaidSats: overpaid})
					return err
				}))
			}
		}
		l.requireInvariants(t)
	})
}

func ptr[T any](v T) *T { return &v }

// fail fails a PayIn that has not been invoiced yet, refunding it.
func (l *ledger) fail(t *testing.T, payin sql.PayIn) sql.PayIn {
	t.Helper()
	l.inTx(t, func(tx pgx.Tx) error {
		var err error
		payin, err = core.PayInFail(context.Background(), tx, factory.Step(), core.PayInFailParams{TenantID: l.tenant.ID, ID: payin.ID, Move: core.PayInMoveCancel})
		return err
	})
	return payin
}

// retry retries a PayIn in its own transaction.
func (l *ledger) retry(t *testing.T, payin sql.PayIn, p core.PayInRetryParams) (sql.PayIn, error) {
	t.Helper()
	var successor sql.PayIn
	err := pg.InTx(context.Background(), l.db, func(tx pgx.Tx) error {
		var err error
		p.Failed = payin
		successor, err = core.PayInRetry(context.Background(), tx, factory.Step(), p)
		return err
	})
	return successor, err
}

func (l *ledger) get(t *testing.T, id uuid.UUID) sql.PayIn {
	t.Helper()
	payin, err := queries.PayInGet(context.Background(), l.db, sql.PayInGetParams{TenantID: l.tenant.ID, ID: id})
	require.NoError(t, err)
	return payin
}

func TestPayInRetry(t *testing.T) {
	t.Parallel()
	l := newLedger(t, testdb.Tx(t), 20, 0)
	first, err := l.purchase(t, 100, sql.AssetCredits)
	require.NoError(t, err)
	first = l.fail(t, first)
	require.Equal(t, int64(20), l.balance(t, sql.AssetCredits), "refunded")

	second, err := l.retry(t, first, core.PayInRetryParams{})
	require.NoError(t, err)
	require.Equal(t, sql.PayinStatePENDINGINVOICECREATION, second.State)
	require.Equal(t, []any{first.Type, first.CustomerID, first.PolicyID, first.PriceCurrency, first.PriceValue, first.CostSats},
		[]any{second.Type, second.CustomerID, second.PolicyID, second.PriceCurrency, second.PriceValue, second.CostSats})
	require.Equal(t, first.ID, second.GenesisID)
	require.Equal(t, int32(1), second.RetryCount)
	require.Equal(t, &second.ID, l.get(t, first.ID).SuccessorID)
	require.Equal(t, int64(20), l.balance(t, sql.AssetCredits), "no assets named: all by invoice")

	_, err = l.retry(t, first, core.PayInRetryParams{})
	require.ErrorIs(t, err, core.ErrConflict, "a PayIn is retried once")
	require.ErrorContains(t, err, "already retried by "+second.ID.String())

	third, err := l.retry(t, l.fail(t, second), core.PayInRetryParams{Assets: []sql.Asset{sql.AssetCredits}})
	require.NoError(t, err)
	require.Equal(t, first.ID, third.GenesisID, "the chain keeps its genesis")
	require.Equal(t, int32(2), third.RetryCount)
	require.Equal(t, int64(0), l.balance(t, sql.AssetCredits), "assets named: credits pay first")
	l.requireInvariants(t)
}

func TestPayInRetryRefused(t *testing.T) {
	t.Parallel()
	// setupRetries returns a ledger with a PayIn in each state a retry meets, by name.
	setupRetries := func(t *testing.T) (*ledger, map[string]sql.PayIn) {
		t.Helper()
		l := newLedger(t, testdb.Tx(t), 1000, 0)
		pending, err := l.purchase(t, 100)
		require.NoError(t, err)
		invoiced, err := l.purchase(t, 100)
		require.NoError(t, err)
		l.inTx(t, func(tx pgx.Tx) error {
			invoiced, _, err = core.PayInInvoiceCreated(context.Background(), tx, factory.Step(), core.PayInInvoiceParams{PayIn: invoiced, Provider: "btcpay",
				Invoice: payment.Invoice{ID: "inv-" + invoiced.ID.String(), AmountSats: 100, CheckoutURL: "http://pay/inv"}})
			return err
		})
		paid, err := l.purchase(t, 100, sql.AssetCredits)
		require.NoError(t, err)
		retried, err := l.purchase(t, 100)
		require.NoError(t, err)
		retried = l.fail(t, retried)
		_, err = l.retry(t, retried, core.PayInRetryParams{})
		require.NoError(t, err)
		failed := l.fail(t, pending)
		pending, err = l.purchase(t, 100)
		require.NoError(t, err)

		return l, map[string]sql.PayIn{"PendingInvoiceCreation": pending, "Pending": invoiced, "Paid": paid, "FailedAndRetried": retried, "Failed": failed}
	}

	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"PendingInvoiceCreation", false},
		{"Pending", false},
		{"Paid", false},
		{"FailedAndRetried", false},
		{"Failed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, payins := setupRetries(t)
			_, err := l.retry(t, payins[tc.name], core.PayInRetryParams{})
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, core.ErrConflict)
		})
	}
	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		l := newLedger(t, testdb.Tx(t), 1000, 0)
		_, err := l.retry(t, sql.PayIn{TenantID: l.tenant.ID, ID: core.NewID()}, core.PayInRetryParams{})
		require.ErrorIs(t, err, core.ErrNotFound)
	})

	t.Run("PolicyArchivedSince", func(t *testing.T) {
		t.Parallel()
		l := newLedger(t, testdb.Tx(t), 1000, 0)
		unsold, err := l.purchase(t, 100)
		require.NoError(t, err)
		unsold = l.fail(t, unsold)
		_, err = queries.PolicyArchive(context.Background(), l.db, sql.PolicyArchiveParams{Now: factory.Now, TenantID: l.tenant.ID, ID: l.policy.ID})
		require.NoError(t, err)
		_, err = l.retry(t, unsold, core.PayInRetryParams{})
		require.ErrorIs(t, err, core.ErrConflict)
		require.Nil(t, l.get(t, unsold.ID).SuccessorID)
		l.requireInvariants(t)
	})
}

func TestPayInRetryRequotes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newLedger(t, testdb.Tx(t), 0, 0)
	var first sql.PayIn
	l.inTx(t, func(tx pgx.Tx) error {
		var err error
		first, err = core.PayInCreate(ctx, tx, factory.Step(), core.PayInCreateParams{
			TenantID: l.tenant.ID, CustomerID: l.customer.ID, Type: sql.PayinTypeCreditPurchase, PriceCurrency: sql.CurrencyUSD, PriceValue: 2500,
			Rate: &payment.Rate{Currency: "USD", MinorPerBTC: 5_000_000, Source: "fixed"},
		})
		return err
	})
	require.Equal(t, int64(50_000), first.CostSats)
	second, err := l.retry(t, l.fail(t, first), core.PayInRetryParams{Rate: &payment.Rate{Currency: "USD", MinorPerBTC: 10_000_000, Source: "later"}})
	require.NoError(t, err)
	require.Equal(t, int64(25_000), second.CostSats, "$25 at the current $100,000/BTC")
	require.Equal(t, "later", *second.RateSource)
	require.Equal(t, sql.PayinTypeCreditPurchase, second.Type)
}

// TestPayInRetryConcurrent retries one FAILED PayIn from many connections at once: exactly
// one retry wins, the others are refused, and the chain has one successor.
func TestPayInRetryConcurrent(t *testing.T) {
	t.Parallel()
	pool, _ := testdb.Clone(t)
	l := newLedger(t, core.DB(pool), 0, 0)
	payin, err := l.purchase(t, 100)
	require.NoError(t, err)
	payin = l.fail(t, payin)

	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = l.retry(t, payin, core.PayInRetryParams{}) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		require.ErrorIs(t, err, core.ErrConflict)
	}
	require.Equal(t, 1, won)
	var successors int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM payins WHERE tenant_id = $1 AND genesis_id = $2 AND id <> $2",
		l.tenant.ID, payin.ID).Scan(&successors))
	require.Equal(t, 1, successors)
	l.requireInvariants(t)
}

func TestCreditGrant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newLedger(t, testdb.Tx(t), 30, 0)
	var (
		payin sql.PayIn
		after int64
	)
	l.inTx(t, func(tx pgx.Tx) error {
		var err error
		payin, after, err = core.CreditGrant(ctx, tx, factory.Step(), core.CreditGrantParams{TenantID: l.tenant.ID, CustomerID: l.customer.ID, Amount: 500, Reason: "apology for the outage"})
		return err
	})
	require.Equal(t, sql.PayinTypeCreditGrant, payin.Type)
	require.Equal(t, sql.PayinStatePAID, payin.State)
	require.Equal(t, int64(500), payin.CostSats)
	require.Equal(t, int64(530), after)
	require.Equal(t, int64(530), l.balance(t, sql.AssetCredits))

	parts, err := queries.PayInParts(ctx, l.db, sql.PayInPartsParams{TenantID: l.tenant.ID, PayInID: payin.ID})
	require.NoError(t, err)
	require.Empty(t, parts, "the tenant funds a grant: nothing is debited")
	payouts, err := queries.PayInPayouts(ctx, l.db, sql.PayInPayoutsParams{TenantID: l.tenant.ID, PayInID: payin.ID})
	require.NoError(t, err)
	require.Len(t, payouts, 1)
	require.Equal(t, sql.PayoutTypeCreditGrant, payouts[0].Type)
	require.Equal(t, &l.customer.ID, payouts[0].EarnerCustomerID)
	require.Equal(t, []any{"credits", int64(500), int64(530)}, []any{payouts[0].Asset, payouts[0].Amount, *payouts[0].BalanceAfter})

	var reason string
	require.NoError(t, l.db.QueryRow(ctx, "SELECT details->>'reason' FROM audit_log WHERE tenant_id = $1 AND action = 'credit.grant' AND subject_id = $2",
		l.tenant.ID, l.customer.ID.String()).Scan(&reason))
	require.Equal(t, "apology for the outage", reason)
	var events int
	require.NoError(t, l.db.QueryRow(ctx, "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'payin.paid' AND data->>'payin_id' = $2",
		l.tenant.ID, payin.ID.String()).Scan(&events))
	require.Equal(t, 1, events)
	l.requireInvariants(t)

	for _, amount := range []int64{0, -1, core.CreditGrantMax + 1} {
		l.inTx(t, func(tx pgx.Tx) error {
			_, _, err := core.CreditGrant(ctx, tx, factory.Step(), core.CreditGrantParams{TenantID: l.tenant.ID, CustomerID: l.customer.ID, Amount: amount})
			require.ErrorIs(t, err, core.ErrInvalid, "amount %d", amount)
			return nil
		})
	}
	l.inTx(t, func(tx pgx.Tx) error {
		_, err := core.PayInCreate(ctx, tx, factory.Step(), core.PayInCreateParams{
			TenantID: l.tenant.ID, CustomerID: l.customer.ID, Type: sql.PayinTypeCreditGrant, PriceCurrency: sql.CurrencySAT, PriceValue: 10,
		})
		require.ErrorIs(t, err, core.ErrInvalid, "a grant is not bought")
		return nil
	})

	// The invariant query treats grants explicitly: a grant with a custodial part is caught.
	_, err = l.db.Exec(ctx, "INSERT INTO payin_custodial_parts (tenant_id, payin_id, asset, amount, balance_after) VALUES ($1, $2, 'credits', 1, 0)",
		l.tenant.ID, payin.ID)
	require.NoError(t, err)
	violations, err := queries.PayInInvariantViolations(ctx, l.db, l.tenant.ID)
	require.NoError(t, err)
	require.Len(t, violations, 1)
	require.Equal(t, "credit grant not funded by the tenant alone", violations[0].Violation)
}

func TestPayInStatistics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// setupStatistics returns a ledger with PayIns in and out of the range, its other
	// customer, the later step, and the statistics of the range up to a time.
	setupStatistics := func(t *testing.T) (l *ledger, other sql.Customer, later core.Step, stats func(*uuid.UUID, time.Time) ([]sql.PayInStatisticsSpentRow, []sql.PayInStatisticsEarnedRow)) {
		t.Helper()
		l = newLedger(t, testdb.Tx(t), 20, 20)
		other = factory.Customer(t, l.db, l.tenant.ID)
		later = factory.Step()
		later.Now = factory.Now.Add(48 * time.Hour)

		// In range: a mixed payment of 100 (20 credits, 20 reward sats, an invoice of 60 that
		// received 65), a grant of 300, and a failed PayIn; a grant to another customer later.
		mixed, err := l.purchase(t, 100, core.DefaultAssets...)
		require.NoError(t, err)
		l.inTx(t, func(tx pgx.Tx) error {
			mixed, _, err := core.PayInInvoiceCreated(ctx, tx, factory.Step(), core.PayInInvoiceParams{PayIn: mixed, Provider: "btcpay",
				Invoice: payment.Invoice{ID: uuid.NewString(), CheckoutURL: "http://pay", AmountSats: 60}})
			require.NoError(t, err)
			require.NoError(t, queries.PayInInvoiceClose(ctx, tx, sql.PayInInvoiceCloseParams{
				TenantID: l.tenant.ID, PayInID: mixed.ID, PaidSats: ptr(int64(65)), Settled: true, Now: factory.Now,
			}))
			_, err = core.PayInPaid(ctx, tx, factory.Step(), core.PayInPaidParams{PayIn: mixed, Move: core.PayInMovePay, OverpaidSats: 5})
			require.NoError(t, err)
			_, _, err = core.CreditGrant(ctx, tx, factory.Step(), core.CreditGrantParams{TenantID: l.tenant.ID, CustomerID: l.customer.ID, Amount: 300})
			require.NoError(t, err)
			_, _, err = core.CreditGrant(ctx, tx, later, core.CreditGrantParams{TenantID: l.tenant.ID, CustomerID: other.ID, Amount: 1000})
			return err
		})
		failed, err := l.purchase(t, 50)
		require.NoError(t, err)
		l.fail(t, failed)
		l.requireInvariants(t)

		from := factory.Now.Add(-time.Hour)
		stats = func(customerID *uuid.UUID, to time.Time) ([]sql.PayInStatisticsSpentRow, []sql.PayInStatisticsEarnedRow) {
			spent, err := queries.PayInStatisticsSpent(ctx, l.db, sql.PayInStatisticsSpentParams{TenantID: l.tenant.ID, CustomerID: customerID, FromTime: from, ToTime: to})
			require.NoError(t, err)
			earned, err := queries.PayInStatisticsEarned(ctx, l.db, sql.PayInStatisticsEarnedParams{TenantID: l.tenant.ID, CustomerID: customerID, FromTime: from, ToTime: to})
			require.NoError(t, err)
			return spent, earned
		}
		return l, other, later, stats
	}
	to := factory.Now.Add(time.Hour)
	purchaseRow := sql.PayInStatisticsSpentRow{Type: "license_purchase", PayIns: 1, CostSats: 100, Credits: 20, RewardSats: 20, InvoiceSats: 60}
	grantRow := sql.PayInStatisticsSpentRow{Type: "credit_grant", PayIns: 1, CostSats: 300, GrantedSats: 300}

	t.Run("Customer", func(t *testing.T) {
		t.Parallel()
		l, _, _, stats := setupStatistics(t)
		spent, earned := stats(&l.customer.ID, to)
		require.Equal(t, []sql.PayInStatisticsSpentRow{purchaseRow, grantRow}, spent)
		require.Equal(t, []sql.PayInStatisticsEarnedRow{
			{Type: "overpay_spillover", Asset: "credits", Payouts: 1, Amount: 5},
			{Type: "credit_grant", Asset: "credits", Payouts: 1, Amount: 300},
		}, earned, "the customer's earnings: not the tenant's revenue")
	})
	t.Run("Tenant", func(t *testing.T) {
		t.Parallel()
		_, _, _, stats := setupStatistics(t)
		spent, earned := stats(nil, to)
		require.Equal(t, []sql.PayInStatisticsSpentRow{purchaseRow, grantRow}, spent)
		require.Equal(t, []sql.PayInStatisticsEarnedRow{
			{Type: "tenant_revenue", Asset: "sats", Payouts: 1, Amount: 100},
			{Type: "overpay_spillover", Asset: "credits", Payouts: 1, Amount: 5},
			{Type: "credit_grant", Asset: "credits", Payouts: 1, Amount: 300},
		}, earned)
	})
	t.Run("WiderRange", func(t *testing.T) {
		t.Parallel()
		_, _, later, stats := setupStatistics(t)
		spent, earned := stats(nil, later.Now.Add(time.Second))
		require.Equal(t, sql.PayInStatisticsSpentRow{Type: "credit_grant", PayIns: 2, CostSats: 1300, GrantedSats: 1300}, spent[1])
		require.Equal(t, int64(1300), earned[2].Amount)
	})
	t.Run("OtherCustomerOutOfRange", func(t *testing.T) {
		t.Parallel()
		_, other, _, stats := setupStatistics(t)
		spent, earned := stats(&other.ID, to)
		require.Empty(t, spent)
		require.Empty(t, earned)
	})
}
