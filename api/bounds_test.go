package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

// TestAmountBounds sets the largest amounts and counts a tenant may, and the first ones past
// them. A policy priced at 2^63-1 was accepted, and every purchase of it then failed with
// "bigint out of range".
func TestAmountBounds(t *testing.T) {
	t.Parallel()

	t.Run("Policies", func(t *testing.T) {
		t.Parallel()
		// setupPolicies returns a bundle with a product, a function creating a policy of it
		// with fields, and the id of a policy created at the lower bounds.
		setupPolicies := func(t *testing.T) (b *bundle, productID uuid.UUID, create func(slug, fields string) response, id string) {
			t.Helper()
			b = setup(t)
			productID = factory.Product(t, b.db, b.tenant.ID).ID
			create = func(slug, fields string) response {
				return b.request(t, http.MethodPost, "/v1/admin/policies", fmt.Sprintf(
					`{"product_id":%q,"slug":%q,"name":"P","listed_currency":"USD","is_recurring":false,%s}`, productID, slug, fields))
			}
			res := create("max", `"listed_value":1000000000000,"max_machines":1000000,"tier_rank":1000000`)
			require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
			res = create("min", `"listed_value":0,"max_machines":0,"tier_rank":-1000000`)
			require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
			return b, productID, create, decode[struct{ ID string }](t, res).ID
		}
		setupPolicies(t)

		for _, tc := range []struct{ name, field, location string }{
			{"PriceOverMaximum", `"listed_value":1000000000001`, "body.listed_value"},
			{"PriceMaxInt64", `"listed_value":9223372036854775807`, "body.listed_value"},
			{"MachinesOverMaximum", `"max_machines":1000001`, "body.max_machines"},
			{"RankOverMaximum", `"tier_rank":1000001`, "body.tier_rank"},
			{"RankUnderMinimum", `"tier_rank":-1000001`, "body.tier_rank"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				b, _, create, id := setupPolicies(t)
				res := create("x", `"listed_value":1,`+tc.field)
				requireProblem(t, res, http.StatusUnprocessableEntity)
				require.Equal(t, tc.location, decode[errorsOf](t, res).Errors[0].Location)
				res = b.request(t, http.MethodPatch, "/v1/admin/policies/"+id, "{"+tc.field+"}")
				requireProblem(t, res, http.StatusUnprocessableEntity)
				require.Equal(t, tc.location, decode[errorsOf](t, res).Errors[0].Location)
			})
		}

		t.Run("DatabaseRefusesThemToo", func(t *testing.T) {
			t.Parallel()
			b, productID, _, _ := setupPolicies(t)
			for name, params := range map[string]sql.PolicyCreateParams{
				"policies_listed_value_max": {ListedValue: 1_000_000_000_001},
				"policies_max_machines_max": {MaxMachines: ptr[int32](1_000_001)},
				"policies_tier_rank_range":  {TierRank: -1_000_001},
			} {
				params.TenantID, params.ID, params.ProductID, params.Slug, params.Name = b.tenant.ID, core.NewID(), productID, "db", "P"
				params.ListedCurrency, params.Entitlements, params.Now = sql.CurrencySAT, []string{}, factory.Now
				tx, err := b.db.Begin(context.Background())
				require.NoError(t, err)
				_, err = sql.New().PolicyCreate(context.Background(), tx, params)
				require.NoError(t, tx.Rollback(context.Background()))
				var pgErr *pgconn.PgError
				require.True(t, errors.As(err, &pgErr), "%s: %v", name, err)
				require.Equal(t, name, pgErr.ConstraintName)
				require.ErrorIs(t, err, core.ErrInvalid)
			}
		})
	})

	for _, tc := range []struct {
		currency sql.Currency
		sats     int64
	}{
		{sql.CurrencyUSD, 20_000_000_000_000}, // 10^12 cents at $50,000.00 per BTC
		{sql.CurrencyEUR, 22_222_222_222_223}, // 10^12 cents at €45,000.00 per BTC, rounded up
		{sql.CurrencySAT, 1_000_000_000_000},
	} {
		t.Run("PurchaseAtMaximumPrice"+string(tc.currency), func(t *testing.T) {
			t.Parallel()
			s := setupShop(t, 1_000_000_000_000, tc.currency)
			p := s.await(t, s.purchase(t, "").ID, "PENDING")
			require.Equal(t, tc.sats, p.CostSats)
			require.Equal(t, tc.sats, p.Invoice.AmountSats)
			require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, tc.sats))
			require.Equal(t, http.StatusOK, s.webhook(t, p.Invoice.InvoiceID, "InvoiceSettled").status)
			require.NotEmpty(t, s.await(t, p.ID, "PAID").LicenseKey)
			s.requireInvariants(t)
		})
	}

	t.Run("ReferralBonusCapped", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		referrer := referrals(t, b, 3)
		b.clock.Advance(8 * day)
		res := b.request(t, http.MethodPatch, "/v1/admin/referrals/settings", `{"batch_size":1,"bonus_per_batch":1000000}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		got := decode[api.ReferralSnapshot](t, b.request(t, http.MethodGet, "/v1/admin/customers/"+referrer.ID.String()+"/referrals", ""))
		require.Equal(t, int32(3), got.QualifiedTotal)
		require.Equal(t, int32(1_000_000), got.BonusUnits, "3 batches of 1,000,000, capped so that max_machines plus the bonus fits an integer")
	})

	t.Run("BalanceAtMostAllBitcoin", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		customer := factory.Customer(t, b.db, b.tenant.ID)
		_, err := sql.New().BalanceCredit(context.Background(), b.db, sql.BalanceCreditParams{
			TenantID: b.tenant.ID, CustomerID: customer.ID, Asset: sql.AssetCredits, Amount: 2_100_000_000_000_000 - 1, Now: factory.Now,
		})
		require.NoError(t, err)
		path := "/v1/admin/customers/" + customer.ID.String() + "/credits"
		res := b.request(t, http.MethodPost, path, `{"amount":1}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		require.Equal(t, int64(2_100_000_000_000_000), decode[creditGrant](t, res).BalanceAfter)
		p := requireProblem(t, b.request(t, http.MethodPost, path, `{"amount":1}`), http.StatusUnprocessableEntity)
		require.Contains(t, p.Detail, "balances_max")
	})
}
