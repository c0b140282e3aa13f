package upstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

// TestRecordCheckGoneWaitsForImportOfSameOwner interleaves a gone check of an owner's
// licence with an import of two more licences of the same owner, in the order that
// deadlocked when the check locked the licence before the owner's aggregates: the import
// holds the aggregates (its first licence), the check waits for them, then the import's
// second licence, acquired after the checked licence's bound was anchored, recomputes that
// bound (upstream_owner_stats_bounds). Both must commit: the check waits for the import.
func TestRecordCheckGoneWaitsForImportOfSameOwner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testdb.Clone(t)
	tenant := factory.Tenant(t, pool)
	store := factory.UpstreamStore(t, pool, tenant.ID, "https://store.example.com", "k")
	st := factory.Step()
	importRows := func(tx pgx.Tx, now time.Time, rows ...upstream.Row) {
		st := st
		st.Now = now
		im, err := upstream.NewImporter(ctx, tx, st, upstream.ImporterParams{TenantID: tenant.ID, StoreID: store.ID})
		require.NoError(t, err)
		for i, r := range rows {
			require.NoError(t, im.Import(ctx, i, r))
		}
	}
	require.NoError(t, pg.InTx(ctx, core.DB(pool), func(tx pgx.Tx) error {
		importRows(tx, factory.Now, factory.UpstreamRow("checked", "owner", factory.Now.Add(-100*time.Hour)))
		return nil
	}))
	var licenseID uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, "SELECT license_id FROM upstream_licenses WHERE tenant_id = $1", tenant.ID).Scan(&licenseID))
	target, err := upstream.CheckTarget(ctx, pool, sql.UpstreamLicenseForCheckParams{TenantID: tenant.ID, LicenseID: licenseID})
	require.NoError(t, err)

	importTx, err := core.DB(pool).Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = importTx.Rollback(ctx) }()
	later := factory.Now.Add(time.Hour)
	// Acquired before the checked licence's anchor: its aggregates change, its bound does not.
	importRows(importTx, later, factory.UpstreamRow("first", "owner", factory.Now.Add(-10*time.Hour)))

	checked := make(chan error, 1)
	go func() {
		checked <- pg.InTx(ctx, core.DB(pool), func(tx pgx.Tx) error {
			cst := st
			cst.Now = later
			return upstream.RecordCheck(ctx, tx, cst, upstream.RecordCheckParams{Target: target,
				Result: upstream.Result{Outcome: upstream.OutcomeGone, Status: 404}})
		})
	}()
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting))
		return waiting == 1
	}, 10*time.Second, 10*time.Millisecond, "the check waits for the import's lock")
	// Acquired after the checked licence's anchor: its bound is recomputed.
	importRows(importTx, later, factory.UpstreamRow("second", "owner", factory.Now.Add(30*time.Minute)))
	require.NoError(t, importTx.Commit(ctx))
	require.NoError(t, <-checked)

	var gone bool
	var revoked, unrevoked int
	require.NoError(t, pool.QueryRow(ctx, `SELECT ul.gone_at IS NOT NULL, s.revoked_count, s.unrevoked_count
		FROM upstream_licenses ul JOIN upstream_owner_stats s ON s.tenant_id = ul.tenant_id AND s.customer_id = ul.customer_id
		WHERE ul.tenant_id = $1 AND ul.license_id = $2`, tenant.ID, target.LicenseID).Scan(&gone, &revoked, &unrevoked))
	require.True(t, gone)
	require.Equal(t, 1, revoked)
	require.Equal(t, 2, unrevoked)
}

// TestWeightsSetRewritesBoundsOnlyWhenChanged: setting the weights already stored (as every
// process start does) writes no licence; other weights recompute every pending bound.
func TestWeightsSetRewritesBoundsOnlyWhenChanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)
	tenant := factory.Tenant(t, tx)
	store := factory.UpstreamStore(t, tx, tenant.ID, "https://store.example.com", "k")
	im, err := upstream.NewImporter(ctx, tx, factory.Step(), upstream.ImporterParams{TenantID: tenant.ID, StoreID: store.ID})
	require.NoError(t, err)
	require.NoError(t, im.Import(ctx, 0, factory.UpstreamRow("l", "owner", factory.Now.Add(-time.Hour))))
	require.NoError(t, upstream.WeightsSet(ctx, tx, upstream.DefaultWeights()))
	version := func() (ctid string, bound float64) {
		require.NoError(t, tx.QueryRow(ctx, "SELECT ctid::text, priority_bound FROM upstream_licenses WHERE tenant_id = $1", tenant.ID).Scan(&ctid, &bound))
		return ctid, bound
	}
	ctid, bound := version()
	require.NoError(t, upstream.WeightsSet(ctx, tx, upstream.DefaultWeights()))
	again, same := version()
	require.Equal(t, ctid, again, "unchanged weights write no licence")
	require.Equal(t, bound, same)
	w := upstream.DefaultWeights()
	w.LicenseAge = 3
	require.NoError(t, upstream.WeightsSet(ctx, tx, w))
	_, changed := version()
	require.Less(t, changed, bound, "a heavier licence-age term lowers the bound")
}
