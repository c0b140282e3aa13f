package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// TestLiveSweepsLeaveSandboxesAlone runs the live renewal, lapse and licence-expiry sweeps a
// year after two tenants subscribed: the live tenant's subscription is renewed, lapsed and
// its licence expired, while the sandbox tenant's, due by real time but not by its clock
// (still at the purchase), is left as it was.
func TestLiveSweepsLeaveSandboxesAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := core.Tx(testdb.Tx(t))
	live := factory.Tenant(t, tx)
	sandbox := factory.SandboxTenant(t, tx, factory.Now)
	type fixture struct {
		sub     sql.Subscription
		license sql.License
	}
	fixtures := map[string]fixture{}
	for name, tenant := range map[string]sql.Tenant{"live": live, "sandbox": sandbox} {
		policy := factory.Policy(t, tx, tenant.ID, factory.PolicyRecurring(30))
		customer := factory.Customer(t, tx, tenant.ID)
		sub, _ := factory.Subscription(t, tx, tenant.ID, policy.ID, customer.ID)
		expiresAt := factory.Now.Add(24 * time.Hour)
		license := factory.License(t, tx, tenant.ID, factory.Policy(t, tx, tenant.ID).ID, customer.ID,
			func(p *core.LicenseIssueParams) { p.ExpiresAt = &expiresAt })
		fixtures[name] = fixture{sub: sub, license: license}
	}
	st := factory.Step()
	st.Now = factory.Now.AddDate(1, 0, 0)

	// Renewals.
	{
		_, err := core.SubscriptionRenewSweep(ctx, tx, st, core.SubscriptionRenewSweepParams{Batch: 1000, Quotes: core.RenewalQuotes(ctx, factory.Rates(t))})
		require.NoError(t, err)
		for name, f := range fixtures {
			cycles, err := sql.New().SubscriptionCycles(ctx, tx, sql.SubscriptionCyclesParams{TenantID: f.sub.TenantID, SubscriptionID: f.sub.ID})
			require.NoError(t, err)
			require.Len(t, cycles, map[string]int{"live": 1, "sandbox": 0}[name], name)
		}
	}

	// Lapses.
	{
		_, err := tx.Exec(ctx, "UPDATE subscriptions SET status = 'past_due' WHERE tenant_id = ANY($1)", []uuid.UUID{live.ID, sandbox.ID})
		require.NoError(t, err)
		_, err = core.SubscriptionLapseSweep(ctx, tx, st, 1000)
		require.NoError(t, err)
		for name, f := range fixtures {
			got, err := sql.New().SubscriptionGet(ctx, tx, sql.SubscriptionGetParams{TenantID: f.sub.TenantID, ID: f.sub.ID})
			require.NoError(t, err)
			require.Equal(t, map[string]sql.SubscriptionStatus{"live": "lapsed", "sandbox": "past_due"}[name], got.Status, name)
		}
	}

	// Licence expiry.
	{
		_, err := core.LicenseExpireSweep(ctx, tx, st, 1000)
		require.NoError(t, err)
		for name, f := range fixtures {
			got, err := sql.New().LicenseGet(ctx, tx, sql.LicenseGetParams{TenantID: f.license.TenantID, ID: f.license.ID})
			require.NoError(t, err)
			require.Equal(t, map[string]sql.LicenseStatus{"live": "expired", "sandbox": "active"}[name], got.Status, name)
		}
	}
}
