// Command referrals generates a large referral history (customers, referrals, subscriptions,
// licences, registered and login events with realistic IP reuse) and measures the referral
// recompute: the full recompute of all referrers as the referral.recompute job runs it
// (core.ReferralRecompute) — a first run writing every reward and a second run writing
// nothing —, the per-event maintenance (one referrer recomputed in the transaction of a change
// to one of its referrals), and, with -sample, a baseline that does what the seed service does
// — for each referrer, its separate queries in a loop — timed on a sample of referrers and
// extrapolated to all of them. It prints Markdown with the medians, the counts and EXPLAIN
// (ANALYZE, BUFFERS) of the full recompute's computation (referral_compute), and records the medians with
// bench/internal/report (TESSERA_BENCH_RESULTS): the full recompute's first and second run in
// s, the per-event maintenance in ms.
//
//	DATABASE_URL=... go run ./bench/referrals -customers 1000000 -referrers 200000
//
// Flags: -customers and -referrers size the data; -runs timed runs of each full recompute
// (after one warm-up); -events the referrals the per-event maintenance is timed on; -sample
// and -literal-sample the referrers of the two seed loops (0 skips each); -db the database;
// -keep and -reuse (below).
//
// Run it from the repository's root. It creates (dropping first) the database named by -db
// on DATABASE_URL's server, migrates it, and drops it at the end unless -keep (or -reuse,
// which measures an existing one again without generating).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"slices"
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
	"github.com/tessera/tessera/sql"
)

// config is the command's flags.
type config struct {
	customers, referrers  int
	runs                  int
	sample, literalSample int
	events                int
	dbName                string
	keep, reuse           bool
}

func main() {
	var cfg config
	flag.IntVar(&cfg.customers, "customers", 1_000_000, "customers")
	flag.IntVar(&cfg.referrers, "referrers", 200_000, "customers who referred at least one other")
	flag.IntVar(&cfg.runs, "runs", 5, "timed runs of each recompute (after one warm-up)")
	flag.IntVar(&cfg.events, "events", 200, "referrals the per-event maintenance is timed on")
	flag.IntVar(&cfg.sample, "sample", 2000, "referrers the per-referrer baseline loop runs on; 0 skips it")
	flag.IntVar(&cfg.literalSample, "literal-sample", 20, "referrers the literal seed query (registration IPs of every customer) runs on; 0 skips it")
	flag.StringVar(&cfg.dbName, "db", "tessera_bench_referrals", "database to create on DATABASE_URL's server")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the database at the end")
	flag.BoolVar(&cfg.reuse, "reuse", false, "measure the existing database again without generating (implies -keep)")
	flag.Parse()
	if err := run(context.Background(), cfg); err != nil {
		log.Fatal(err)
	}
}

// now is the benchmark's clock: the data is generated relative to it and every query runs
// at it.
var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func run(ctx context.Context, cfg config) error {
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		return fmt.Errorf("DATABASE_URL is not set")
	}
	if !regexp.MustCompile(`^[a-z_][a-z0-9_]*$`).MatchString(cfg.dbName) {
		return fmt.Errorf("-db %q: use lower-case letters, digits and underscores", cfg.dbName)
	}
	if !cfg.reuse {
		if err := adminExec(ctx, base, "DROP DATABASE IF EXISTS "+cfg.dbName+" WITH (FORCE)", "CREATE DATABASE "+cfg.dbName); err != nil {
			return err
		}
		if !cfg.keep {
			defer func() {
				if err := adminExec(context.WithoutCancel(ctx), base, "DROP DATABASE IF EXISTS "+cfg.dbName+" WITH (FORCE)"); err != nil {
					log.Printf("drop %s: %v", cfg.dbName, err)
				}
			}()
		}
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	u.Path = "/" + cfg.dbName
	pcfg, err := pg.PoolConfig(u.String())
	if err != nil {
		return err
	}
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()

	var tenantID uuid.UUID
	if cfg.reuse {
		if err := pool.QueryRow(ctx, "SELECT id FROM tenants WHERE slug = 'bench'").Scan(&tenantID); err != nil {
			return fmt.Errorf("find the bench tenant in %s: %w", cfg.dbName, err)
		}
	} else {
		if err := migrate.Up(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
			return err
		}
		start := clock.System{}.Now()
		fmt.Fprintf(os.Stderr, "generating %d customers, %d referrers in %s\n", cfg.customers, cfg.referrers, cfg.dbName)
		if tenantID, err = generate(ctx, pool, now, cfg.customers, cfg.referrers); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "generated in %s\n", time.Since(start).Round(time.Second))
	}
	return measure(ctx, pool, tenantID, cfg)
}

// adminExec runs statements on DATABASE_URL's own database.
func adminExec(ctx context.Context, base string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }() // an admin connection: its statements' errors are what count
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// recomputeResult is one full recompute.
type recomputeResult struct {
	core.ReferralRecomputeResult
	took time.Duration
}

// step is the bench's core.Step: its clock and a CLI actor.
var step = core.Step{Now: now, Actor: core.Actor{Type: core.ActorCLI, ID: "bench"}}

// recompute runs a full recompute of the tenant as the referral.recompute job does
// (core.ReferralRecompute: the tenant's lock, ReferralRecomputeStore with the session of
// ReferralRecomputeSession computing and storing the changed rewards, an audit row and a
// referral.reward_changed event per bonus or badge change) in a transaction it commits or
// rolls back.
func recompute(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID, commit bool) (recomputeResult, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return recomputeResult{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	start := clock.System{}.Now()
	res, err := core.ReferralRecompute(ctx, tx, step, core.ReferralRecomputeParams{TenantID: tenantID})
	took := time.Since(start)
	if err != nil {
		return recomputeResult{}, fmt.Errorf("recompute: %w", err)
	}
	if commit {
		if err := tx.Commit(ctx); err != nil {
			return recomputeResult{}, err
		}
	}
	return recomputeResult{ReferralRecomputeResult: res, took: took}, nil
}

// timed runs the full recompute runs+1 times (the first warms the cache) and returns the
// durations sorted and the last result. With fresh, each run starts from no stored rewards
// (TRUNCATE, then the run commits); otherwise each run is rolled back.
func timed(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID, runs int, fresh bool) ([]time.Duration, recomputeResult, error) {
	var times []time.Duration
	var last recomputeResult
	for i := range runs + 1 {
		if fresh {
			if _, err := pool.Exec(ctx, "TRUNCATE referral_rewards"); err != nil {
				return nil, last, err
			}
		}
		res, err := recompute(ctx, pool, tenantID, fresh)
		if err != nil {
			return nil, last, err
		}
		fmt.Fprintf(os.Stderr, "  run %d: %s processed %d updated %d\n", i, res.took.Round(time.Millisecond), res.Processed, res.Updated)
		if i > 0 {
			times = append(times, res.took)
		}
		last = res
	}
	slices.Sort(times)
	return times, last, nil
}

// storedOutcomes sums the tenant's stored rewards: after a full recompute that committed, and
// the one after it finding nothing to change, they are every referrer's snapshot now.
func storedOutcomes(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID) (snapshot, error) {
	var s snapshot
	err := pool.QueryRow(ctx, `
		SELECT coalesce(sum(referred_total), 0), coalesce(sum(qualified_total), 0), coalesce(sum(disqualified_cooldown), 0),
		       coalesce(sum(disqualified_missing_ip), 0), coalesce(sum(disqualified_shared_ip), 0), coalesce(sum(disqualified_duplicate_ip), 0)
		FROM referral_rewards WHERE tenant_id = $1`, tenantID).
		Scan(&s.referred, &s.qualified, &s.cooldown, &s.missingIP, &s.sharedIP, &s.duplicateIP)
	return s, err
}

func measure(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID, cfg config) error {
	if err := describeData(ctx, pool, tenantID); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "full recompute, first run (from no stored rewards)")
	firstTimes, first, err := timed(ctx, pool, tenantID, cfg.runs, true)
	if err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "TRUNCATE referral_rewards"); err != nil {
		return err
	}
	firstPlan, err := explain(ctx, pool, tenantID)
	if err != nil {
		return err
	}

	var loop baselineResult
	if cfg.sample > 0 {
		fmt.Fprintf(os.Stderr, "baseline loop on %d referrers\n", cfg.sample)
		if loop, err = baseline(ctx, pool, tenantID, cfg.sample, false); err != nil {
			return err
		}
	}

	// Store the rewards for real, then measure the run that finds nothing to change.
	if _, err := recompute(ctx, pool, tenantID, true); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "full recompute, second run (nothing to write)")
	secondTimes, second, err := timed(ctx, pool, tenantID, cfg.runs, false)
	if err != nil {
		return err
	}
	secondPlan, err := explain(ctx, pool, tenantID)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "per-event maintenance, %d events\n", cfg.events)
	events, err := maintenance(ctx, pool, tenantID, cfg.events)
	if err != nil {
		return err
	}

	outcomes, err := storedOutcomes(ctx, pool, tenantID)
	if err != nil {
		return err
	}
	fmt.Printf("Outcomes (all referrers): %d referrals, %d qualified; disqualified: cooldown %d, missing IP %d, shared IP %d, duplicate IP %d; the rest are not candidates (inactive, unverified or no live qualifying subscription).\n\n",
		outcomes.referred, outcomes.qualified, outcomes.cooldown, outcomes.missingIP, outcomes.sharedIP, outcomes.duplicateIP)

	var literal baselineResult
	if cfg.literalSample > 0 {
		fmt.Fprintf(os.Stderr, "literal seed loop on %d referrers\n", cfg.literalSample)
		if literal, err = baseline(ctx, pool, tenantID, cfg.literalSample, true); err != nil {
			return err
		}
	}

	med := func(t []time.Duration) time.Duration { return t[len(t)/2] }
	span := func(t []time.Duration) string {
		return fmt.Sprintf("median %s over %d runs (min %s, max %s)", med(t).Round(time.Millisecond), len(t),
			t[0].Round(time.Millisecond), t[len(t)-1].Round(time.Millisecond))
	}
	fmt.Printf("### Full recompute (core.ReferralRecompute, all referrers, as the referral.recompute job runs it)\n\n")
	fmt.Printf("- first run (no stored rewards; an audit row and a referral.reward_changed event for each of the %d bonus or badge changes): processed %d, updated %d; %s\n",
		first.RewardsChanged, first.Processed, first.Updated, span(firstTimes))
	fmt.Printf("- second run (nothing changed): processed %d, updated %d; %s\n\n", second.Processed, second.Updated, span(secondTimes))
	fmt.Printf("### Per-event maintenance (in the event's transaction)\n\n")
	fmt.Printf("- %d events (a referred customer's verification flipped), each in a transaction rolled back: the referrer's recompute (core.ReferralRecompute of one referrer: locks, ReferralRecomputeStore, events) median %s (p90 %s, max %s); the whole CustomerUpdate with it median %s\n\n",
		len(events.maintain), med(events.maintain).Round(10*time.Microsecond), events.maintain[len(events.maintain)*9/10].Round(10*time.Microsecond),
		events.maintain[len(events.maintain)-1].Round(10*time.Microsecond), med(events.update).Round(10*time.Microsecond))
	results := []report.Result{
		{Name: "referral full recompute at " + size(cfg.customers) + " customers, first run", Value: med(firstTimes).Seconds(), Unit: "s"},
		{Name: "referral full recompute at " + size(cfg.customers) + " customers, nothing changed", Value: med(secondTimes).Seconds(), Unit: "s"},
		{Name: "referral per-event maintenance (one referrer), median", Value: float64(med(events.maintain).Microseconds()) / 1000, Unit: "ms"},
	}
	for _, r := range results {
		if err := report.Add(r); err != nil {
			return err
		}
	}
	if loop.referrers > 0 {
		mismatches, err := compare(ctx, pool, tenantID, loop.snapshots)
		if err != nil {
			return err
		}
		perReferrer := loop.took / time.Duration(loop.referrers)
		extrapolated := perReferrer * time.Duration(first.Processed)
		fmt.Printf("### Per-referrer loop (the seed's queries)\n\n")
		fmt.Printf("- sample of %d referrers (random, fixed): %s, %d queries, %s per referrer; wrote %d rewards\n",
			loop.referrers, loop.took.Round(time.Millisecond), loop.queries, perReferrer.Round(time.Microsecond), loop.updated)
		fmt.Printf("- extrapolated to all %d referrers: %s\n", first.Processed, extrapolated.Round(time.Second))
		fmt.Printf("- its answers for the sample equal the stored rewards (ReferralRecomputeStore's): %d mismatches\n", mismatches)
		fmt.Printf("- speed-up of the full recompute's first run: %.0fx\n", float64(extrapolated)/float64(med(firstTimes)))
	}
	if literal.referrers > 0 {
		litPer := literal.took / time.Duration(literal.referrers)
		fmt.Printf("- the seed's query as written (registration IPs of every customer aggregated at each referrer): %d referrers in %s, %s per referrer, extrapolated %s (%.0fx the full recompute's first run)\n",
			literal.referrers, literal.took.Round(time.Millisecond), litPer.Round(time.Millisecond),
			(litPer * time.Duration(first.Processed)).Round(time.Minute), float64(litPer*time.Duration(first.Processed))/float64(med(firstTimes)))
	}
	fmt.Printf("\n#### EXPLAIN (ANALYZE, BUFFERS) the computation (ReferralCompute: referral_compute, as the store computes it), first run\n\n```\n%s```\n\n#### EXPLAIN (ANALYZE, BUFFERS) the computation (ReferralCompute: referral_compute, as the store computes it), second run\n\n```\n%s```\n", firstPlan, secondPlan)
	return nil
}

// size is n as 100k or 1M.
func size(n int) string {
	if n >= 1_000_000 && n%1_000_000 == 0 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1000)
}

// describeData prints the dataset's shape.
func describeData(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID) error {
	var customers, referrers, referred, activeVerified, events, registered, noIP, logins int
	err := pool.QueryRow(ctx, `
		SELECT count(*), count(DISTINCT referred_by), count(referred_by),
		       count(*) FILTER (WHERE referred_by IS NOT NULL AND is_active AND is_verified),
		       (SELECT count(*) FROM customer_events WHERE tenant_id = $1),
		       (SELECT count(*) FROM customer_events WHERE tenant_id = $1 AND type = 'registered'),
		       (SELECT count(*) FROM customer_events WHERE tenant_id = $1 AND type = 'registered' AND ip_hash IS NULL),
		       (SELECT count(*) FROM customer_events WHERE tenant_id = $1 AND type = 'login')
		FROM customers WHERE tenant_id = $1`, tenantID).
		Scan(&customers, &referrers, &referred, &activeVerified, &events, &registered, &noIP, &logins)
	if err != nil {
		return fmt.Errorf("describe data: %w", err)
	}
	fmt.Printf("Data: %d customers; %d referrers with %d referrals (%d of them active and verified); %d events (%d registered, %d of them without an IP hash; %d logins).\n\n",
		customers, referrers, referred, activeVerified, events, registered, noIP, logins)
	rows, err := pool.Query(ctx, `
		SELECT s.status::text, count(*), count(*) FILTER (WHERE p.qualifies_for_referrals)
		FROM subscriptions s JOIN policies p ON p.tenant_id = s.tenant_id AND p.id = s.policy_id
		WHERE s.tenant_id = $1 GROUP BY 1 ORDER BY 1`, tenantID)
	if err != nil {
		return err
	}
	defer rows.Close()
	fmt.Printf("| subscription status | subscriptions | on the qualifying policy |\n|---|---|---|\n")
	for rows.Next() {
		var status string
		var n, q int
		if err := rows.Scan(&status, &n, &q); err != nil {
			return err
		}
		fmt.Printf("| %s | %d | %d |\n", status, n, q)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	hist, err := pool.Query(ctx, `
		SELECT CASE WHEN n <= 3 THEN n::text WHEN n <= 9 THEN '4-9' WHEN n <= 19 THEN '10-19' ELSE '20+' END, count(*), max(n)
		FROM (SELECT count(*) AS n FROM customers WHERE tenant_id = $1 AND referred_by IS NOT NULL GROUP BY referred_by) x
		GROUP BY 1 ORDER BY min(n)`, tenantID)
	if err != nil {
		return err
	}
	defer hist.Close()
	fmt.Printf("\n| referrals per referrer | referrers |\n|---|---|\n")
	for hist.Next() {
		var label string
		var n, maxN int
		if err := hist.Scan(&label, &n, &maxN); err != nil {
			return err
		}
		fmt.Printf("| %s | %d |\n", label, n)
	}
	fmt.Println()
	return hist.Err()
}

// maintenanceResult is the per-event maintenance's durations, sorted.
type maintenanceResult struct {
	maintain, update []time.Duration
}

// maintenance times, for n referred customers picked at random (fixed seed), the event path
// of a change to one referral: each in its own transaction rolled back, the customer's
// verification is flipped and its referrer recomputed (core.ReferralRecompute of one
// referrer, what every change runs), and, separately, the whole core.CustomerUpdate that
// does both with its audit row.
func maintenance(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID, n int) (maintenanceResult, error) {
	var res maintenanceResult
	rows, err := pool.Query(ctx, `
		SELECT id, referred_by, is_verified FROM customers
		WHERE tenant_id = $1 AND referred_by IS NOT NULL
		ORDER BY hashtextextended(id::text, 7) LIMIT $2`, tenantID, n)
	if err != nil {
		return res, err
	}
	type referral struct {
		id, referrer uuid.UUID
		verified     bool
	}
	picked, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (referral, error) {
		var c referral
		return c, r.Scan(&c.id, &c.referrer, &c.verified)
	})
	if err != nil {
		return res, err
	}
	once := func(f func(tx pgx.Tx) error) (time.Duration, error) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return 0, err
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // measured, never kept
		start := clock.System{}.Now()
		err = f(tx)
		return time.Since(start), err
	}
	for _, c := range picked {
		_, err = once(func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "UPDATE customers SET is_verified = $3 WHERE tenant_id = $1 AND id = $2", tenantID, c.id, !c.verified); err != nil {
				return err
			}
			start := clock.System{}.Now()
			_, err := core.ReferralRecompute(ctx, tx, step, core.ReferralRecomputeParams{TenantID: tenantID, ReferrerIDs: []uuid.UUID{c.referrer}})
			res.maintain = append(res.maintain, time.Since(start))
			return err
		})
		if err != nil {
			return res, fmt.Errorf("maintain referrer %s: %w", c.referrer, err)
		}
		verified := !c.verified
		took, err := once(func(tx pgx.Tx) error {
			_, err := core.CustomerUpdate(ctx, tx, step, core.CustomerUpdateParams{TenantID: tenantID, ID: c.id, IsVerified: &verified})
			return err
		})
		if err != nil {
			return res, fmt.Errorf("update customer %s: %w", c.id, err)
		}
		res.update = append(res.update, took)
	}
	if len(res.maintain) == 0 {
		return res, fmt.Errorf("no referred customers to measure maintenance on")
	}
	slices.Sort(res.maintain)
	slices.Sort(res.update)
	return res, nil
}

// explain returns EXPLAIN (ANALYZE, BUFFERS) of the full recompute's computation: the
// read-only ReferralCompute (changed rows only) selects from referral_compute as
// referral_recompute_store's CREATE TABLE AS does, with the job's session settings and the
// store's nested loops off, in a transaction rolled back.
func explain(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID) (string, error) {
	text, err := benchsql.QueryText("sql/referrals.sql.go", "referralCompute")
	if err != nil {
		return "", err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only use
	if err := sql.New().ReferralRecomputeSession(ctx, tx); err != nil {
		return "", err
	}
	// referral_recompute_store plans its CREATE TABLE AS with nested loops off (migration 00039).
	if _, err := tx.Exec(ctx, "SELECT set_config('enable_nestloop', 'off', true)"); err != nil {
		return "", err
	}
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+text, pgx.QueryExecModeDescribeExec, true, tenantID, now, []uuid.UUID(nil))
	if err != nil {
		return "", fmt.Errorf("explain: %w", err)
	}
	defer rows.Close()
	var out string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", err
		}
		out += line + "\n"
	}
	return out, rows.Err()
}
