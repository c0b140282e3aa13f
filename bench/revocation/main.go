// Command revocation generates a large imported-licence history and measures the revocation
// pick: the RevocationQueue query on the maintained per-owner aggregates, next to the naive
// query that aggregates every licence of every owner at each pick. It prints Markdown with
// the median of several runs and EXPLAIN (ANALYZE, BUFFERS) of both.
//
//	DATABASE_URL=... go run ./bench/revocation -licenses 1000000 -owners 200000
//
// It creates (dropping first) the database named by -db on DATABASE_URL's server.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/bench/internal/benchsql"
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
	runs := flag.Int("runs", 7, "timed runs of each query")
	dbName := flag.String("db", "tessera_bench_revocation", "database to create on DATABASE_URL's server")
	reuse := flag.Bool("reuse", false, "reuse the database if it exists (skip generation)")
	flag.Parse()
	if err := run(context.Background(), *licenses, *owners, *runs, *dbName, *reuse); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, licenses, owners, runs int, dbName string, reuse bool) error {
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
	if !reuse {
		if err := migrate.Up(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
			return err
		}
		start := clock.System{}.Now()
		if err := generate(ctx, pool, now, licenses, owners); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "generated %d licences of %d owners in %s\n", licenses, owners, time.Since(start).Round(time.Second))
	}
	return measure(ctx, pool, now, runs)
}

// generate makes one tenant with a log channel and a store, owners, and licences acquired
// over three years; one owner in ten is "risky" and loses a quarter of their licences
// upstream, the others one in fifty. Check state is spread over the past day. The
// aggregates are computed once from the licences, as imports and checks maintain them.
func generate(ctx context.Context, pool *pgxpool.Pool, now time.Time, licenses, owners int) error {
	box, err := secrets.New(make([]byte, secrets.KeySize))
	if err != nil {
		return err
	}
	actor := core.Actor{Type: core.ActorCLI, ID: "bench"}
	var tenant sql.Tenant
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) (err error) {
		tenant, err = core.TenantCreate(ctx, tx, core.Step{Now: now, Actor: actor, Box: box}, core.TenantCreateParams{Slug: "bench", Name: "Bench"})
		return err
	})
	if err != nil {
		return err
	}
	st := core.Step{Now: now, Actor: actor, Box: box}
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
		{`INSERT INTO customers (tenant_id, id, email, invite_code, created_at, updated_at)
		  SELECT $1, gen_random_uuid(), 'owner' || g || '@bench.invalid', 'INV' || g, $2, $2 FROM generate_series(1, $3) g`, []any{tid, now, owners}},
		{`CREATE TEMP TABLE owners AS SELECT id, row_number() OVER (ORDER BY id) AS n, random() < 0.1 AS risky FROM customers WHERE tenant_id = $1`, []any{tid}},
		{`CREATE TEMP TABLE gen AS
		  SELECT gen_random_uuid() AS id, o.id AS customer_id, o.risky, g,
		         $1::timestamptz - make_interval(secs => random() * 3 * 365 * 86400) AS acquired_at
		  FROM generate_series(1, $2) g JOIN owners o ON o.n = 1 + (hashint4(g)::bigint & 2147483647) % $3`, []any{now, licenses, owners}},
		{`INSERT INTO licenses (tenant_id, id, policy_id, customer_id, key, issued_at, origin, external_license_id, status_changed_at, updated_at)
		  SELECT $1, id, $3, customer_id, 'bench-' || g, acquired_at, 'external', 'ext-' || g, $2, $2 FROM gen`, []any{tid, now, pid}},
		{`INSERT INTO upstream_licenses (tenant_id, license_id, store_id, customer_id, acquired_at, imported_at, gone_at, last_checked_at)
		  SELECT $1, id, $3, customer_id, acquired_at, acquired_at, gone_at,
		         CASE WHEN gone_at IS NOT NULL THEN gone_at WHEN random() < 0.5 THEN $2::timestamptz - make_interval(secs => random() * 86400) END
		  FROM (SELECT *, CASE WHEN random() < CASE WHEN risky THEN 0.25 ELSE 0.02 END
		                       THEN acquired_at + ($2::timestamptz - acquired_at) * random() END AS gone_at FROM gen) x`, []any{tid, now, sid}},
		{`INSERT INTO upstream_owner_stats (tenant_id, customer_id, revoked_count, last_revoked_at, revoked_seconds, unrevoked_count, unrevoked_start_sum)
		  SELECT $1, customer_id, count(gone_at), max(gone_at),
		         coalesce(sum(extract(epoch FROM gone_at - acquired_at)::bigint) FILTER (WHERE gone_at IS NOT NULL), 0),
		         count(*) FILTER (WHERE gone_at IS NULL),
		         coalesce(sum(extract(epoch FROM acquired_at)::bigint) FILTER (WHERE gone_at IS NULL), 0)
		  FROM upstream_licenses WHERE tenant_id = $1 GROUP BY customer_id`, []any{tid}},
		{`ANALYZE`, nil},
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	for i, step := range steps {
		if _, err := conn.Exec(ctx, step.sql, step.args...); err != nil {
			return fmt.Errorf("generate step %d: %w", i, err)
		}
	}
	return nil
}

// naiveQuery is RevocationQueue with the per-owner aggregates computed from every licence
// at each pick instead of read from upstream_owner_stats.
const naiveQuery = `
WITH s AS (
    SELECT tenant_id, customer_id, count(gone_at) AS revoked_count, max(gone_at) AS last_revoked_at,
           coalesce(sum(extract(epoch FROM gone_at - acquired_at)::bigint) FILTER (WHERE gone_at IS NOT NULL), 0) AS revoked_seconds,
           count(*) FILTER (WHERE gone_at IS NULL) AS unrevoked_count,
           coalesce(sum(extract(epoch FROM acquired_at)::bigint) FILTER (WHERE gone_at IS NULL), 0) AS unrevoked_start_sum
    FROM upstream_licenses GROUP BY tenant_id, customer_id
)`

func measure(ctx context.Context, pool *pgxpool.Pool, now time.Time, runs int) error {
	maintained, err := benchsql.QueryText("sql/revocation.sql.go", "revocationQueue")
	if err != nil {
		return err
	}
	// The naive query: the same text, with the aggregates table replaced by the CTE.
	naive := naiveQuery + strings.Replace(strings.Replace(maintained, "WITH terms AS (", ", terms AS (", 1),
		"LEFT JOIN upstream_owner_stats s", "LEFT JOIN s", 1)
	args := upstream.DefaultSchedule().QueueParams(now, nil, 1)
	params := []any{args.WRevokedCount, args.WRecentRevocation, args.Now, args.WRevokedHours, args.WOwnerHours,
		args.WLicenseAge, args.WStaleness, args.TenantID, args.MinIntervalSeconds, args.RowLimit}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM upstream_licenses").Scan(&n); err != nil {
		return err
	}
	fmt.Printf("Data: %d imported licences.\n\n", n)
	for _, q := range []struct{ name, text string }{{"Maintained aggregates (RevocationQueue)", maintained}, {"Naive aggregate-everything", naive}} {
		var times []time.Duration
		var first string
		for i := range runs + 1 {
			start := clock.System{}.Now()
			var id any
			rows, err := pool.Query(ctx, q.text, params...)
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			for rows.Next() {
				vals, _ := rows.Values()
				id = vals[1]
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if i > 0 { // the first run warms the cache
				times = append(times, time.Since(start))
			}
			first = fmt.Sprint(id)
		}
		slices.Sort(times)
		fmt.Printf("### %s\n\nmedian %s over %d runs (min %s, max %s); picks licence %s\n\n```\n", q.name,
			times[len(times)/2].Round(time.Millisecond), runs, times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), first)
		rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+q.text, params...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return err
			}
			fmt.Println(line)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		fmt.Print("```\n\n")
	}
	return nil
}
