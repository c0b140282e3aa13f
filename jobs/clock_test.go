package jobs

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// TestClockAdvanceWorker runs a sandbox's advance in clock.advance jobs of two things each:
// every run that leaves the advance running enqueues the next, the last one none, and the
// advance ends where one long run ends it: fiat renewals quoted at the rate source's rate,
// and, while the rates are down, failed and backed off as live renewals are.
func TestClockAdvanceWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, down := range []bool{false, true} {
		t.Run(map[bool]string{false: "RatesUp", true: "RatesDown"}[down], func(t *testing.T) {
			t.Parallel()
			tx := core.Tx(testdb.Tx(t))
			b := setupRenewals(t, tx)
			b.rates.set(down)
			b.cfg.Batches.ClockAdvance = 2
			w := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &ClockAdvanceWorker{cfg: b.cfg})
			tenant := factory.SandboxTenant(t, tx, factory.Now)
			policy := factory.Policy(t, tx, tenant.ID, factory.PolicyRecurring(30), factory.PolicyPrice(sql.CurrencyUSD, 1000), factory.PolicyGraceDays(7))
			for range 3 {
				factory.Subscription(t, tx, tenant.ID, policy.ID, factory.Customer(t, tx, tenant.ID).ID)
			}
			var advance sql.ClockAdvance
			require.NoError(t, pg.InTx(ctx, tx, func(tx pgx.Tx) (err error) {
				advance, err = core.ClockAdvanceStart(ctx, tx, factory.Step(), core.ClockAdvanceParams{TenantID: tenant.ID, By: "31d"})
				return err
			}))

			args := jobargs.ClockAdvance{TenantID: tenant.ID, AdvanceID: advance.ID, Run: 1}
			for ; ; args.Run++ {
				_, err := w.Work(ctx, t, tx, args, nil)
				require.NoError(t, err)
				advance, err = sql.New().ClockAdvanceGet(ctx, tx, sql.ClockAdvanceGetParams{TenantID: tenant.ID, ID: advance.ID})
				require.NoError(t, err)
				var next int
				require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'clock.advance'
					AND args @> jsonb_build_object('advance_id', $1::uuid, 'run', $2::int)`, advance.ID, args.Run+1).Scan(&next))
				if advance.Status == sql.ClockAdvanceStatusSucceeded {
					require.Zero(t, next, "the last run enqueues none")
					break
				}
				require.Equal(t, 1, next, "run %d enqueued the next", args.Run)
				require.Less(t, args.Run, 20)
			}
			require.GreaterOrEqual(t, args.Run, 2, "two things a run")
			require.True(t, factory.Now.AddDate(0, 0, 31).Equal(advance.ClockAt))
			var sats, failures int64
			require.NoError(t, tx.QueryRow(ctx, `SELECT coalesce(sum(p.cost_sats), 0), (SELECT sum(consecutive_failures) FROM subscriptions WHERE tenant_id = $1)
				FROM payins p WHERE p.tenant_id = $1`, tenant.ID).Scan(&sats, &failures))
			if down {
				require.Zero(t, advance.RenewalsStarted)
				require.Positive(t, advance.RenewalsFailed)
				require.Positive(t, failures, "backed off")
				require.Zero(t, sats)
				return
			}
			require.Equal(t, int32(3), advance.RenewalsStarted)
			require.Zero(t, advance.RenewalsFailed)
			require.Equal(t, 3*int64(20000), sats, "$10 at the fixed $50,000/BTC")

			// A run of an advance that has succeeded changes nothing.
			_, err := w.Work(ctx, t, tx, args, nil)
			require.NoError(t, err)
			again, err := sql.New().ClockAdvanceGet(ctx, tx, sql.ClockAdvanceGetParams{TenantID: tenant.ID, ID: advance.ID})
			require.NoError(t, err)
			require.Equal(t, advance, again)
		})
	}
}
