// Command webhooks measures webhook fairness: tenant B's delivery latency (from the commit
// of the change that emitted the event to the request reaching B's endpoint) while tenant A
// has a large backlog queued to endpoints that do not answer well. It runs Tessera's
// workers on a real River client configured as `tessera serve` configures it (default queue
// TESSERA_WORKERS, webhooks queue TESSERA_WEBHOOK_WORKERS, the periodic jobs), with the
// system clock and loopback endpoints.
//
//	DATABASE_URL=... go run ./bench/webhooks -variant dead -queued 100000
//	DATABASE_URL=... go run ./bench/webhooks -variant hanging -queued 100000 -a-endpoints 20
//
// Variants of A's endpoints: dead (connection refused at once), hanging (accept, never
// answer: every attempt waits for -timeout), slow (answer 200 after -slow). B emits one
// event every -interval, -events times, each in its own transaction through core.Emit.
//
// It prints a Markdown table row and EXPLAIN (ANALYZE, BUFFERS) of the hot queries; B's p50
// and p99 also go to make bench's table (bench/internal/report).
//
// It creates the database named by -db on DATABASE_URL's server (dropping it first), migrates
// it with internal/migrate.Up, and drops it at the end unless -keep is given.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/tessera/tessera/bench/internal/benchsql"
	"github.com/tessera/tessera/bench/internal/report"
	"github.com/tessera/tessera/internal/btcpay"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/fakebtcpay"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/migrate"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/jobs"
	"github.com/tessera/tessera/sql"
)

// options are the command's flags.
type options struct {
	variant        string
	queued         int
	aEndpoints     int
	events         int
	interval       time.Duration
	timeout        time.Duration
	slow           time.Duration
	workers        int
	webhookWorkers int
	dbName         string
	keep           bool
}

func main() {
	var o options
	flag.StringVar(&o.variant, "variant", "dead", "tenant A's endpoints: dead, hanging or slow")
	flag.IntVar(&o.queued, "queued", 100_000, "deliveries queued for tenant A, spread over its endpoints")
	flag.IntVar(&o.aEndpoints, "a-endpoints", 1, "tenant A's endpoints")
	flag.IntVar(&o.events, "events", 150, "events tenant B emits")
	flag.DurationVar(&o.interval, "interval", 200*time.Millisecond, "time between B's events")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "TESSERA_WEBHOOK_TIMEOUT")
	flag.DurationVar(&o.slow, "slow", 3*time.Second, "how long a slow endpoint takes to answer")
	flag.IntVar(&o.workers, "workers", 10, "TESSERA_WORKERS")
	flag.IntVar(&o.webhookWorkers, "webhook-workers", 50, "TESSERA_WEBHOOK_WORKERS")
	flag.StringVar(&o.dbName, "db", "tessera_bench_webhooks", "database to create on DATABASE_URL's server")
	flag.BoolVar(&o.keep, "keep", false, "keep the database at the end")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, o options) (err error) {
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		return fmt.Errorf("DATABASE_URL is not set")
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer func() { _ = admin.Close(ctx) }() // an admin connection: its statements' errors are what count
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+o.dbName+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+o.dbName); err != nil {
		return err
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	u.Path = "/" + o.dbName
	pc, err := pg.PoolConfig(u.String())
	if err != nil {
		return err
	}
	pc.MaxConns = 20 // TESSERA_DB_MAX_CONNS
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer func() {
		pool.Close()
		if !o.keep {
			if _, dropErr := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+o.dbName+" WITH (FORCE)"); dropErr != nil && err == nil {
				err = dropErr
			}
		}
	}()
	if err := migrate.Up(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	return measure(ctx, pool, o)
}

// receiver records when each of B's events arrived, by its sequence number (seqID).
type receiver struct {
	mu      sync.Mutex
	arrived map[int]time.Time
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body struct {
		Data struct {
			LicenseID uuid.UUID `json:"license_id"`
		} `json:"data"`
	}
	raw, err := io.ReadAll(req.Body)
	if err == nil {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil { //lint:swallow the receiver answers a body it cannot read with 400, as a real one would
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	seq := int(binary.BigEndian.Uint64(body.Data.LicenseID[8:]))
	r.mu.Lock()
	if _, seen := r.arrived[seq]; !seen {
		r.arrived[seq] = clock.System{}.Now()
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.arrived)
}

// endpointsOfA starts what tenant A's endpoints point at and returns their URLs.
func endpointsOfA(o options, release <-chan struct{}) ([]string, func(), error) {
	switch o.variant {
	case "dead":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil { // nothing listens there now: connection refused
			return nil, nil, err
		}
		urls := make([]string, o.aEndpoints)
		for i := range urls {
			urls[i] = fmt.Sprintf("http://%s/dead/%d", addr, i)
		}
		return urls, func() {}, nil
	case "hanging", "slow":
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			wait := o.slow
			if o.variant == "hanging" {
				wait = time.Hour
			}
			select {
			case <-time.After(wait):
			case <-release:
			case <-r.Context().Done():
			}
		}))
		urls := make([]string, o.aEndpoints)
		for i := range urls {
			urls[i] = fmt.Sprintf("%s/%s/%d", srv.URL, o.variant, i)
		}
		return urls, srv.Close, nil
	}
	return nil, nil, fmt.Errorf("unknown variant %q: dead, hanging or slow", o.variant)
}

func measure(ctx context.Context, pool *pgxpool.Pool, o options) error {
	box, err := secrets.New(make([]byte, secrets.KeySize))
	if err != nil {
		return err
	}
	clk := clock.System{}
	actor := core.Actor{Type: core.ActorCLI, ID: "bench"}
	now := clk.Now()
	var tenantA sql.Tenant
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) (err error) {
		tenantA, err = core.TenantCreate(ctx, tx, core.Step{Now: now, Actor: actor, Box: box}, core.TenantCreateParams{Slug: "tenant-a", Name: "A"})
		return err
	})
	if err != nil {
		return err
	}
	var tenantB sql.Tenant
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) (err error) {
		tenantB, err = core.TenantCreate(ctx, tx, core.Step{Now: now, Actor: actor, Box: box}, core.TenantCreateParams{Slug: "tenant-b", Name: "B"})
		return err
	})
	if err != nil {
		return err
	}
	release := make(chan struct{})
	urls, stopA, err := endpointsOfA(o, release)
	if err != nil {
		return err
	}
	defer stopA()
	defer close(release)
	st := core.Step{Now: now, Actor: actor, Box: box}
	endpointCreate := func(p core.WebhookEndpointCreateParams) (id uuid.UUID, err error) {
		err = pg.InTx(ctx, pool, func(tx pgx.Tx) error {
			endpoint, _, err := core.WebhookEndpointCreate(ctx, tx, st, p)
			id = endpoint.ID
			return err
		})
		return id, err
	}
	var endpointIDs []uuid.UUID
	for _, u := range urls {
		id, err := endpointCreate(core.WebhookEndpointCreateParams{TenantID: tenantA.ID, MaxEndpoints: o.aEndpoints, URL: u, EventTypes: []string{core.EventLicenseIssued}})
		if err != nil {
			return err
		}
		endpointIDs = append(endpointIDs, id)
	}
	rec := &receiver{arrived: map[int]time.Time{}}
	srvB := httptest.NewServer(rec)
	defer srvB.Close()
	if _, err := endpointCreate(core.WebhookEndpointCreateParams{TenantID: tenantB.ID, MaxEndpoints: 1, URL: srvB.URL, EventTypes: []string{core.EventLicenseIssued}}); err != nil {
		return err
	}

	// A's backlog: one event per delivery, spread over A's endpoints, all due now.
	start := clock.System{}.Now()
	steps := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO events (tenant_id, id, type, data, occurred_at)
		  SELECT $1, gen_random_uuid(), 'license.issued', jsonb_build_object('n', g), $2 FROM generate_series(1, $3) g`,
			[]any{tenantA.ID, now, o.queued}},
		{`INSERT INTO webhook_deliveries (tenant_id, id, event_id, endpoint_id, created_at, next_attempt_at)
		  SELECT $1, gen_random_uuid(), e.id, ($3::uuid[])[1 + (e.n % cardinality($3::uuid[]))], $2, $2
		  FROM (SELECT id, row_number() OVER () AS n FROM events WHERE tenant_id = $1) e`,
			[]any{tenantA.ID, now, endpointIDs}},
		{`ANALYZE`, nil},
	}
	for i, step := range steps {
		if _, err := pool.Exec(ctx, step.sql, step.args...); err != nil {
			return fmt.Errorf("generate step %d: %w", i, err)
		}
	}
	fmt.Fprintf(os.Stderr, "queued %d deliveries for tenant A in %s\n", o.queued, time.Since(start).Round(time.Millisecond))

	rates, err := payment.NewFixed(clk, map[string]int64{"USD": 5_000_000})
	if err != nil {
		return err
	}
	payments, stopPayments, err := fakePayments()
	if err != nil {
		return err
	}
	defer stopPayments()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	jobsCfg := jobs.Config{DB: pool, Clock: clk, Log: logger, Box: box, Payments: payments, Rates: rates,
		WebhookTimeout: o.timeout, AllowPrivateNetworks: true}
	workers, err := jobs.Workers(jobsCfg)
	if err != nil {
		return err
	}
	periodic, err := jobs.PeriodicJobs(jobsCfg)
	if err != nil {
		return err
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues: map[string]river.QueueConfig{
			river.QueueDefault:    {MaxWorkers: o.workers},
			jobargs.QueueWebhooks: {MaxWorkers: o.webhookWorkers},
		},
		Workers:      workers,
		PeriodicJobs: periodic,
		Logger:       logger,
	})
	if err != nil {
		return err
	}
	// A's endpoints' jobs, as the transactions creating the deliveries would have enqueued.
	if err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		return core.WebhookDeliverEnqueue(ctx, tx, core.Step{Jobs: client}, core.WebhookDeliverEnqueueParams{TenantID: tenantA.ID, EndpointIDs: endpointIDs})
	}); err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	defer client.StopAndCancel(context.WithoutCancel(ctx)) //nolint:errcheck // the measurement is done
	time.Sleep(2 * time.Second)                            // A's jobs are running

	attemptsBefore, err := attemptsOf(ctx, pool, tenantA.ID)
	if err != nil {
		return err
	}
	committed := make([]time.Time, o.events)
	runStart := clock.System{}.Now()
	for i := range o.events {
		if err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
			return core.Emit(ctx, tx, core.Step{Jobs: client, Now: clk.Now()}, core.Event{TenantID: tenantB.ID, Data: core.LicenseIssuedEvent{LicenseID: seqID(i)}})
		}); err != nil {
			return err
		}
		committed[i] = clock.System{}.Now()
		time.Sleep(o.interval)
	}
	deadline := clock.System{}.Now().Add(2 * time.Minute)
	for rec.count() < o.events && (clock.System{}).Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	window := time.Since(runStart)
	attemptsAfter, err := attemptsOf(ctx, pool, tenantA.ID)
	if err != nil {
		return err
	}

	rec.mu.Lock()
	latencies := make([]time.Duration, 0, o.events)
	for i, at := range committed {
		if arrived, ok := rec.arrived[i]; ok {
			latencies = append(latencies, arrived.Sub(at))
		}
	}
	rec.mu.Unlock()
	slices.Sort(latencies)
	if len(latencies) == 0 {
		return fmt.Errorf("none of B's %d events arrived within two minutes", o.events)
	}
	pct := func(p float64) time.Duration {
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	fmt.Printf("| %s | %d | %d | %d of %d | %s | %s | %s | %d in %s |\n", o.variant, o.queued, o.aEndpoints, len(latencies), o.events,
		pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond), attemptsAfter-attemptsBefore, window.Round(time.Second))
	name := fmt.Sprintf("webhooks: tenant B's delivery %%s behind A's %d deliveries (%s endpoints: %d)", o.queued, o.variant, o.aEndpoints)
	if err := errors.Join(
		report.Add(report.Result{Name: fmt.Sprintf(name, "p50"), Value: float64(pct(0.5)) / float64(time.Millisecond), Unit: "ms"}),
		report.Add(report.Result{Name: fmt.Sprintf(name, "p99"), Value: float64(pct(0.99)) / float64(time.Millisecond), Unit: "ms"}),
	); err != nil {
		return err
	}
	if err := client.StopAndCancel(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	return explain(ctx, pool, tenantA.ID, endpointIDs[0], clk.Now())
}

// explain prints EXPLAIN (ANALYZE, BUFFERS) of the hot queries on A's backlog, each in a
// transaction rolled back: a run's claim of the endpoint's next due delivery, and the sweep.
func explain(ctx context.Context, pool *pgxpool.Pool, tenantID, endpointID uuid.UUID, now time.Time) error {
	for _, q := range []struct {
		constant string
		args     []any
	}{
		{"webhookDeliveryClaimNextDue", []any{tenantID, endpointID, now, now.Add(time.Minute)}},
		{"webhookEndpointListWorkAllTenants", []any{now}},
	} {
		text, err := benchsql.QueryText("sql/webhooks.sql.go", q.constant)
		if err != nil {
			return err
		}
		err = pg.InTx(ctx, pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+text, q.args...)
			if err != nil {
				return err
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			fmt.Printf("\n%s:\n\n    %s\n", q.constant, strings.Join(lines, "\n    "))
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			return err
		}
	}
	return nil
}

// errRollback rolls back an EXPLAIN ANALYZE that wrote (the claim).
var errRollback = errors.New("rolled back")

// attemptsOf sums the attempts made on a tenant's deliveries.
func attemptsOf(ctx context.Context, pool *pgxpool.Pool, tenantID uuid.UUID) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(attempts), 0) FROM webhook_deliveries WHERE tenant_id = $1`, tenantID).Scan(&n)
	return n, err
}

// fakePayments starts a fake BTCPay on loopback: the workers need a payment provider,
// though no job here uses it.
func fakePayments() (*btcpay.Client, func(), error) {
	fake, err := fakebtcpay.New(fakebtcpay.Config{StoreID: "bench", APIKey: "bench", WebhookSecret: "bench", Rates: map[string]string{"USD": "50000.00"}})
	if err != nil {
		return nil, nil, err
	}
	srv := httptest.NewServer(fake.Handler())
	client, err := btcpay.New(btcpay.Config{BaseURL: srv.URL, StoreID: "bench", APIKey: "bench", WebhookSecret: "bench"})
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	return client, srv.Close, nil
}

// seqID is the licence id B's i-th event carries: i in its last 8 bytes, so the receiver
// knows which event arrived.
func seqID(i int) uuid.UUID {
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[8:], uint64(i))
	return id
}
