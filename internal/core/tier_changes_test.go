package core_test

import (
	"context"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// expectedUpgradeCharge is the proration rule of SPEC 4.2 as the README states it, in exact
// integer arithmetic: the days left in the paid period, a started day counting, times the
// difference per day, rounded down, never negative.
func expectedUpgradeCharge(periodEnd, now time.Time, oldValue, oldDays, newValue, newDays int64) (int64, int64) {
	left := periodEnd.Sub(now)
	remaining := int64(left / (24 * time.Hour))
	if left%(24*time.Hour) > 0 {
		remaining++
	}
	remaining = max(0, min(remaining, oldDays))
	diff := new(big.Int).Sub(big.NewInt(newValue*oldDays), big.NewInt(oldValue*newDays))
	charge := new(big.Int).Mul(big.NewInt(remaining), diff)
	charge.Div(charge, big.NewInt(newDays*oldDays)) // Euclidean: rounds down for a positive divisor
	if charge.Sign() < 0 {
		return remaining, 0
	}
	return remaining, charge.Int64()
}

// setupQuotes is a tenant with a customer in a rolled-back transaction.
func setupQuotes(t *testing.T) (pg.DB, sql.Tenant, sql.Customer) {
	t.Helper()
	tx := testdb.Tx(t)
	tenant := factory.Tenant(t, tx)
	return tx, tenant, factory.Customer(t, tx, tenant.ID)
}

// TestTierChangeQuoteProration: for any prices, periods and moment, the SQL quote of an
// upgrade equals the rule computed exactly in Go, and never exceeds the new tier's price for
// the days left.
func TestTierChangeQuoteProration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx, tenant, customer := setupQuotes(t)

	rapid.Check(t, func(rt *rapid.T) {
		oldDays := rapid.Int32Range(1, 400).Draw(rt, "old_period_days")
		newDays := rapid.Int32Range(1, 400).Draw(rt, "new_period_days")
		oldValue := rapid.Int64Range(0, 1_000_000_000).Draw(rt, "old_price")
		newValue := rapid.Int64Range(0, 1_000_000_000).Draw(rt, "new_price")
		elapsed := time.Duration(rapid.Int64Range(0, int64(oldDays+3)*86400).Draw(rt, "elapsed_seconds")) * time.Second

		product := factory.Product(t, tx, tenant.ID)
		from := factory.Policy(t, tx, tenant.ID, factory.PolicyProduct(product.ID), factory.PolicyTierRank(1),
			factory.PolicyRecurring(oldDays), factory.PolicyPrice(sql.CurrencyEUR, oldValue))
		to := factory.Policy(t, tx, tenant.ID, factory.PolicyProduct(product.ID), factory.PolicyTierRank(2),
			factory.PolicyRecurring(newDays), factory.PolicyPrice(sql.CurrencyEUR, newValue))
		sub, license := factory.Subscription(t, tx, tenant.ID, from.ID, customer.ID)

		now := factory.Now.Add(elapsed)
		q, err := core.TierChangeQuote(ctx, tx, core.TierChangeQuoteParams{TenantID: tenant.ID, LicenseID: license.ID, ToPolicyID: to.ID, Path: core.TierAdmin, Now: now})
		require.NoError(t, err)
		remaining, charge := expectedUpgradeCharge(sub.CurrentPeriodEnd, now, oldValue, int64(oldDays), newValue, int64(newDays))
		require.Equal(t, "upgrade", q.Direction)
		require.Equal(t, int32(remaining), q.RemainingDays)
		require.Equal(t, charge, q.ChargeValue)
		require.LessOrEqual(t, q.ChargeValue*int64(newDays), remaining*newValue, "never more than the new tier's price for the days left")
		require.Equal(t, now, q.EffectiveAt.UTC())
	})
}

// TestTierChangeQuotePerpetual: a perpetual upgrade is the flat difference, never negative,
// and the direction follows the rank before the price.
func TestTierChangeQuotePerpetual(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx, tenant, customer := setupQuotes(t)

	rapid.Check(t, func(rt *rapid.T) {
		oldRank, newRank := rapid.Int32Range(0, 3).Draw(rt, "old_rank"), rapid.Int32Range(0, 3).Draw(rt, "new_rank")
		oldValue, newValue := rapid.Int64Range(0, 100_000).Draw(rt, "old_price"), rapid.Int64Range(0, 100_000).Draw(rt, "new_price")
		product := factory.Product(t, tx, tenant.ID)
		from := factory.Policy(t, tx, tenant.ID, factory.PolicyProduct(product.ID), factory.PolicyTierRank(oldRank), factory.PolicyPrice(sql.CurrencyUSD, oldValue))
		to := factory.Policy(t, tx, tenant.ID, factory.PolicyProduct(product.ID), factory.PolicyTierRank(newRank), factory.PolicyPrice(sql.CurrencyUSD, newValue))
		license := factory.License(t, tx, tenant.ID, from.ID, customer.ID)

		q, err := core.TierChangeQuote(ctx, tx, core.TierChangeQuoteParams{TenantID: tenant.ID, LicenseID: license.ID, ToPolicyID: to.ID, Path: core.TierAdmin, Now: factory.Now})
		require.NoError(t, err)
		direction := "none"
		switch {
		case newRank > oldRank || newRank == oldRank && newValue > oldValue:
			direction = "upgrade"
		case newRank < oldRank || newValue < oldValue:
			direction = "downgrade"
		}
		require.Equal(t, direction, q.Direction)
		if direction == "upgrade" {
			require.Equal(t, max(0, newValue-oldValue), q.ChargeValue)
		} else {
			require.Zero(t, q.ChargeValue)
		}
		require.Zero(t, q.RemainingDays)
	})
}
