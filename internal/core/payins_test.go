package core_test

import (
	"context"
	"sync"
	"testing"

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
		payin, err = core.PayInCreate(context.Background(), tx, factory.Step(), l.tenant.ID, core.PayInCreateParams{
			CustomerID: l.customer.ID, Type: sql.PayinTypeLicensePurchase, PriceCurrency: sql.CurrencySAT, PriceValue: price,
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
	parts, err := queries.PayInParts(ctx, l.db, sql.PayInPartsParams{TenantID: l.tenant.ID, PayinID: payin.ID})
	require.NoError(t, err)
	require.Len(t, parts, 2)
	require.Equal(t, sql.AssetCredits, parts[0].Asset)
	require.Equal(t, []int64{20, 0}, []int64{parts[0].Amount, parts[0].BalanceAfter})
	require.Equal(t, []int64{20, 0}, []int64{parts[1].Amount, parts[1].BalanceAfter})
	var jobs int
	require.NoError(t, l.db.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = 'payin.create_invoice' AND args->>'payin_id' = $1", payin.ID.String()).Scan(&jobs))
	require.Equal(t, 1, jobs, "invoice creation is enqueued with the PayIn")

	pending := []sql.PayInState{sql.PayinStatePENDING}
	l.inTx(t, func(tx pgx.Tx) error {
		_, err := core.PayInPaid(ctx, tx, factory.Step(), payin, pending, 0)
		require.ErrorIs(t, err, core.ErrConflict, "not before the invoice exists")
		return nil
	})
	l.inTx(t, func(tx pgx.Tx) error {
		var err error
		payin, _, err = core.PayInInvoiceCreated(ctx, tx, factory.Step(), payin, "btcpay",
			payment.Invoice{ID: "inv-" + payin.ID.String(), AmountSats: 60, CheckoutURL: "http://pay/inv"})
		return err
	})
	require.Equal(t, sql.PayinStatePENDING, payin.State)
	l.requireInvariants(t)
	l.inTx(t, func(tx pgx.Tx) error {
		var err error
		payin, err = core.PayInPaid(ctx, tx, factory.Step(), payin, pending, 0)
		return err
	})
	require.Equal(t, sql.PayinStatePAID, payin.State)
	require.NotNil(t, payin.LicenseID)
	payouts, err := queries.PayInPayouts(ctx, l.db, sql.PayInPayoutsParams{TenantID: l.tenant.ID, PayinID: payin.ID})
	require.NoError(t, err)
	require.Len(t, payouts, 1)
	require.Equal(t, int64(100), payouts[0].Amount)
	transitions, err := queries.PayInTransitions(ctx, l.db, sql.PayInTransitionsParams{TenantID: l.tenant.ID, PayinID: payin.ID})
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

	payouts, err := queries.PayInPayouts(ctx, l.db, sql.PayInPayoutsParams{TenantID: l.tenant.ID, PayinID: payin.ID})
	require.NoError(t, err)
	require.Len(t, payouts, 1)
	require.Equal(t, sql.PayoutTypeTenantRevenue, payouts[0].Type)
	require.Equal(t, int64(100), payouts[0].Amount)
	transitions, err := queries.PayInTransitions(ctx, l.db, sql.PayInTransitionsParams{TenantID: l.tenant.ID, PayinID: payin.ID})
	require.NoError(t, err)
	require.Len(t, transitions, 2)
	require.Equal(t, sql.PayinStatePAID, transitions[1].ToState)
	l.requireInvariants(t)

	l.inTx(t, func(tx pgx.Tx) error {
		_, err := core.PayInPaid(ctx, tx, factory.Step(), payin, []sql.PayInState{sql.PayinStatePENDING, sql.PayinStatePENDINGINVOICECREATION}, 0)
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
		failed, err := core.PayInFail(ctx, tx, factory.Step(), l.tenant.ID, payin.ID,
			[]sql.PayInState{sql.PayinStatePENDINGINVOICECREATION}, sql.PayinFailureReasonINVOICECREATIONFAILED, 0)
		require.NoError(t, err)
		require.Equal(t, sql.PayinFailureReasonINVOICECREATIONFAILED, *failed.FailureReason)
		return nil
	})
	require.Equal(t, int64(20), l.balance(t, sql.AssetCredits))
	require.Equal(t, int64(20), l.balance(t, sql.AssetRewardSats))
	refunds, err := queries.PayInRefunds(ctx, l.db, sql.PayInRefundsParams{TenantID: l.tenant.ID, PayinID: payin.ID})
	require.NoError(t, err)
	require.Len(t, refunds, 2)
	require.Equal(t, int64(20), refunds[0].BalanceAfter)
	l.requireInvariants(t)

	l.inTx(t, func(tx pgx.Tx) error {
		_, err := core.PayInFail(ctx, tx, factory.Step(), l.tenant.ID, payin.ID,
			[]sql.PayInState{sql.PayinStatePENDINGINVOICECREATION, sql.PayinStatePENDING}, sql.PayinFailureReasonUSERCANCELLED, 0)
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
			payin, err := core.PayInCreate(ctx, tx, factory.Step(), l.tenant.ID, core.PayInCreateParams{
				CustomerID: l.customer.ID, Type: sql.PayinTypeCreditPurchase, PriceCurrency: sql.CurrencyUSD, PriceValue: tc.cents,
				Rate: &payment.Rate{Currency: "USD", MinorPerBTC: tc.minorPerBTC, Source: "fixed"},
			})
			require.NoError(t, err)
			require.Equal(t, tc.sats, payin.CostSats, "%d cents at %d", tc.cents, tc.minorPerBTC)
			require.Equal(t, tc.minorPerBTC, *payin.RateMinorPerBtc)
			require.Equal(t, "fixed", *payin.RateSource)
			return nil
		})
	}
	l.inTx(t, func(tx pgx.Tx) error {
		_, err := core.PayInCreate(ctx, tx, factory.Step(), l.tenant.ID, core.PayInCreateParams{
			CustomerID: l.customer.ID, Type: sql.PayinTypeCreditPurchase, PriceCurrency: sql.CurrencyEUR, PriceValue: 100,
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
	l := newLedger(t, pool, 100, 0)

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
					_, err := core.PayInFail(ctx, tx, factory.Step(), l.tenant.ID, payin.ID,
						[]sql.PayInState{sql.PayinStatePENDINGINVOICECREATION}, sql.PayinFailureReasonINVOICECREATIONFAILED, 0)
					return err
				}))
				require.Equal(t, before, l.balance(t, sql.AssetCredits)+l.balance(t, sql.AssetRewardSats), "a failure refunds everything")
			default:
				overpaid := rapid.Int64Range(0, 50).Draw(rt, "overpaid")
				require.NoError(t, pg.InTx(ctx, tx, func(tx pgx.Tx) error {
					_, err := queries.PayInInvoiceAttach(ctx, tx, sql.PayInInvoiceAttachParams{
						TenantID: l.tenant.ID, PayinID: payin.ID, Provider: "btcpay", ProviderInvoiceID: uuid.NewString(),
						CheckoutUrl: "http://pay", AmountSats: cost - (before - after), Now: factory.Now,
					})
					if err != nil {
						return err
					}
					err = queries.PayInInvoiceClose(ctx, tx, sql.PayInInvoiceCloseParams{
						TenantID: l.tenant.ID, PayinID: payin.ID, PaidSats: ptr(cost - (before - after) + overpaid), Settled: true, Now: factory.Now,
					})
					if err != nil {
						return err
					}
					_, err = core.PayInPaid(ctx, tx, factory.Step(), payin, []sql.PayInState{sql.PayinStatePENDINGINVOICECREATION}, overpaid)
					return err
				}))
			}
		}
		l.requireInvariants(t)
	})
}

func ptr[T any](v T) *T { return &v }
