package jobs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
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

// revocationChecker claims and checks licences, one at a time: the one way of the live loop
// (RevocationCheckWorker) and of a sandbox tenant's checks (RevocationCheckTenantWorker).
type revocationChecker struct {
	cfg    Config
	rc     RevocationConfig
	client *upstream.Client
}

// newRevocationChecker fills in cfg.Revocation's defaults, validates it and makes the
// upstream client.
func newRevocationChecker(cfg Config) (revocationChecker, error) {
	rc, err := cfg.Revocation.withDefaults()
	if err != nil {
		return revocationChecker{}, err
	}
	if rc.HTTPClient == nil {
		rc.HTTPClient = outbound.Client(cfg.AllowPrivateNetworks)
	}
	client, err := upstream.NewClient(rc.HTTPClient, rc.Timeout)
	if err != nil {
		return revocationChecker{}, err
	}
	return revocationChecker{cfg: cfg, rc: rc, client: client}, nil
}

// checkScope is whose licences a check picks and by which time: every live tenant's by
// Config.Clock (both nil), or one sandbox tenant's at its clock.
type checkScope struct {
	tenantID *uuid.UUID
	clock    *time.Time
}

// now is the scope's time: the sandbox's clock, else Config.Clock's now.
func (s checkScope) now(c clock.Clock) time.Time {
	if s.clock != nil {
		return *s.clock
	}
	return c.Now()
}

// timeout bounds one run of up to PerFiring checks: each request (RevocationConfig.Timeout)
// with 5 s to pick and lease its licence, and Config.JobTimeout for recording the last
// outcome.
func (c revocationChecker) timeout() time.Duration {
	return time.Duration(c.rc.PerFiring)*(c.rc.Timeout+5*time.Second) + c.cfg.jobTimeout()
}

// checkUpTo checks up to PerFiring licences of scope, one after the other, and returns how
// many it checked: fewer means none was left to claim.
func (c revocationChecker) checkUpTo(ctx context.Context, job *rivertype.JobRow, scope checkScope) (int, error) {
	checked := 0
	for ; checked < c.rc.PerFiring; checked++ {
		target, ok, err := c.claim(ctx, scope)
		if err != nil || !ok {
			return checked, err
		}
		if err := c.check(ctx, job, scope, target); err != nil {
			return checked, err
		}
	}
	return checked, nil
}

// claim picks the next licence of scope and leases it; false when no licence is eligible.
// The live loop leases with UpstreamLicenseClaimAllTenants, which refuses a sandbox tenant's
// licence; a sandbox's checks with UpstreamLicenseClaimForTenant, which takes only its own.
func (c revocationChecker) claim(ctx context.Context, scope checkScope) (upstream.Target, bool, error) {
	for range 5 { // another worker may lease the same pick first
		now := scope.now(c.cfg.Clock)
		rows, err := c.rc.Schedule.Pick(ctx, c.cfg.DB, now, scope.tenantID, 1)
		if err != nil {
			return upstream.Target{}, false, fmt.Errorf("pick licence to check: %w", err)
		}
		if len(rows) == 0 {
			return upstream.Target{}, false, nil
		}
		next := rows[0]
		lease := sql.UpstreamLicenseClaimAllTenantsParams{
			Now: now, LeaseSeconds: (c.rc.Timeout + c.cfg.jobTimeout()).Seconds(), TenantID: next.TenantID,
			LicenseID: next.LicenseID, MinIntervalSeconds: c.rc.Schedule.MinInterval.Seconds(),
		}
		var leased int64
		if scope.tenantID == nil {
			leased, err = queries.UpstreamLicenseClaimAllTenants(ctx, c.cfg.DB, lease)
		} else {
			leased, err = queries.UpstreamLicenseClaimForTenant(ctx, c.cfg.DB, sql.UpstreamLicenseClaimForTenantParams(lease))
		}
		if err != nil {
			return upstream.Target{}, false, fmt.Errorf("lease licence %s: %w", next.LicenseID, err)
		}
		if leased == 1 {
			target, err := upstream.CheckTarget(ctx, c.cfg.DB, sql.UpstreamLicenseForCheckParams{TenantID: next.TenantID, LicenseID: next.LicenseID})
			return target, err == nil, err
		}
	}
	return upstream.Target{}, false, nil
}

// check asks the store about target and records the answer at the scope's time.
func (c revocationChecker) check(ctx context.Context, job *rivertype.JobRow, scope checkScope, target upstream.Target) error {
	var res upstream.Result
	key, err := upstream.UnsealAPIKey(c.cfg.Box, target)
	if err != nil {
		c.cfg.Log.WarnContext(ctx, "cannot open an upstream store's API key", "tenant_id", target.TenantID, "store_id", target.StoreID, "error", err)
		res = upstream.Result{Outcome: upstream.OutcomeError, Err: "cannot open the store's API key: set it again"}
	} else {
		res = c.client.Check(ctx, upstream.CheckParams{BaseURL: target.BaseURL, APIKey: key, ExternalLicenseID: target.ExternalLicenseID})
	}
	// Recorded even when the job's context ended, within Config.JobTimeout, so no answered
	// request goes unrecorded.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.jobTimeout())
	defer cancel()
	return pg.InTx(rctx, c.cfg.DB, func(tx pgx.Tx) error {
		st := c.cfg.step(ctx, job)
		st.Now = scope.now(c.cfg.Clock)
		return upstream.RecordCheck(rctx, tx, st, upstream.RecordCheckParams{Target: target, Result: res, Backoff: c.rc.ErrorBackoff})
	})
}

// RevocationCheckWorker is one firing of the check loop. It first takes the global permit
// with a guarded update of the one revocation_limiter row, committed at once: a firing
// that finds it taken (another process's firing in the same interval, or this job's
// earlier attempt) completes without a request. With the permit it checks up to PerFiring
// licences of live tenants, each picked by RevocationQueue (the eligible licence with the
// highest risk score) and leased so no other worker checks it meanwhile; the request to the
// store is never sent inside a transaction; each outcome is recorded by upstream.RecordCheck
// in its own transaction.
type RevocationCheckWorker struct {
	river.WorkerDefaults[jobargs.RevocationCheck]
	revocationChecker
}

// Timeout bounds one firing: each of its requests (RevocationConfig.Timeout) with 5 s to
// pick and lease its licence, and Config.JobTimeout for recording the last outcome.
func (w *RevocationCheckWorker) Timeout(*river.Job[jobargs.RevocationCheck]) time.Duration {
	return w.timeout()
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
	if _, err := w.checkUpTo(ctx, job.JobRow, checkScope{}); err != nil {
		return err
	}
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return complete(ctx, tx, job) })
}

// RevocationCheckTenantWorker checks the imported licences of a sandbox tenant that are due
// at its clock (revocation.check_tenant, enqueued as each advance of its clock ends): the
// live loop's claim and check, with the tenant's licences picked by RevocationQueue at its
// clock and leased by UpstreamLicenseClaimForTenant, but no global permit — the limiter
// paces the live checks across tenants; a sandbox's checks are its own. Eligibility, leases
// and recorded outcomes (checks, gone licences, revocations, events) are all at the clock,
// read as the job starts. A run checks up to PerFiring licences, as a firing does; one that
// checked that many enqueues the next run in the transaction that completes it, until a run
// finds fewer due. The job of a live tenant, or of a tenant deleted meanwhile, completes
// without a check.
type RevocationCheckTenantWorker struct {
	river.WorkerDefaults[jobargs.RevocationCheckTenant]
	revocationChecker
}

// Timeout bounds one run: as a firing of the live loop.
func (w *RevocationCheckTenantWorker) Timeout(*river.Job[jobargs.RevocationCheckTenant]) time.Duration {
	return w.timeout()
}

// Work checks the sandbox's due licences, a batch, and enqueues the next run when more may
// be due.
func (w *RevocationCheckTenantWorker) Work(ctx context.Context, job *river.Job[jobargs.RevocationCheckTenant]) error {
	tenant, err := queries.TenantGet(ctx, w.cfg.DB, job.Args.TenantID)
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		return fmt.Errorf("read the clock of tenant %s: %w", job.Args.TenantID, err)
	}
	checked := 0
	if err == nil && tenant.ClockAt != nil {
		if checked, err = w.checkUpTo(ctx, job.JobRow, checkScope{tenantID: &tenant.ID, clock: tenant.ClockAt}); err != nil {
			return err
		}
	}
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		if checked >= w.rc.PerFiring {
			next := job.Args
			next.Run++
			if _, err := w.cfg.step(ctx, job.JobRow).Jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: next}}); err != nil {
				return fmt.Errorf("enqueue the next revocation checks of tenant %s: %w", next.TenantID, err)
			}
		}
		return complete(ctx, tx, job)
	})
}
