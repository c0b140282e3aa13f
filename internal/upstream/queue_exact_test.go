package upstream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

// fullScoring is the revocation pick as it was before the stored bounds: every eligible
// licence scored, sorted, the first @row_limit taken. It is the reference RevocationQueue's
// branch and bound must agree with. $1-$6 are the weights, $7 now, $8 the tenant (NULL: all
// live tenants), $9 the minimum interval in seconds, $10 the row limit.
const fullScoring = `
WITH terms AS (
    SELECT t.*,
           (t.term_revoked_count + t.term_recent_revocation + t.term_revoked_hours + t.term_owner_hours
            + t.term_license_age + t.term_staleness)::float8 AS score
    FROM (
    SELECT ul.tenant_id, ul.license_id, ul.store_id, ul.customer_id, ul.acquired_at, ul.last_checked_at,
           $1::float8 * ln(1 + coalesce(s.revoked_count, 0)) AS term_revoked_count,
           CASE WHEN s.last_revoked_at IS NULL THEN 0::float8
                ELSE $2::float8
                     / (1 + greatest(0, date_part('epoch', $7::timestamptz - s.last_revoked_at)) / 86400)
           END AS term_recent_revocation,
           $3::float8 * ln(1 + coalesce(s.revoked_seconds, 0)::float8 / 3600) AS term_revoked_hours,
           -$4::float8 * ln(1 + greatest(0,
               (coalesce(s.unrevoked_count, 0) * date_part('epoch', $7::timestamptz)
                - coalesce(s.unrevoked_start_sum, 0)
                - date_part('epoch', $7::timestamptz - ul.acquired_at)) / 3600)) AS term_owner_hours,
           -$5::float8 * ln(1 + greatest(0, date_part('epoch', $7::timestamptz - ul.acquired_at)) / 3600) AS term_license_age,
           $6::float8 * greatest(0, date_part('epoch', $7::timestamptz - coalesce(ul.last_checked_at, ul.imported_at))) / 3600 AS term_staleness
    FROM upstream_licenses ul
    JOIN upstream_stores st ON st.tenant_id = ul.tenant_id AND st.id = ul.store_id AND st.enabled
    LEFT JOIN upstream_owner_stats s ON s.tenant_id = ul.tenant_id AND s.customer_id = ul.customer_id
    WHERE ul.gone_at IS NULL
      AND ($8::uuid IS NULL OR ul.tenant_id = $8::uuid)
      AND ($8::uuid IS NOT NULL
           OR NOT EXISTS (SELECT 1 FROM tenants tt WHERE tt.id = ul.tenant_id AND tt.clock_at IS NOT NULL))
      AND (ul.last_checked_at IS NULL
           OR ul.last_checked_at <= $7::timestamptz - make_interval(0, 0, 0, 0, 0, 0, $9::float8))
      AND (ul.retry_after IS NULL OR ul.retry_after <= $7::timestamptz)
      AND ul.tenant_id IN (SELECT e.tenant_id FROM webhook_endpoints e
                           WHERE e.enabled AND 'license.upstream_revoked' = ANY(e.event_types))
    OFFSET 0 -- evaluate the terms once per licence, below the sort
    ) t
), ranked AS (
    SELECT * FROM terms
    ORDER BY score DESC, tenant_id, license_id
    LIMIT $10::int
)
SELECT r.tenant_id, r.license_id, r.store_id, r.customer_id, l.external_license_id::text AS external_license_id,
       r.acquired_at, r.last_checked_at,
       r.term_revoked_count::float8 AS term_revoked_count, r.term_recent_revocation::float8 AS term_recent_revocation,
       r.term_revoked_hours::float8 AS term_revoked_hours, r.term_owner_hours::float8 AS term_owner_hours,
       r.term_license_age::float8 AS term_license_age, r.term_staleness::float8 AS term_staleness, r.score::float8 AS score
FROM ranked r
JOIN licenses l ON l.tenant_id = r.tenant_id AND l.id = r.license_id
ORDER BY r.score DESC, r.tenant_id, r.license_id`

// fullScoringPick runs fullScoring with w's weights and p's other parameters.
func fullScoringPick(t *testing.T, tx pgx.Tx, w upstream.Weights, p sql.RevocationQueueParams) []sql.RevocationQueueRow {
	rows, err := tx.Query(context.Background(), fullScoring, w.RevokedCount, w.RecentRevocation, w.RevokedHours, w.OwnerHours,
		w.LicenseAge, w.Staleness, p.Now, p.TenantID, p.MinIntervalSeconds, p.RowLimit)
	require.NoError(t, err)
	defer rows.Close()
	var out []sql.RevocationQueueRow
	for rows.Next() {
		var r sql.RevocationQueueRow
		require.NoError(t, rows.Scan(&r.TenantID, &r.LicenseID, &r.StoreID, &r.CustomerID, &r.ExternalLicenseID, &r.AcquiredAt,
			&r.LastCheckedAt, &r.TermRevokedCount, &r.TermRecentRevocation, &r.TermRevokedHours, &r.TermOwnerHours,
			&r.TermLicenseAge, &r.TermStaleness, &r.Score))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestRevocationQueueMatchesFullScoring generates tenants (live and sandbox, with and
// without a log channel), stores (some disabled), owners and licences imported in batches at
// random times, re-imports that move licences to other owners, checks of every outcome at
// random times and random weights, all through the real import and check paths (so the
// stored bounds are kept by the triggers as in production), with the check loop's picks at
// random instants in between (which re-anchor the bounds they re-scored); then, at a random
// instant (also before some imports, checks and re-anchorings), RevocationQueue returns
// exactly the rows, order and scores of the full scoring, for one tenant and for all live
// tenants, at random limits. It also checks the invariant the pick rests on: every pending
// licence's bound, from its anchor on, reaches its score.
func TestRevocationQueueMatchesFullScoring(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)
	rapid.Check(t, func(rt *rapid.T) {
		hour := func(label string, lo, hi int) time.Time {
			return factory.Now.Add(time.Duration(rapid.IntRange(lo, hi).Draw(rt, label)) * time.Hour)
		}
		weight := func(label string) float64 {
			return float64(rapid.IntRange(0, 40).Draw(rt, label)) / 4
		}
		w := upstream.Weights{RevokedCount: weight("w_revoked_count"), RecentRevocation: weight("w_recent_revocation"),
			RevokedHours: weight("w_revoked_hours"), OwnerHours: weight("w_owner_hours"), LicenseAge: weight("w_license_age"),
			Staleness: weight("w_staleness")}
		require.NoError(t, upstream.WeightsSet(ctx, tx, w))

		var tenant sql.Tenant
		if rapid.IntRange(0, 3).Draw(rt, "sandbox") == 0 {
			tenant = factory.SandboxTenant(t, tx, factory.Now)
		} else {
			tenant = factory.Tenant(t, tx)
		}
		if rapid.IntRange(0, 4).Draw(rt, "log_channel") > 0 {
			factory.LogChannel(t, tx, tenant.ID)
		}
		stores := make([]sql.UpstreamStore, rapid.IntRange(1, 2).Draw(rt, "stores"))
		for i := range stores {
			enabled := rapid.IntRange(0, 4).Draw(rt, fmt.Sprintf("store%d_enabled", i)) > 0
			stores[i] = factory.UpstreamStore(t, tx, tenant.ID, "https://store.example.com", "k",
				func(p *upstream.StoreCreateParams) { p.Enabled = enabled })
		}
		schedule := upstream.Schedule{Weights: w, MinInterval: time.Duration(rapid.IntRange(1, 72).Draw(rt, "min_interval")) * time.Hour}
		// pick is the check loop's pick at a random instant, for the tenant or for every live
		// tenant, which re-anchors the bounds it re-scored at that instant: before, between
		// and after the imports and checks, so bounds anchored later than the final instant
		// and owners' aggregates changing after a re-anchoring are both covered.
		pick := func(label string) {
			if rapid.IntRange(0, 2).Draw(rt, label) == 0 {
				return
			}
			scope := []*uuid.UUID{&tenant.ID, nil}[rapid.IntRange(0, 1).Draw(rt, label+"_scope")]
			_, err := schedule.Pick(ctx, tx, hour(label+"_at", -1500, 2500), scope, int32(rapid.IntRange(1, 6).Draw(rt, label+"_limit")))
			require.NoError(t, err)
		}
		owners := rapid.IntRange(1, 4).Draw(rt, "owners")
		st := factory.Step()
		imported := map[uuid.UUID][]string{} // external ids by store
		for batch := range rapid.IntRange(1, 4).Draw(rt, "batches") {
			store := stores[rapid.IntRange(0, len(stores)-1).Draw(rt, fmt.Sprintf("batch%d_store", batch))]
			st.Now = hour(fmt.Sprintf("batch%d_at", batch), -2000, 0)
			im, err := upstream.NewImporter(ctx, tx, st, upstream.ImporterParams{TenantID: tenant.ID, StoreID: store.ID})
			require.NoError(t, err)
			for i := range rapid.IntRange(1, 8).Draw(rt, fmt.Sprintf("batch%d_rows", batch)) {
				ext := fmt.Sprintf("b%d-%d", batch, i)
				if known := imported[store.ID]; len(known) > 0 && rapid.IntRange(0, 3).Draw(rt, fmt.Sprintf("batch%d_row%d_reimport", batch, i)) == 0 {
					ext = known[rapid.IntRange(0, len(known)-1).Draw(rt, fmt.Sprintf("batch%d_row%d_which", batch, i))]
				} else {
					imported[store.ID] = append(imported[store.ID], ext)
				}
				owner := fmt.Sprintf("owner%d", rapid.IntRange(1, owners).Draw(rt, fmt.Sprintf("batch%d_row%d_owner", batch, i)))
				acquired := st.Now.Add(-time.Duration(rapid.IntRange(0, 30000).Draw(rt, fmt.Sprintf("batch%d_row%d_age", batch, i))) * time.Hour)
				require.NoError(t, im.Import(ctx, i, factory.UpstreamRow(ext, owner, acquired)))
			}
			pick(fmt.Sprintf("batch%d_pick", batch))
		}
		rows, err := tx.Query(ctx, "SELECT license_id FROM upstream_licenses WHERE tenant_id = $1 ORDER BY license_id", tenant.ID)
		require.NoError(t, err)
		licences, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		require.NoError(t, err)
		outcomes := []upstream.Outcome{upstream.OutcomeExists, upstream.OutcomeGone, upstream.OutcomeError}
		for i := range rapid.IntRange(0, 8).Draw(rt, "checks") {
			l := licences[rapid.IntRange(0, len(licences)-1).Draw(rt, fmt.Sprintf("check%d_licence", i))]
			outcome := outcomes[rapid.IntRange(0, 2).Draw(rt, fmt.Sprintf("check%d_outcome", i))]
			st.Now = hour(fmt.Sprintf("check%d_at", i), -1000, 500)
			target, err := upstream.CheckTarget(ctx, tx, sql.UpstreamLicenseForCheckParams{TenantID: tenant.ID, LicenseID: l})
			require.NoError(t, err)
			require.NoError(t, upstream.RecordCheck(ctx, tx, st, upstream.RecordCheckParams{Target: target,
				Result: upstream.Result{Outcome: outcome, Status: 200}, Backoff: time.Duration(rapid.IntRange(0, 48).Draw(rt, fmt.Sprintf("check%d_backoff", i))) * time.Hour}))
			pick(fmt.Sprintf("check%d_pick", i))
		}

		now := hour("now", -500, 2000)
		limit := int32(rapid.IntRange(1, 6).Draw(rt, "limit"))
		for _, scope := range []*uuid.UUID{&tenant.ID, nil} {
			p := schedule.QueueParams(now, scope, limit)
			got, err := queries.RevocationQueue(ctx, tx, p)
			require.NoError(t, err)
			want := fullScoringPick(t, tx, w, p)
			require.Len(t, got, len(want))
			for i := range want {
				require.Equal(t, want[i].LicenseID, got[i].LicenseID, "row %d", i)
				require.Equal(t, want[i].Score, got[i].Score, "row %d", i)
				require.Equal(t, want[i], got[i], "row %d", i)
			}
		}
		var broken int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM upstream_licenses ul
			CROSS JOIN revocation_weights w
			LEFT JOIN upstream_owner_stats s ON s.tenant_id = ul.tenant_id AND s.customer_id = ul.customer_id
			WHERE ul.tenant_id = $1 AND ul.gone_at IS NULL AND ul.priority_anchor <= $2
			  AND ul.priority_bound + w.staleness * date_part('epoch', $2::timestamptz) / 3600
			      < revocation_score(w, $2, s, ul.acquired_at, coalesce(ul.last_checked_at, ul.imported_at)) - 1e-6`,
			tenant.ID, now).Scan(&broken))
		require.Zero(t, broken, "every pending licence's bound reaches its score")
	})
}
