// Command referrals generates a large referral history (customers, referrals, subscriptions,
// licences, registered and login events with realistic IP reuse) and measures the referral
// recompute: the set-based ReferralRecompute query for all referrers (a first run writing
// every reward, a second run writing nothing), next to a baseline that does what the seed
// service does — for each referrer, its separate queries in a loop — timed on a sample of
// referrers and extrapolated to all of them. It prints Markdown with the medians, the
// counts, the speed-up and EXPLAIN (ANALYZE, BUFFERS) of the recompute.
//
//	DATABASE_URL=... go run ./bench/referrals -customers 1000000 -referrers 200000
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
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/migrate"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/jobs"
	"github.com/tessera/tessera/sql"
)

// config is the command's flags.
type config struct {
	customers, referrers  int
	runs                  int
	sample, literalSample int
	dbName                string
	keep, reuse           bool
}

func main() {
	var cfg config
	flag.IntVar(&cfg.customers, "customers", 1_000_000, "customers")
	flag.IntVar(&cfg.referrers, "referrers", 200_000, "customers who referred at least one other")
	flag.IntVar(&cfg.runs, "runs", 5, "timed runs of each recompute (after one warm-up)")
	flag.IntVar(&cfg.sample, "sample", 2000, "referrers the per-referrer baseline loop runs on")
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

// recomputeResult is one ReferralRecompute call.
type recomputeResult struct {
	processed, updated, rewardsChanged int
	took                               time.Duration
	rows                               []sql.ReferralRecomputeRow
}

// recompute runs ReferralRecompute for all referrers of the tenant in a transaction it
// commits or rolls back: as the recompute job runs it (jobs.ReferralRecomputeRows: the
// session settings of ReferralRecomputeSession, a custom plan), or with defaults, only the
// custom plan on the server's settings.
func recompute(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID, write, commit, defaults bool) (recomputeResult, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return recomputeResult{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	params := sql.ReferralRecomputeParams{TenantID: tenantID, Now: now, Write: write}
	start := clock.System{}.Now()
	var rows []sql.ReferralRecomputeRow
	if defaults {
		rows, err = sql.New().ReferralRecompute(ctx, core.CustomPlans{DB: tx}, params)
	} else {
		rows, err = jobs.ReferralRecomputeRows(ctx, tx, params)
	}
	took := time.Since(start)
	if err != nil {
		return recomputeResult{}, fmt.Errorf("recompute: %w", err)
	}
	res := recomputeResult{took: took, rows: rows}
	for _, r := range rows {
		res.processed, res.updated = int(r.Processed), int(r.Updated)
		if r.ReferrerID != nil {
			res.rewardsChanged++
		}
	}
	if commit {
		if err := tx.Commit(ctx); err != nil {
			return recomputeResult{}, err
		}
	}
	return res, nil
}

// timed runs the recompute runs+1 times (the first warms the cache) and returns the
// durations sorted and the last result. With fresh, each run starts from no stored rewards
// (TRUNCATE, then the run commits); otherwise each run is rolled back. defaults runs it on
// the server's settings instead of the job's (see recompute).
func timed(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID, runs int, fresh, defaults bool) ([]time.Duration, recomputeResult, error) {
	var times []time.Duration
	var last recomputeResult
	for i := range runs + 1 {
		if fresh {
			if _, err := pool.Exec(ctx, "TRUNCATE referral_rewards"); err != nil {
				return nil, last, err
			}
		}
		res, err := recompute(ctx, pool, tenantID, true, fresh, defaults)
		if err != nil {
			return nil, last, err
		}
		fmt.Fprintf(os.Stderr, "  run %d: %s processed %d updated %d\n", i, res.took.Round(time.Millisecond), res.processed, res.updated)
		if i > 0 {
			times = append(times, res.took)
		}
		last = res
	}
	slices.Sort(times)
	return times, last, nil
}

func measure(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID, cfg config) error {
	if err := describeData(ctx, pool, tenantID); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "set-based recompute, first run (from no stored rewards)")
	firstTimes, first, err := timed(ctx, pool, tenantID, cfg.runs, true, false)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "set-based recompute, first run, on the server's settings")
	defaultsTimes, _, err := timed(ctx, pool, tenantID, cfg.runs, true, true)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "the recompute job's transaction, first run")
	job, err := jobRun(ctx, pool, tenantID)
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

	fmt.Fprintf(os.Stderr, "baseline loop on %d referrers\n", cfg.sample)
	loop, err := baseline(ctx, pool, tenantID, cfg.sample, false)
	if err != nil {
		return err
	}

	// Store the rewards for real, then measure the run that finds nothing to change.
	if _, err := recompute(ctx, pool, tenantID, true, true, false); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "set-based recompute, second run (nothing to write)")
	secondTimes, second, err := timed(ctx, pool, tenantID, cfg.runs, false, false)
	if err != nil {
		return err
	}
	secondPlan, err := explain(ctx, pool, tenantID)
	if err != nil {
		return err
	}

	// The loop's answers must be the query's: compare them with the live snapshot.
	snap, err := recompute(ctx, pool, tenantID, false, false, false)
	if err != nil {
		return err
	}
	mismatches := compare(snap.rows, loop.snapshots)
	var outcomes snapshot
	for _, r := range snap.rows {
		if r.ReferrerID != nil {
			outcomes.referred += *r.ReferredTotal
			outcomes.qualified += *r.QualifiedTotal
			outcomes.cooldown += *r.DisqualifiedCooldown
			outcomes.missingIP += *r.DisqualifiedMissingIP
			outcomes.sharedIP += *r.DisqualifiedSharedIP
			outcomes.duplicateIP += *r.DisqualifiedDuplicateIP
		}
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
	perReferrer := loop.took / time.Duration(loop.referrers)
	extrapolated := perReferrer * time.Duration(first.processed)
	fmt.Printf("### Set-based recompute (ReferralRecompute, all referrers)\n\n")
	fmt.Printf("- first run (no stored rewards): processed %d, updated %d, rewards changed %d; %s\n",
		first.processed, first.updated, first.rewardsChanged, span(firstTimes))
	fmt.Printf("- first run on the server's settings (no ReferralRecomputeSession: JIT on, default work_mem): %s\n", span(defaultsTimes))
	fmt.Printf("- first run through the job's function (jobs.ReferralRecompute: the query, then an audit row and a referral.reward_changed event for each of the %d bonus or badge changes), one run: %s\n",
		job.RewardsChanged, job.took.Round(time.Millisecond))
	fmt.Printf("- second run (nothing changed): processed %d, updated %d; %s\n\n", second.processed, second.updated, span(secondTimes))
	fmt.Printf("### Per-referrer loop (the seed's queries)\n\n")
	fmt.Printf("- sample of %d referrers (random, fixed): %s, %d queries, %s per referrer; wrote %d rewards\n",
		loop.referrers, loop.took.Round(time.Millisecond), loop.queries, perReferrer.Round(time.Microsecond), loop.updated)
	fmt.Printf("- extrapolated to all %d referrers: %s\n", first.processed, extrapolated.Round(time.Second))
	fmt.Printf("- its answers for the sample equal ReferralRecompute's: %d mismatches\n", mismatches)
	fmt.Printf("- speed-up of the set-based first run: %.0fx\n", float64(extrapolated)/float64(med(firstTimes)))
	if literal.referrers > 0 {
		litPer := literal.took / time.Duration(literal.referrers)
		fmt.Printf("- the seed's query as written (registration IPs of every customer aggregated at each referrer): %d referrers in %s, %s per referrer, extrapolated %s (%.0fx the set-based run)\n",
			literal.referrers, literal.took.Round(time.Millisecond), litPer.Round(time.Millisecond),
			(litPer * time.Duration(first.processed)).Round(time.Minute), float64(litPer*time.Duration(first.processed))/float64(med(firstTimes)))
	}
	fmt.Printf("\n#### EXPLAIN (ANALYZE, BUFFERS), first run\n\n```\n%s```\n\n#### EXPLAIN (ANALYZE, BUFFERS), second run\n\n```\n%s```\n", firstPlan, secondPlan)
	return nil
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

// jobResult is one run of the recompute job's function.
type jobResult struct {
	jobs.ReferralRecomputeResult
	took time.Duration
}

// jobRun times jobs.ReferralRecompute for all referrers from no stored rewards (what a
// referral.recompute job does in its transaction, less completing the job), rolled back.
func jobRun(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID) (jobResult, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return jobResult{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // measured, never kept
	if _, err := tx.Exec(ctx, "TRUNCATE referral_rewards"); err != nil {
		return jobResult{}, err
	}
	st := core.Step{Now: now, Actor: core.Actor{Type: core.ActorCLI, ID: "bench"}}
	start := clock.System{}.Now()
	res, err := jobs.ReferralRecompute(ctx, tx, st, jobargs.ReferralRecompute{TenantID: tenantID})
	if err != nil {
		return jobResult{}, err
	}
	return jobResult{ReferralRecomputeResult: res, took: time.Since(start)}, nil
}

// explain returns EXPLAIN (ANALYZE, BUFFERS) of the full recompute with write, in a
// transaction rolled back, with the job's session settings.
func explain(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID) (string, error) {
	text, err := benchsql.QueryText("sql/referrals.sql.go", "referralRecompute")
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
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+text, pgx.QueryExecModeDescribeExec, true, now, tenantID, (*uuid.UUID)(nil))
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
