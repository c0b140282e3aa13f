package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/btcpay"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/migrate"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/priority"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/jobs"
)

func newServeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API and work River jobs in one process",
		Long: "serve listens on TESSERA_ADDR and works River jobs. With TESSERA_OPERATOR_PASSWORD set it also\n" +
			"serves River UI at /riverui/ to operators signed in as TESSERA_OPERATOR_USER. On SIGINT or\n" +
			"SIGTERM it stops accepting requests, drains those in flight, lets running jobs finish, and\n" +
			"cancels what is left after TESSERA_SHUTDOWN_TIMEOUT.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
			}
			return run(cmd.Context(), cfg, ln, servesAPI)
		},
	}
}

func newWorkerCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Work River jobs, serving only /metrics and /healthz",
		Long:  "worker works River jobs and serves /metrics and /healthz on TESSERA_METRICS_ADDR, not the API.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.MetricsAddr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", cfg.MetricsAddr, err)
			}
			return run(cmd.Context(), cfg, ln, servesMetrics)
		},
	}
}

// serves is what a process serves on its listener.
type serves int

const (
	// servesAPI: the API, /metrics among its routes, and River UI when an operator
	// password is configured (tessera serve).
	servesAPI serves = iota
	// servesMetrics: only /metrics and /healthz (tessera worker).
	servesMetrics
)

// run works River jobs and serves what on ln, until ctx is cancelled. Then it shuts down in
// order: stop accepting and drain HTTP requests, let running jobs finish (soft stop), and
// cancel the jobs still running after the timeout (hard stop).
func run(ctx context.Context, cfg Config, ln net.Listener, what serves) error {
	defer func() { _ = ln.Close() }() // for when run fails before serving; after Shutdown, closing again fails harmlessly
	log := cfg.logger()
	_, stopPprof, err := servePprof(cfg, log)
	if err != nil {
		return err
	}
	defer stopPprof()
	pool, err := cfg.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	pending, err := migrate.Pending(ctx, pool)
	if err != nil {
		return err
	}
	if pending {
		return errors.New("the database has pending migrations: run tessera migrate first")
	}
	// The pick and the bounds it keeps score with the stored weights: store this process's.
	if err := upstream.WeightsSet(ctx, pool, cfg.revocation().Schedule.Weights); err != nil {
		return err
	}

	box, err := cfg.box()
	if err != nil {
		return err
	}
	payments, err := cfg.payments()
	if err != nil {
		return err
	}
	clk := clock.System{}
	sv := services{pool: pool, clock: clk, log: log, box: box, payments: payments,
		// One cache of the provider's rates quotes purchases (API) and renewals (jobs).
		rates: payment.NewCached(payments, clk, cfg.RateMaxAge)}
	if what == servesAPI {
		// Validations go first: while serve answers any, its jobs run a few at a time.
		sv.priority = priority.New(cfg.WorkersWhileValidating, jobWaitMax, jobargs.QueueWebhooks)
	}
	rescueAfter, err := cfg.rescueStuckJobsAfter()
	if err != nil {
		return err
	}
	if sv.jobs, sv.obs, err = startJobs(ctx, cfg, sv, rescueAfter); err != nil {
		return err
	}
	client := sv.jobs

	handler := sv.obs.handler()
	if what == servesAPI {
		// River UI shares this process's River client; it stops after HTTP has drained.
		uiCtx, stopUI := context.WithCancel(context.WithoutCancel(ctx))
		defer stopUI()
		mounts, err := riverUIMounts(uiCtx, cfg, client, log)
		if err != nil {
			return errors.Join(err, stopRiver(client, cfg.ShutdownTimeout))
		}
		sv.mounts = mounts
		reads, stopReads, err := startReads(ctx, cfg, sv)
		if err != nil {
			return errors.Join(err, stopRiver(client, cfg.ShutdownTimeout))
		}
		defer stopReads()
		sv.reads = reads
		handler, err = newHandler(cfg, sv)
		if err != nil {
			return errors.Join(err, stopRiver(client, cfg.ShutdownTimeout))
		}
		addr := ln.Addr().String()
		log.InfoContext(ctx, "tessera serving", "addr", addr, "docs", docsURL(addr), "rescue_stuck_jobs_after", rescueAfter)
		if mounts == nil {
			log.InfoContext(ctx, fmt.Sprintf("River UI is off: set TESSERA_OPERATOR_PASSWORD (at least %d characters) to serve it at %s/",
				operatorPasswordMin, riverUIPrefix))
		} else {
			log.InfoContext(ctx, "River UI for operators: sign in as user with the password TESSERA_OPERATOR_PASSWORD",
				"url", serveURL(addr, riverUIPrefix+"/"), "user", cfg.OperatorUser)
		}
	} else {
		log.InfoContext(ctx, "tessera working jobs", "workers", cfg.Workers, "metrics", "http://"+ln.Addr().String()+"/metrics",
			"rescue_stuck_jobs_after", rescueAfter)
	}
	return errors.Join(serveHTTP(ctx, cfg, ln, handler, log), stopRiver(client, cfg.ShutdownTimeout))
}

// jobWaitMax is how long serve holds a job back while it answers validations, at most: a
// slow job in the few slots then delays the others by a second, not by its own duration.
const jobWaitMax = time.Second

// startJobs creates the process's River client on sv's pool, working every job kind and
// enqueuing the periodic schedule, with the metrics of jobs and requests (observability)
// and, in serve, the validations' priority over jobs (sv.priority), and starts it.
func startJobs(ctx context.Context, cfg Config, sv services, rescueAfter time.Duration) (*river.Client[pgx.Tx], *observability, error) {
	jobsCfg := cfg.jobSettings()
	jobsCfg.DB, jobsCfg.Clock, jobsCfg.Log, jobsCfg.Box, jobsCfg.Payments, jobsCfg.Rates = sv.pool, sv.clock, sv.log, sv.box, sv.payments, sv.rates
	workers, err := jobs.Workers(jobsCfg)
	if err != nil {
		return nil, nil, err
	}
	periodic, err := jobs.PeriodicJobs(jobsCfg)
	if err != nil {
		return nil, nil, err
	}
	queues := map[string]river.QueueConfig{
		river.QueueDefault:    {MaxWorkers: cfg.Workers},
		jobargs.QueueWebhooks: {MaxWorkers: cfg.WebhookWorkers},
	}
	obs, err := newObservability(sv.pool, sv.clock, sv.log, slices.Sorted(maps.Keys(queues)))
	if err != nil {
		return nil, nil, err
	}
	var middleware []rivertype.Middleware // the first is the outermost
	if sv.priority != nil {
		middleware = append(middleware, sv.priority) // a job's metrics measure its work, not its wait
	}
	middleware = append(middleware, obs.jobs)
	client, err := river.NewClient(riverpgxv5.New(sv.pool), &river.Config{
		Queues:       queues,
		Workers:      workers,
		Middleware:   middleware,
		PeriodicJobs: periodic,
		Logger:       sv.log,
		// Fetch as soon as jobs are inserted or workers free up, not River's 100ms later: a
		// job's work takes milliseconds, so the cooldown would otherwise bound throughput.
		FetchCooldown: cfg.FetchCooldown,
		// Every worker sets its own Timeout; this is River's fallback for any that would not.
		JobTimeout: cfg.JobTimeout,
		// A job still running after this is taken for orphaned and retried: minutes, not
		// River's default hour, yet never before its own timeout has passed.
		RescueStuckJobsAfter: rescueAfter,
		// LISTEN needs a session of its own, which a transaction pooler does not keep: there
		// River polls for new jobs (every FetchPollInterval, 1 s) and for the leader.
		PollOnly: cfg.transactionPooled(),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create river client: %w", err)
	}
	// River stops hard when its start context ends; run's shutdown stops it softly first.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, nil, fmt.Errorf("start river: %w", err)
	}
	return client, obs, nil
}

// serveHTTP serves handler on ln until ctx is cancelled (logged on log) or serving fails,
// then stops accepting and drains the requests in flight within cfg.ShutdownTimeout.
func serveHTTP(ctx context.Context, cfg Config, ln net.Listener, handler http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-serveErr:
		runErr = fmt.Errorf("serve http: %w", runErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("drain http requests: %w", err))
	}
	return runErr
}

// services are what a serving process has built from its configuration.
type services struct {
	pool     *pgxpool.Pool
	clock    clock.Clock
	log      *slog.Logger
	jobs     *river.Client[pgx.Tx]
	box      *secrets.Box
	payments *btcpay.Client
	rates    payment.RateSource
	obs      *observability
	mounts   map[string]http.Handler // River UI, when it is on
	reads    api.Reader              // the read replica's router, when there is one
	priority *priority.Gate          // validations before jobs (serve; nil in worker)
}

// newHandler builds the API's handler, serving the process's metrics.
func newHandler(cfg Config, sv services) (http.Handler, error) {
	pool := sv.pool
	server, err := api.New(api.Config{
		DB:                  pool,
		Clock:               sv.clock,
		Jobs:                sv.jobs,
		Box:                 sv.box,
		Payments:            sv.payments,
		Rates:               sv.rates,
		Log:                 sv.log,
		Metrics:             sv.obs.registry,
		Outcomes:            sv.obs.outcomes,
		IdempotencyTTL:      cfg.IdempotencyTTL,
		WebhookMaxEndpoints: cfg.WebhookMaxEndpoints,
		Revocation:          cfg.revocation().Schedule,
		ValidatePerKey:      api.RateLimit{PerSecond: cfg.ValidatePerKey, Burst: cfg.ValidateKeyBurst},
		ValidatePerClient:   api.RateLimit{PerSecond: cfg.ValidatePerClient, Burst: cfg.ValidateClientBurst},
		Mounts:              sv.mounts,
		Reads:               sv.reads,
		Priority:            sv.priority,
		Ready: func(ctx context.Context) error {
			pending, err := migrate.Pending(ctx, pool)
			switch {
			case err != nil:
				return err
			case pending:
				return errors.New("the database has pending migrations")
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	return server.Handler(), nil
}

// stopRiver lets running jobs finish for up to timeout, then cancels them and waits up to
// timeout again.
func stopRiver(client *river.Client[pgx.Tx], timeout time.Duration) error {
	softCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := client.Stop(softCtx)
	if err == nil {
		return nil
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stop river: %w", err)
	}
	hardCtx, cancelHard := context.WithTimeout(context.Background(), timeout)
	defer cancelHard()
	if err := client.StopAndCancel(hardCtx); err != nil {
		return fmt.Errorf("stop river (cancelling jobs): %w", err)
	}
	return nil
}
