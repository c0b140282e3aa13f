// Command renewals generates a large subscription book and measures the renewal sweeps'
// selections: SubscriptionListDueAllTenants (the subscription.renew_sweep's pick of due
// subscriptions) and SubscriptionLapseDueAllTenants (the lapse sweep). It prints Markdown
// with the median of several runs and EXPLAIN (ANALYZE, BUFFERS) of each, and records each
// median with bench/internal/report ("... at N subscriptions, median", ms); every run is in a
// transaction rolled back, so the data does not change between runs.
//
//	DATABASE_URL=... go run ./bench/renewals -subscriptions 1000000
//	DATABASE_URL=... go run ./bench/renewals -subscriptions 10000 -throughput-workers 20
//
// With -throughput-workers it measures renewals per second instead (bench/liverenewals), on a
// pool of 20 connections (TESSERA_DB_MAX_CONNS's default), and — when the server loads
// pg_stat_statements (the embedded database does) — counts the SQL statements per renewal and
// prints them by statement; it records "renewals" (/s, a fraction of pgbench TPC-B) and
// "statements per renewal" with bench/internal/report. It also prints and records the CPU time per renewal
// of this process (Tessera's workers, the River client and the fake BTCPay run in it) and of
// the Postgres cluster (the postmaster and its children, from /proc, when the server runs on
// this machine), which bound renewals per second on a machine's cores; -cpuprofile writes a
// pprof CPU profile of this process during the measurement.
//
// It creates the database named by -db on DATABASE_URL's server (dropping it first), migrates
// it with internal/migrate.Up, and drops it at the end unless -keep is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/bench/internal/benchdb"
	"github.com/tessera/tessera/bench/internal/benchsql"
	"github.com/tessera/tessera/bench/internal/report"
	"github.com/tessera/tessera/bench/liverenewals"
	"github.com/tessera/tessera/internal/clock"
)

func main() {
	subscriptions := flag.Int("subscriptions", 1_000_000, "subscriptions (each with its customer and licence)")
	runs := flag.Int("runs", 7, "timed runs of each query")
	dbName := flag.String("db", "tessera_bench_renewals", "database to create on DATABASE_URL's server")
	keep := flag.Bool("keep", false, "keep the database at the end")
	workers := flag.Int("throughput-workers", 0, "instead of the queries: make every subscription due and measure renewals per second with this many River workers against a fake BTCPay")
	cpuProfile := flag.String("cpuprofile", "", "with -throughput-workers: write a pprof CPU profile of this process during the measurement to this file")
	flag.Parse()
	if err := run(context.Background(), *subscriptions, *runs, *dbName, *keep, *workers, *cpuProfile); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, subscriptions, runs int, dbName string, keep bool, workers int, cpuProfile string) (err error) {
	db, err := benchdb.Create(ctx, dbName, liverenewals.Pool)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close(ctx, keep)) }()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	start := clock.System{}.Now()
	if err := liverenewals.Generate(ctx, db.Pool, now, subscriptions); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "generated %d subscriptions in %s\n", subscriptions, time.Since(start).Round(time.Second))
	if workers > 0 {
		return throughput(ctx, db.Pool, now, workers, cpuProfile)
	}
	results, err := measure(ctx, db.Pool, now, runs, "sql/renewals.sql.go")
	if err != nil {
		return err
	}
	for _, r := range results {
		if err := report.Add(r); err != nil {
			return err
		}
	}
	return nil
}

// throughput measures renewals per second and, when it can, the statements per renewal.
func throughput(ctx context.Context, pool *pgxpool.Pool, now time.Time, workers int, cpuProfile string) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	statements, err := benchdb.StatementsStart(ctx, conn.Conn())
	if errors.Is(err, benchdb.ErrNoStatements) {
		fmt.Fprintln(os.Stderr, "statements not counted:", err)
	} else if err != nil {
		return err
	}
	postmaster, err := postmasterPID(ctx, pool)
	if err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, f.Close()) }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	before, err := cpuNow(postmaster)
	if err != nil {
		return err
	}
	r, err := liverenewals.Throughput(ctx, pool, now, workers)
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	after, err := cpuNow(postmaster)
	if err != nil {
		return err
	}
	fmt.Printf("%d renewals (sweep, payin.create_invoices at the fake BTCPay) with %d workers in %s: %.0f renewals/s\n",
		r.Renewals, r.Workers, r.Elapsed.Round(time.Millisecond), r.PerSecond())
	fmt.Fprintf(os.Stderr, "fake BTCPay answered %d requests\n", r.ProviderRequests)
	perRenewal := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(r.Renewals) }
	fmt.Printf("CPU per renewal: this process (workers, River, fake BTCPay) %.2f ms, Postgres %.2f ms (wall %.2f ms per renewal)\n",
		perRenewal(after.Process-before.Process), perRenewal(after.Postgres-before.Postgres), perRenewal(r.Elapsed))
	if err := report.Add(report.Result{Name: "renewals", Value: r.PerSecond(), Unit: "/s", Limit: report.TPCB}); err != nil {
		return err
	}
	cpu := []report.Result{{Name: "CPU per renewal, Tessera's workers", Value: perRenewal(after.Process - before.Process), Unit: "ms"}}
	if postmaster != 0 { // a server on another machine: its CPU is not counted
		cpu = append(cpu, report.Result{Name: "CPU per renewal, Postgres", Value: perRenewal(after.Postgres - before.Postgres), Unit: "ms"})
	}
	for _, c := range cpu {
		if err := report.Add(c); err != nil {
			return err
		}
	}
	if statements == nil {
		return nil
	}
	totals, err := statements.Count(ctx)
	if err != nil {
		return err
	}
	fmt.Println()
	totals.Print(os.Stdout, r.Renewals, "renewal")
	return report.Add(report.Result{Name: "statements per renewal", Value: float64(totals.Calls) / float64(r.Renewals), Unit: "statements"})
}

// measure times the sweeps' selections, as generated in queries (sql/renewals.sql.go from the
// repository's root), prints their medians and plans, and returns the medians to record.
func measure(ctx context.Context, pool *pgxpool.Pool, now time.Time, runs int, queries string) ([]report.Result, error) {
	var total, due int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status IN ('active', 'past_due') AND consecutive_failures < 5 AND next_renewal_at <= $1)
		FROM subscriptions`, now).Scan(&total, &due); err != nil {
		return nil, err
	}
	var results []report.Result
	fmt.Printf("Data: %d subscriptions, %d due at now.\n\n", total, due)
	for _, q := range []struct{ name, constant string }{
		{"SubscriptionListDueAllTenants (batch 500)", "subscriptionListDueAllTenants"},
		{"SubscriptionLapseDueAllTenants (batch 1000)", "subscriptionLapseDueAllTenants"},
	} {
		text, err := benchsql.QueryText(queries, q.constant)
		if err != nil {
			return nil, err
		}
		batch := 500
		if q.constant == "subscriptionLapseDueAllTenants" {
			batch = 1000
		}
		var times []time.Duration
		var rowsSeen int
		for i := range runs + 1 {
			start := clock.System{}.Now()
			n, err := inRolledBackTx(ctx, pool, func(tx pgx.Tx) (int, error) {
				rows, err := tx.Query(ctx, text, now, batch)
				if err != nil {
					return 0, err
				}
				count := 0
				for rows.Next() {
					count++
				}
				return count, rows.Err()
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", q.name, err)
			}
			if i > 0 { // the first run warms the cache
				times = append(times, time.Since(start))
			}
			rowsSeen = n
		}
		slices.Sort(times)
		results = append(results, report.Result{Name: fmt.Sprintf("%s at %d subscriptions, median", q.name, total),
			Value: float64(times[len(times)/2].Microseconds()) / 1000, Unit: "ms"})
		fmt.Printf("### %s\n\nmedian %s over %d runs (min %s, max %s), %d rows, each run in a transaction rolled back\n\n```\n", q.name,
			times[len(times)/2].Round(time.Microsecond), runs, times[0].Round(time.Microsecond), times[len(times)-1].Round(time.Microsecond), rowsSeen)
		_, err = inRolledBackTx(ctx, pool, func(tx pgx.Tx) (int, error) {
			rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+text, now, batch)
			if err != nil {
				return 0, err
			}
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					return 0, err
				}
				fmt.Println(line)
			}
			return 0, rows.Err()
		})
		if err != nil {
			return nil, err
		}
		fmt.Print("```\n\n")
	}
	return results, nil
}

// inRolledBackTx runs fn in a transaction that is always rolled back.
func inRolledBackTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) (int, error)) (int, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // rolled back on purpose; nothing to keep
	return fn(tx)
}
