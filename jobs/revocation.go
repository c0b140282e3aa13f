package jobs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/outbound"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

// RevocationConfig configures the upstream revocation check loop (SPEC 5).
type RevocationConfig struct {
	// Interval is the global rate limit: at most one firing of revocation.check makes
	// upstream requests per Interval, across every process and worker. Default 60s.
	Interval time.Duration
	// PerFiring is how many upstream requests one firing makes at most. Default 1.
	PerFiring int
	// Schedule holds the risk score's weights and the per-licence minimum interval between
	// checks. Default upstream.DefaultSchedule (15 minutes).
	Schedule upstream.Schedule
	// ErrorBackoff is how long a licence whose check failed (5xx, timeout) is held back.
	// Default 5m.
	ErrorBackoff time.Duration
	// Timeout bounds one upstream request. Default 10s.
	Timeout time.Duration
	// HTTPClient sends upstream requests. Default: outbound.Client with
	// Config.AllowPrivateNetworks (a store's base_url is a tenant's choice).
	HTTPClient *http.Client
}

// withDefaults fills in defaults and validates.
func (c RevocationConfig) withDefaults() (RevocationConfig, error) {
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.PerFiring == 0 {
		c.PerFiring = 1
	}
	c.Schedule = c.Schedule.OrDefault()
	if c.ErrorBackoff == 0 {
		c.ErrorBackoff = 5 * time.Minute
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	switch {
	case c.Interval < 0 || c.PerFiring < 0 || c.ErrorBackoff < 0 || c.Timeout < 0 || c.Schedule.MinInterval < 0:
		return c, errors.New("jobs: Config.Revocation durations and PerFiring must be positive")
	case c.PerFiring > 1000:
		return c, errors.New("jobs: Config.Revocation.PerFiring must be at most 1000")
	}
	return c, c.Schedule.Weights.Validate()
}

// RevocationCheckWorker is one firing of the check loop. It first takes the global permit
// with a guarded update of the one revocation_limiter row, committed at once: a firing
// that finds it taken (another process's firing in the same interval, or this job's
// earlier attempt) completes without a request. With the permit it checks up to PerFiring
// licences, each picked by RevocationQueue (the eligible licence with the highest risk
// score) and leased so no other worker checks it meanwhile; the request to the store is
// never sent inside a transaction; each outcome is recorded by upstream.RecordCheck in its
// own transaction.
type RevocationCheckWorker struct {
	river.WorkerDefaults[jobargs.RevocationCheck]
	cfg    Config
	rc     RevocationConfig
	client *upstream.Client
}

func newRevocationCheckWorker(cfg Config) (*RevocationCheckWorker, error) {
	rc, err := cfg.Revocation.withDefaults()
	if err != nil {
		return nil, err
	}
	if rc.HTTPClient == nil {
		rc.HTTPClient = outbound.Client(cfg.AllowPrivateNetworks)
	}
	client, err := upstream.NewClient(rc.HTTPClient, rc.Timeout)
	if err != nil {
		return nil, err
	}
	return &RevocationCheckWorker{cfg: cfg, rc: rc, client: client}, nil
}

// Timeout bounds one firing: each of its requests (RevocationConfig.Timeout) with 5 s to
// pick and lease its licence, and Config.JobTimeout for recording the last outcome.
func (w *RevocationCheckWorker) Timeout(*river.Job[jobargs.RevocationCheck]) time.Duration {
	return time.Duration(w.rc.PerFiring)*(w.rc.Timeout+5*time.Second) + w.cfg.jobTimeout()
}

// Work takes the permit and checks licences.
func (w *RevocationCheckWorker) Work(ctx context.Context, job *river.Job[jobargs.RevocationCheck]) error {
	granted := false
	err := pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		n, err := queries.RevocationLimiterAcquire(ctx, tx, sql.RevocationLimiterAcquireParams{
			Now: w.cfg.Clock.Now(), IntervalSeconds: w.rc.Interval.Seconds(),
		})
		if err != nil {
			return fmt.Errorf("take revocation permit: %w", err)
		}
		if granted = n == 1; !granted {
			return complete(ctx, tx, job)
		}
		return nil
	})
	if err != nil || !granted {
		return err
	}
	for range w.rc.PerFiring {
		target, ok, err := w.claim(ctx)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := w.check(ctx, job, target); err != nil {
			return err
		}
	}
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return complete(ctx, tx, job) })
}

// claim picks the next licence and leases it; false when no licence is eligible.
func (w *RevocationCheckWorker) claim(ctx context.Context) (upstream.Target, bool, error) {
	for range 5 { // another worker may lease the same pick first
		now := w.cfg.Clock.Now()
		rows, err := queries.RevocationQueue(ctx, w.cfg.DB, w.rc.Schedule.QueueParams(now, nil, 1))
		if err != nil {
			return upstream.Target{}, false, fmt.Errorf("pick licence to check: %w", err)
		}
		if len(rows) == 0 {
			return upstream.Target{}, false, nil
		}
		next := rows[0]
		leased, err := queries.UpstreamLicenseClaimAllTenants(ctx, w.cfg.DB, sql.UpstreamLicenseClaimAllTenantsParams{
			Now: now, LeaseSeconds: (w.rc.Timeout + w.cfg.jobTimeout()).Seconds(), TenantID: next.TenantID,
			LicenseID: next.LicenseID, MinIntervalSeconds: w.rc.Schedule.MinInterval.Seconds(),
		})
		if err != nil {
			return upstream.Target{}, false, fmt.Errorf("lease licence %s: %w", next.LicenseID, err)
		}
		if leased == 1 {
			target, err := upstream.CheckTarget(ctx, w.cfg.DB, sql.UpstreamLicenseForCheckParams{TenantID: next.TenantID, LicenseID: next.LicenseID})
			return target, err == nil, err
		}
	}
	return upstream.Target{}, false, nil
}

// check asks the store about target and records the answer.
func (w *RevocationCheckWorker) check(ctx context.Context, job *river.Job[jobargs.RevocationCheck], target upstream.Target) error {
	var res upstream.Result
	key, err := upstream.UnsealAPIKey(w.cfg.Box, target)
	if err != nil {
		w.cfg.Log.WarnContext(ctx, "cannot open an upstream store's API key", "tenant_id", target.TenantID, "store_id", target.StoreID, "error", err)
		res = upstream.Result{Outcome: upstream.OutcomeError, Err: "cannot open the store's API key: set it again"}
	} else {
		res = w.client.Check(ctx, upstream.CheckParams{BaseURL: target.BaseURL, APIKey: key, ExternalLicenseID: target.ExternalLicenseID})
	}
	// Recorded even when the job's context ended, within Config.JobTimeout, so no answered
	// request goes unrecorded.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.jobTimeout())
	defer cancel()
	return pg.InTx(rctx, w.cfg.DB, func(tx pgx.Tx) error {
		st := w.cfg.step(ctx, job.JobRow)
		return upstream.RecordCheck(rctx, tx, st, upstream.RecordCheckParams{Target: target, Result: res, Backoff: w.rc.ErrorBackoff})
	})
}
