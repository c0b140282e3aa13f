// Command revocation generates a large imported-licence history and measures the revocation
// pick: RevocationQueue, the branch and bound over the per-licence score bounds
// (upstream_licenses.priority_bound). It prints Markdown with the median of the worker's pick
// (limit 1, all tenants) and of the queue endpoint's read (limit 20, one tenant), EXPLAIN
// (ANALYZE, BUFFERS) of the pick, and what the bounds' maintenance costs an import; with
// TESSERA_BENCH_RESULTS set it records the medians (bench/internal/report).
//
//	DATABASE_URL=... go run ./bench/revocation -licenses 1000000 -owners 200000
//
// Flags:
//
//	-licenses N  imported licences to generate (default 1000000)
//	-owners N    owners (customers) they belong to (default 200000)
//	-runs N      timed picks of each kind, after one warm-up (default 21)
//	-import N    licences imported through the real importer, with the bounds' triggers and
//	             without them, to show their cost (default 2000; 0 skips)
//	-db NAME     database to create on DATABASE_URL's server (default tessera_bench_revocation)
//	-reuse       measure the existing database again without generating it
//
// It creates (dropping first) the database named by -db on DATABASE_URL's server and leaves it
// for -reuse. Each timed read is followed by recording a check of the worker's pick (as the
// loop does), so successive reads walk a changing queue.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/bench/internal/benchsql"
	"github.com/tessera/tessera/bench/internal/report"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/migrate"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

func main() {
	licenses := flag.Int("licenses", 1_000_000, "imported licences")
	owners := flag.Int("owners", 200_000, "owners (customers)")
	runs := flag.Int("runs", 21, "timed picks of each kind")
	imports := flag.Int("import", 2000, "licences imported with and without the bounds' triggers (0: skip)")
	dbName := flag.String("db", "tessera_bench_revocation", "database to create on DATABASE_URL's server")
	reuse := flag.Bool("reuse", false, "reuse the database if it exists (skip generation)")
	flag.Parse()
	if err := run(context.Background(), *licenses, *owners, *runs, *imports, *dbName, *reuse); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, licenses, owners, runs, imports int, dbName string, reuse bool) error {
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		return fmt.Errorf("DATABASE_URL is not set")
	}
	if !reuse {
		admin, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)"); err != nil {
			return err
		}
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
			return err
		}
		_ = admin.Close(ctx)
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	u.Path = "/" + dbName
	pool, err := pg.NewPool(ctx, u.String())
	if err != nil {
		return err
	}
	defer pool.Close()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	box, err := secrets.New(make([]byte, secrets.KeySize))
	if err != nil {
		return err
	}
	st := core.Step{Now: now, Actor: core.Actor{Type: core.ActorCLI, ID: "bench"}, Box: box}
	if !reuse {
		if err := migrate.Up(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
			return err
		}
		start := clock.System{}.Now()
		if err := generate(ctx, pool, st, licenses, owners); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "generated %d licences of %d owners in %s\n", licenses, owners, time.Since(start).Round(time.Second))
	}
	if err := measure(ctx, pool, now, runs); err != nil {
		return err
	}
	if imports > 0 {
		return measureImport(ctx, pool, st, imports)
	}
	return nil
}

// generate makes one tenant with a log channel and a store, owners, and licences acquired
// over three years, each imported as it was acquired; one owner in ten is "risky" and loses a
// quarter of their licences upstream, the others one in fifty. Half the pending licences were
// checked within the past day. It writes set-based (INSERT ... SELECT generate_series, ids in
// order) with triggers off (session_replication_role = replica, so DATABASE_URL's user must be
// a superuser, as the development database's is): no foreign-key check per row, and the
// aggregates computed from the licences and each pending licence's bound from them with the
// triggers' own function (revocation_bound, anchored at the start of staleness), the state
// the triggers leave after a change of weights; the secondary indexes of the two big tables
// are dropped first and built again after the rows.
func generate(ctx context.Context, pool *pgxpool.Pool, st core.Step, licenses, owners int) error {
	now := st.Now
	var tenant sql.Tenant
	err := pg.InTx(ctx, pool, func(tx pgx.Tx) (err error) {
		tenant, err = core.TenantCreate(ctx, tx, st, core.TenantCreateParams{Slug: "bench", Name: "Bench"})
		return err
	})
	if err != nil {
		return err
	}
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		_, _, err := core.WebhookEndpointCreate(ctx, tx, st, core.WebhookEndpointCreateParams{TenantID: tenant.ID,
			MaxEndpoints: core.WebhookMaxEndpointsDefault, URL: "https://hooks.example.com/bench", EventTypes: []string{core.EventLicenseUpstreamRevoked}})
		return err
	})
	if err != nil {
		return err
	}
	product, err := sql.New().ProductCreate(ctx, pool, sql.ProductCreateParams{TenantID: tenant.ID, ID: core.NewID(), Slug: "bench", Name: "Bench", Now: now})
	if err != nil {
		return err
	}
	policy, err := sql.New().PolicyCreate(ctx, pool, sql.PolicyCreateParams{
		TenantID: tenant.ID, ID: core.NewID(), ProductID: product.ID, Slug: "bench", Name: "Bench",
		ListedCurrency: sql.CurrencyUSD, Entitlements: []string{}, Now: now,
	})
	if err != nil {
		return err
	}
	var store sql.UpstreamStore
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) (err error) {
		store, err = upstream.StoreCreate(ctx, tx, st, upstream.StoreCreateParams{TenantID: tenant.ID,
			Kind: "jinxxy", Name: "Bench", BaseURL: "https://store.example.com", APIKey: "k", PolicyID: policy.ID, Enabled: true,
		})
		return err
	})
	if err != nil {
		return err
	}
	tid, sid, pid := tenant.ID, store.ID, policy.ID
	steps := []struct {
		sql  string
		args []any
	}{
		{`SET session_replication_role = replica`, nil},
		{`INSERT INTO customers (tenant_id, id, email, invite_code, created_at, updated_at)
		  SELECT $1, ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'owner' || g || '@bench.invalid', 'INV' || g, $2, $2 FROM generate_series(1, $3) g`, []any{tid, now, owners}},
		{`CREATE TEMP TABLE owners AS SELECT id, row_number() OVER (ORDER BY id) AS n, random() < 0.1 AS risky FROM customers WHERE tenant_id = $1`, []any{tid}},
		{`CREATE TEMP TABLE gen AS
		  SELECT id, customer_id, g, acquired_at, gone_at,
		         CASE WHEN gone_at IS NOT NULL THEN gone_at WHEN random() < 0.5 THEN $1::timestamptz - make_interval(secs => random() * 86400) END AS last_checked_at
		  FROM (SELECT ('00000000-0000-4000-9000-' || lpad(to_hex(g), 12, '0'))::uuid AS id, o.id AS customer_id, g, acquired_at,
		               CASE WHEN random() < CASE WHEN o.risky THEN 0.25 ELSE 0.02 END
		                    THEN acquired_at + ($1::timestamptz - acquired_at) * random() END AS gone_at
		        FROM (SELECT g, $1::timestamptz - make_interval(secs => random() * 3 * 365 * 86400) AS acquired_at,
		                     1 + (hashint4(g)::bigint & 2147483647) % $3 AS n
		              FROM generate_series(1, $2) g) x
		        JOIN owners o ON o.n = x.n) y`, []any{now, licenses, owners}},
		// Secondary indexes are built once after the rows, not row by row.
		{`CREATE TEMP TABLE dropped_indexes AS
		  SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
		  FROM pg_index i
		  WHERE i.indrelid IN ('licenses'::regclass, 'upstream_licenses'::regclass)
		    AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)`, nil},
		{`DO $$DECLARE i record; BEGIN FOR i IN SELECT name FROM dropped_indexes LOOP EXECUTE 'DROP INDEX ' || i.name; END LOOP; END$$`, nil},
		{`INSERT INTO licenses (tenant_id, id, policy_id, customer_id, key, issued_at, origin, external_license_id, status_changed_at, updated_at)
		  SELECT $1, id, $3, customer_id, 'bench-' || g, acquired_at, 'external', 'ext-' || g, $2, $2 FROM gen`, []any{tid, now, pid}},
		{`INSERT INTO upstream_owner_stats (tenant_id, customer_id, revoked_count, last_revoked_at, revoked_seconds, unrevoked_count, unrevoked_start_sum)
		  SELECT $1, customer_id, count(gone_at), max(gone_at),
		         coalesce(sum(extract(epoch FROM gone_at - acquired_at)::bigint) FILTER (WHERE gone_at IS NOT NULL), 0),
		         count(*) FILTER (WHERE gone_at IS NULL),
		         coalesce(sum(extract(epoch FROM acquired_at)::bigint) FILTER (WHERE gone_at IS NULL), 0)
		  FROM gen GROUP BY customer_id`, []any{tid}},
		{`INSERT INTO upstream_licenses (tenant_id, license_id, store_id, customer_id, acquired_at, imported_at, gone_at, last_checked_at,
		                               priority_bound, priority_anchor)
		  SELECT $1, g.id, $2, g.customer_id, g.acquired_at, g.acquired_at, g.gone_at, g.last_checked_at,
		         revocation_bound(w, s, g.acquired_at, coalesce(g.last_checked_at, g.acquired_at), coalesce(g.last_checked_at, g.acquired_at)),
		         coalesce(g.last_checked_at, g.acquired_at)
		  FROM gen g
		  JOIN upstream_owner_stats s ON s.tenant_id = $1 AND s.customer_id = g.customer_id
		  CROSS JOIN revocation_weights w`, []any{tid, sid}},
		{`SET maintenance_work_mem = '256MB'`, nil},
		{`DO $$DECLARE i record; BEGIN FOR i IN SELECT def FROM dropped_indexes LOOP EXECUTE i.def; END LOOP; END$$`, nil},
		{`SET session_replication_role = DEFAULT`, nil},
		{`ANALYZE`, nil},
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	for i, step := range steps {
		start := clock.System{}.Now()
		if _, err := conn.Exec(ctx, step.sql, step.args...); err != nil {
			return fmt.Errorf("generate step %d: %w", i, err)
		}
		fmt.Fprintf(os.Stderr, "generate step %d: %s\n", i, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// median returns the middle of times (sorting them).
func median(times []time.Duration) time.Duration {
	slices.Sort(times)
	return times[len(times)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// measure times the worker's pick (all tenants, limit 1, upstream.Schedule.Pick: the query
// and the re-anchoring of the bounds it had to re-score, as the check loop picks) and the
// queue endpoint's read (one tenant, limit 20, RevocationQueue alone), each followed by
// recording a check of the worker's pick (the endpoint's read is followed by an untimed pick
// of the worker, as the check loop moves the queue between two reads). The first of each is timed apart (the worker's
// first pick finds every bound anchored where the generator left it, at the start of its
// staleness); each prints how many licences its query re-scored the first time and the
// median of the next runs (EXPLAIN ANALYZE of the same query before each run). It ends with EXPLAIN (ANALYZE, BUFFERS) of the pick.
func measure(ctx context.Context, pool *pgxpool.Pool, now time.Time, runs int) error {
	var n int
	var tenantID uuid.UUID
	if err := pool.QueryRow(ctx, "SELECT count(*), min(tenant_id::text)::uuid FROM upstream_licenses").Scan(&n, &tenantID); err != nil {
		return err
	}
	fmt.Printf("Data: %d imported licences.\n\n| read | first | median of the next %d | min | max | re-scored by the first | median re-scored by the next |\n|---|---|---|---|---|---|---|\n", n, runs)
	schedule := upstream.DefaultSchedule()
	queries := sql.New()
	for _, k := range []struct {
		name   string
		tenant *uuid.UUID
		limit  int32
		pick   func(tenant *uuid.UUID, limit int32) ([]sql.RevocationQueueRow, error)
	}{
		{"worker's pick (all tenants, limit 1)", nil, 1, func(tenant *uuid.UUID, limit int32) ([]sql.RevocationQueueRow, error) {
			return schedule.Pick(ctx, pool, now, tenant, limit)
		}},
		{"queue endpoint (one tenant, limit 20)", &tenantID, 20, func(tenant *uuid.UUID, limit int32) ([]sql.RevocationQueueRow, error) {
			return schedule.Queue(ctx, pool, now, tenant, limit)
		}},
	} {
		var first time.Duration
		var times []time.Duration
		var counts []int
		for i := range runs + 1 {
			c, err := rescored(ctx, pool, schedule.QueueParams(now, k.tenant, k.limit))
			if err != nil {
				return err
			}
			counts = append(counts, c)
			start := clock.System{}.Now()
			rows, err := k.pick(k.tenant, k.limit)
			if err != nil {
				return fmt.Errorf("%s: %w", k.name, err)
			}
			if i == 0 {
				first = time.Since(start)
			} else {
				times = append(times, time.Since(start))
			}
			if len(rows) == 0 {
				return fmt.Errorf("%s: nothing eligible", k.name)
			}
			if k.tenant != nil { // the check loop moves the queue between two reads
				if rows, err = schedule.Pick(ctx, pool, now, nil, 1); err != nil {
					return err
				}
			}
			err = queries.UpstreamLicenseMarkExists(ctx, pool, sql.UpstreamLicenseMarkExistsParams{Now: now, TenantID: rows[0].TenantID, LicenseID: rows[0].LicenseID})
			if err != nil {
				return err
			}
		}
		m, rescoredFirst := median(times), counts[0]
		counts = counts[1:]
		slices.Sort(counts)
		rescoredMedian := counts[len(counts)/2]
		fmt.Printf("| %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %d | %d |\n", k.name, ms(first), ms(m), ms(times[0]), ms(times[len(times)-1]), rescoredFirst, rescoredMedian)
		if err := report.Add(report.Result{Name: fmt.Sprintf("Revocation %s at %d licences, median", k.name, n), Value: ms(m), Unit: "ms"}); err != nil {
			return err
		}
		if err := report.Add(report.Result{Name: fmt.Sprintf("Revocation %s at %d licences, licences re-scored, median", k.name, n), Value: float64(rescoredMedian), Unit: "rows"}); err != nil {
			return err
		}
	}
	lines, err := explain(ctx, pool, "EXPLAIN (ANALYZE, BUFFERS)", schedule.QueueParams(now, nil, 1))
	if err != nil {
		return err
	}
	fmt.Printf("\nEXPLAIN (ANALYZE, BUFFERS) of the worker's pick:\n\n```\n")
	for _, l := range lines {
		fmt.Println(l)
	}
	fmt.Print("```\n\n")
	return nil
}

// explain runs RevocationQueue with p under the EXPLAIN of prefix and returns its lines.
func explain(ctx context.Context, pool *pgxpool.Pool, prefix string, p sql.RevocationQueueParams) ([]string, error) {
	text, err := benchsql.QueryText("sql/revocation.sql.go", "revocationQueue")
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, prefix+" "+text, p.TenantID, p.Now, p.MinIntervalSeconds, p.RowLimit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// rescored returns how many licences RevocationQueue with p scores exactly past its probe:
// the rows of its candidate ranges (the bound range of upstream_licenses_priority_idx and
// the licences anchored after @now), read from EXPLAIN ANALYZE.
func rescored(ctx context.Context, pool *pgxpool.Pool, p sql.RevocationQueueParams) (int, error) {
	lines, err := explain(ctx, pool, "EXPLAIN (ANALYZE, FORMAT JSON)", p)
	if err != nil {
		return 0, err
	}
	var plan []struct{ Plan planNode }
	if err := json.Unmarshal([]byte(strings.Join(lines, "\n")), &plan); err != nil {
		return 0, err
	}
	var count func(n planNode) int
	count = func(n planNode) int {
		c := 0
		if n.IndexName == "upstream_licenses_anchor_idx" || strings.Contains(n.IndexCond, "priority_bound >=") {
			c += int(n.ActualRows * n.ActualLoops)
		}
		for _, child := range n.Plans {
			c += count(child)
		}
		return c
	}
	return count(plan[0].Plan), nil
}

// planNode is the part of a node of EXPLAIN (FORMAT JSON) that rescored reads.
type planNode struct {
	IndexName   string     `json:"Index Name"`
	IndexCond   string     `json:"Index Cond"`
	ActualRows  float64    `json:"Actual Rows"`
	ActualLoops float64    `json:"Actual Loops"`
	Plans       []planNode `json:"Plans"`
}

// measureImport imports n new licences through the real importer (upstream.Importer, one
// transaction, rolled back) into the generated store, five per new owner, three times with
// the bounds' triggers and three times without, alternating, and prints the median time per
// licence of each: what keeping the bounds costs the write path.
func measureImport(ctx context.Context, pool *pgxpool.Pool, st core.Step, n int) error {
	var storeID, tenantID uuid.UUID
	if err := pool.QueryRow(ctx, "SELECT tenant_id, id FROM upstream_stores LIMIT 1").Scan(&tenantID, &storeID); err != nil {
		return err
	}
	importOnce := func(round int, triggers bool) (time.Duration, error) {
		var took time.Duration
		tx, err := core.DB(pool).Begin(ctx)
		if err != nil {
			return 0, err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if !triggers {
			for _, q := range []string{"ALTER TABLE upstream_licenses DISABLE TRIGGER upstream_licenses_bound",
				"ALTER TABLE upstream_owner_stats DISABLE TRIGGER upstream_owner_stats_bounds"} {
				if _, err := tx.Exec(ctx, q); err != nil {
					return 0, err
				}
			}
		}
		start := clock.System{}.Now()
		im, err := upstream.NewImporter(ctx, tx, st, upstream.ImporterParams{TenantID: tenantID, StoreID: storeID})
		if err != nil {
			return 0, err
		}
		for i := range n {
			r := upstream.Row{ExternalLicenseID: fmt.Sprintf("import-%d-%d", round, i), Owner: fmt.Sprintf("import-owner-%d", i/5),
				AcquiredAt: st.Now.Add(-time.Duration(i%26280) * time.Hour)}
			if err := im.Import(ctx, i, r); err != nil {
				return 0, err
			}
		}
		took = time.Since(start)
		return took, nil
	}
	var with, without []time.Duration
	for round := range 3 {
		d, err := importOnce(round, true)
		if err != nil {
			return fmt.Errorf("import with triggers: %w", err)
		}
		with = append(with, d)
		if d, err = importOnce(round, false); err != nil {
			return fmt.Errorf("import without triggers: %w", err)
		}
		without = append(without, d)
	}
	mw, mo := median(with), median(without)
	perW, perO := float64(mw.Microseconds())/float64(n), float64(mo.Microseconds())/float64(n)
	fmt.Printf("Import of %d licences (five per new owner), median of 3, one transaction: %.0f µs per licence with the bounds' triggers, %.0f µs without (%+.0f%%).\n\n",
		n, perW, perO, 100*(perW-perO)/perO)
	if err := report.Add(report.Result{Name: "Revocation: import per licence, with the bounds' triggers", Value: perW / 1000, Unit: "ms"}); err != nil {
		return err
	}
	return report.Add(report.Result{Name: "Revocation: import per licence, without the bounds' triggers", Value: perO / 1000, Unit: "ms"})
}
