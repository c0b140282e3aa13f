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
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

var queries = sql.New()

// pair is two owners of one tenant with identical generated histories and one candidate
// licence each (a and b), acquired, imported and checked at the same times.
type pair struct {
	tx       pgx.Tx
	tenantID uuid.UUID
	a, b     sql.UpstreamLicense
}

// newPair generates a history: n other licences per owner, some of them gone.
func newPair(t *testing.T, rt *rapid.T, tx pgx.Tx) pair {
	ctx := context.Background()
	tenant := factory.Tenant(t, tx)
	factory.LogChannel(t, tx, tenant.ID)
	store := factory.UpstreamStore(t, tx, tenant.ID, "https://store.example.com", "k")
	n := rapid.IntRange(0, 4).Draw(rt, "others")
	var rows []upstream.Row
	var gone []string
	for i := range n {
		acquired := factory.Now.Add(-time.Duration(rapid.IntRange(1, 5000).Draw(rt, fmt.Sprintf("acquired%d", i))) * time.Hour)
		isGone := rapid.Bool().Draw(rt, fmt.Sprintf("gone%d", i))
		for _, owner := range []string{"A", "B"} {
			id := fmt.Sprintf("%s-%d", owner, i)
			rows = append(rows, factory.UpstreamRow(id, owner, acquired))
			if isGone {
				gone = append(gone, id)
			}
		}
	}
	candidateAcquired := factory.Now.Add(-time.Duration(rapid.IntRange(1, 5000).Draw(rt, "candidate")) * time.Hour)
	rows = append(rows, factory.UpstreamRow("A-c", "A", candidateAcquired), factory.UpstreamRow("B-c", "B", candidateAcquired))
	ids := factory.UpstreamImport(t, tx, store, rows...)
	st := factory.Step()
	for _, id := range gone {
		target, err := upstream.CheckTarget(ctx, tx, sql.UpstreamLicenseForCheckParams{TenantID: tenant.ID, LicenseID: ids[id]})
		require.NoError(t, err)
		require.NoError(t, upstream.RecordCheck(ctx, tx, st, upstream.RecordCheckParams{Target: target, Result: upstream.Result{Outcome: upstream.OutcomeGone, Status: 404}, Backoff: time.Minute}))
	}
	p := pair{tx: tx, tenantID: tenant.ID}
	for _, c := range []struct {
		id  string
		out *sql.UpstreamLicense
	}{{"A-c", &p.a}, {"B-c", &p.b}} {
		require.NoError(t, tx.QueryRow(ctx, "SELECT tenant_id, license_id, store_id, customer_id, acquired_at, imported_at FROM upstream_licenses WHERE tenant_id = $1 AND license_id = $2",
			tenant.ID, ids[c.id]).Scan(&c.out.TenantID, &c.out.LicenseID, &c.out.StoreID, &c.out.CustomerID, &c.out.AcquiredAt, &c.out.ImportedAt))
	}
	return p
}

// scores returns the queue rows of a and b at now.
func (p pair) scores(t *testing.T, now time.Time) (a, b sql.RevocationQueueRow) {
	rows, err := queries.RevocationQueue(context.Background(), p.tx, upstream.DefaultSchedule().QueueParams(now, &p.tenantID, 100))
	require.NoError(t, err)
	for _, r := range rows {
		switch r.LicenseID {
		case p.a.LicenseID:
			a = r
		case p.b.LicenseID:
			b = r
		}
	}
	require.NotEqual(t, uuid.Nil, a.LicenseID)
	require.NotEqual(t, uuid.Nil, b.LicenseID)
	return a, b
}

func (p pair) exec(t *testing.T, query string, args ...any) {
	_, err := p.tx.Exec(context.Background(), query, args...)
	require.NoError(t, err)
}

// TestRevocationQueueTermDirections changes one input of one term for owner A only, on
// generated identical histories, and checks that A's licence moves up or down against B's
// in SPEC 5's direction, by that term alone.
func TestRevocationQueueTermDirections(t *testing.T) {
	t.Parallel()
	type termCase struct {
		name  string
		apply func(p pair, rt *rapid.T)
		term  func(r sql.RevocationQueueRow) float64
		up    bool
	}
	stats := "UPDATE upstream_owner_stats SET %s WHERE tenant_id = $1 AND customer_id = $2"
	for _, tc := range []termCase{
		{"MoreRevokedLicencesHigher", func(p pair, rt *rapid.T) {
			p.exec(t, fmt.Sprintf(stats, "revoked_count = revoked_count + $3"), p.tenantID, p.a.CustomerID, rapid.IntRange(1, 50).Draw(rt, "more"))
		}, func(r sql.RevocationQueueRow) float64 { return r.TermRevokedCount }, true},
		{"RecentRevocationHigher", func(p pair, rt *rapid.T) {
			older := factory.Now.Add(-time.Duration(rapid.IntRange(2, 10000).Draw(rt, "older")) * time.Hour)
			p.exec(t, fmt.Sprintf(stats, "last_revoked_at = $3"), p.tenantID, p.b.CustomerID, older)
			p.exec(t, fmt.Sprintf(stats, "last_revoked_at = $3"), p.tenantID, p.a.CustomerID, older.Add(time.Hour))
		}, func(r sql.RevocationQueueRow) float64 { return r.TermRecentRevocation }, true},
		{"MoreRevokedHoursHigher", func(p pair, rt *rapid.T) {
			p.exec(t, fmt.Sprintf(stats, "revoked_seconds = revoked_seconds + $3"), p.tenantID, p.a.CustomerID, 3600*rapid.IntRange(1, 10000).Draw(rt, "hours"))
		}, func(r sql.RevocationQueueRow) float64 { return r.TermRevokedHours }, true},
		{"MoreOwnerHoursLower", func(p pair, rt *rapid.T) {
			acquired := factory.Now.Add(-time.Duration(rapid.IntRange(1, 10000).Draw(rt, "hours")) * time.Hour)
			p.exec(t, fmt.Sprintf(stats, "unrevoked_count = unrevoked_count + 1, unrevoked_start_sum = unrevoked_start_sum + $3"), p.tenantID, p.a.CustomerID, acquired.Unix())
		}, func(r sql.RevocationQueueRow) float64 { return r.TermOwnerHours }, false},
		{"OlderLicenceLower", func(p pair, rt *rapid.T) {
			earlier := time.Duration(rapid.IntRange(1, 10000).Draw(rt, "hours")) * time.Hour
			p.exec(t, "UPDATE upstream_licenses SET acquired_at = acquired_at - $3::interval WHERE tenant_id = $1 AND license_id = $2", p.tenantID, p.a.LicenseID, earlier)
			p.exec(t, fmt.Sprintf(stats, "unrevoked_start_sum = unrevoked_start_sum - $3"), p.tenantID, p.a.CustomerID, int64(earlier.Seconds()))
		}, func(r sql.RevocationQueueRow) float64 { return r.TermLicenseAge }, false},
		{"LongerSinceCheckHigher", func(p pair, rt *rapid.T) {
			last := factory.Now.Add(-time.Duration(rapid.IntRange(16, 10000).Draw(rt, "minutes")) * time.Minute)
			p.exec(t, "UPDATE upstream_licenses SET last_checked_at = $3 WHERE tenant_id = $1 AND license_id = $2", p.tenantID, p.b.LicenseID, last)
			p.exec(t, "UPDATE upstream_licenses SET last_checked_at = $3 WHERE tenant_id = $1 AND license_id = $2", p.tenantID, p.a.LicenseID, last.Add(-time.Minute))
		}, func(r sql.RevocationQueueRow) float64 { return r.TermStaleness }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tx := testdb.Tx(t)
			rapid.Check(t, func(rt *rapid.T) {
				p := newPair(t, rt, tx)
				now := factory.Now.Add(time.Duration(rapid.IntRange(0, 1000).Draw(rt, "later")) * time.Hour)
				a, b := p.scores(t, now)
				require.InDelta(t, a.Score, b.Score, 1e-6, "identical histories score alike")
				tc.apply(p, rt)
				a, b = p.scores(t, now)
				if tc.up {
					require.Greater(t, tc.term(a), tc.term(b))
					require.Greater(t, a.Score, b.Score, "A moves up")
				} else {
					require.Less(t, tc.term(a), tc.term(b))
					require.Less(t, a.Score, b.Score, "A moves down")
				}
				require.InDelta(t, tc.term(a)-tc.term(b), a.Score-b.Score, 1e-6, "only this term moved")
			})
		})
	}
}

// TestRevocationQueueStalenessOvertakes: a high-risk licence checked every 15 minutes comes
// first until the low-risk licence, never re-checked, has waited long enough to overtake it.
func TestRevocationQueueStalenessOvertakes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := testdb.Tx(t)
	tenant := factory.Tenant(t, tx)
	factory.LogChannel(t, tx, tenant.ID)
	store := factory.UpstreamStore(t, tx, tenant.ID, "https://store.example.com", "k")
	ids := factory.UpstreamImport(t, tx, store,
		factory.UpstreamRow("RISKY", "risky", factory.Now.Add(-time.Hour)),
		factory.UpstreamRow("R-gone-1", "risky", factory.Now.Add(-48*time.Hour)),
		factory.UpstreamRow("R-gone-2", "risky", factory.Now.Add(-48*time.Hour)),
		factory.UpstreamRow("SAFE", "safe", factory.Now.Add(-5000*time.Hour)),
		factory.UpstreamRow("S-old", "safe", factory.Now.Add(-9000*time.Hour)),
	)
	st := factory.Step()
	for _, id := range []string{"R-gone-1", "R-gone-2"} {
		target, err := upstream.CheckTarget(ctx, tx, sql.UpstreamLicenseForCheckParams{TenantID: tenant.ID, LicenseID: ids[id]})
		require.NoError(t, err)
		require.NoError(t, upstream.RecordCheck(ctx, tx, st, upstream.RecordCheckParams{Target: target, Result: upstream.Result{Outcome: upstream.OutcomeGone, Status: 404}, Backoff: time.Minute}))
	}
	schedule := upstream.DefaultSchedule()
	now := factory.Now
	riskyChecks := 0
	for round := range 1000 {
		rows, err := queries.RevocationQueue(ctx, tx, schedule.QueueParams(now, &tenant.ID, 1))
		require.NoError(t, err)
		if len(rows) > 0 {
			target, err := upstream.CheckTarget(ctx, tx, sql.UpstreamLicenseForCheckParams{TenantID: tenant.ID, LicenseID: rows[0].LicenseID})
			require.NoError(t, err)
			st.Now = now
			require.NoError(t, upstream.RecordCheck(ctx, tx, st, upstream.RecordCheckParams{Target: target, Result: upstream.Result{Outcome: upstream.OutcomeExists, Status: 200}, Backoff: time.Minute}))
			if rows[0].ExternalLicenseID == "SAFE" {
				require.Greater(t, riskyChecks, 1, "the risky licence came first for a while")
				return
			}
			if rows[0].ExternalLicenseID == "RISKY" {
				riskyChecks++
			}
		}
		now = now.Add(15 * time.Minute)
		require.Less(t, round, 999, "the low-risk licence never overtook")
	}
}

// TestPickTurnsJITOff: the check loop's pick and the queue endpoint's read run with JIT off
// (RevocationPickSession): at 10M pending licences compiling the pick's plan cost forty
// times its execution.
func TestPickTurnsJITOff(t *testing.T) {
	t.Parallel()
	schedule := upstream.Schedule{Weights: upstream.DefaultWeights(), MinInterval: time.Hour}
	for name, read := range map[string]func(ctx context.Context, db pg.DB, now time.Time, tenantID *uuid.UUID, limit int32) ([]sql.RevocationQueueRow, error){
		"Pick": schedule.Pick, "Queue": schedule.Queue,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tx := testdb.Tx(t)
			ctx := t.Context()
			_, err := tx.Exec(ctx, "SET LOCAL jit = on")
			require.NoError(t, err)
			_, err = read(ctx, tx, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), nil, 1)
			require.NoError(t, err)
			var jit string
			require.NoError(t, tx.QueryRow(ctx, "SELECT current_setting('jit')").Scan(&jit))
			require.Equal(t, "off", jit, "the read's transaction (a savepoint of the test's) set JIT off")
		})
	}
}
