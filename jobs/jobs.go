// Package jobs holds Tessera's River workers, one file per job family, and the periodic
// schedule. Every worker runs its job in one transaction that also completes the job
// (river.JobCompleteTx), so a job's effects and its completion commit together.
package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/outbound"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/sql"
)

// Config holds what workers need.
type Config struct {
	// DB begins each job's transaction: the pool in production, the test's transaction in
	// tests. Required.
	DB pg.DB
	// Clock is the time of every job. Required.
	Clock clock.Clock
	// Log receives the workers' logs. Required.
	Log *slog.Logger
	// Box opens secrets sealed at rest (webhook secrets, signing keys). Required.
	Box *secrets.Box
	// Payments is the payment provider invoices are created at and re-confirmed with.
	// Required.
	Payments payment.Provider
	// Rates quotes fiat prices in sats when subscriptions renew. Required.
	Rates payment.RateSource
	// Batches is how many rows one run of each batched sweep handles; zero fields take
	// their defaults (see SweepBatches).
	Batches SweepBatches
	// EventRetention is how long events and their finished webhook deliveries are kept
	// (event.retention_sweep). Default 30 days.
	EventRetention time.Duration
	// HTTPClient sends webhook deliveries. Default: outbound.Client with AllowPrivateNetworks
	// (no redirects: a 3xx is a failed attempt).
	HTTPClient *http.Client
	// AllowPrivateNetworks lets webhook deliveries and upstream store checks — URLs tenants
	// choose — reach loopback, private and link-local addresses. Off in production (SSRF);
	// on for development and tests, whose receivers listen on loopback.
	AllowPrivateNetworks bool
	// WebhookTimeout bounds one webhook delivery attempt, from connecting to reading the
	// response. Default 10s.
	WebhookTimeout time.Duration
	// WebhookBatch is the most deliveries one webhook.deliver run attempts before the
	// endpoint's job goes to the back of the queue. Default 20.
	WebhookBatch int
	// Revocation configures the upstream revocation check loop; zero fields take defaults.
	Revocation RevocationConfig
	// JobTimeout bounds one attempt of every job's own work, in Postgres and at the payment
	// provider: the whole attempt of every kind but webhook.deliver and revocation.check,
	// whose requests to tenants' URLs have their own bounds (WebhookTimeout,
	// Revocation.Timeout) and which it bounds in recording their outcome. River rescues a
	// job orphaned by a dead process only once its kind's timeout has passed (see
	// LongestTimeout). Default DefaultJobTimeout.
	JobTimeout time.Duration
}

// DefaultJobTimeout is Config.JobTimeout's default. A full referral recompute of 1M
// customers, the longest job measured (bench/README.md), takes about 10 s.
const DefaultJobTimeout = time.Minute

// jobTimeout is JobTimeout or its default: workers built from a Config that Workers did not
// fill in (tests build them directly) get the default too.
func (cfg Config) jobTimeout() time.Duration {
	return cmp.Or(cfg.JobTimeout, DefaultJobTimeout)
}

// Workers returns a River worker for every job kind, validating cfg.
func Workers(cfg Config) (*river.Workers, error) {
	switch {
	case cfg.DB == nil:
		return nil, errors.New("jobs: Config.DB is required")
	case cfg.Clock == nil:
		return nil, errors.New("jobs: Config.Clock is required")
	case cfg.Log == nil:
		return nil, errors.New("jobs: Config.Log is required")
	case cfg.Box == nil:
		return nil, errors.New("jobs: Config.Box is required")
	case cfg.Payments == nil:
		return nil, errors.New("jobs: Config.Payments is required")
	case cfg.Rates == nil:
		return nil, errors.New("jobs: Config.Rates is required")
	}
	r, err := register(cfg)
	if err != nil {
		return nil, err
	}
	return r.workers, nil
}

// LongestTimeout is the longest Timeout of the workers Workers(cfg) returns: River must not
// rescue a job as stuck before it, so the client's RescueStuckJobsAfter has to be longer.
// Only cfg's settings count; its dependencies (DB, Clock, ...) may be nil.
func LongestTimeout(cfg Config) (time.Duration, error) {
	r, err := register(cfg)
	if err != nil {
		return 0, err
	}
	return r.longest, nil
}

// register fills in cfg's defaults, validates its settings and registers a worker for every
// job kind.
func register(cfg Config) (*registry, error) {
	cfg.DB = core.DB(cfg.DB)
	cfg.Batches = cfg.batches()
	if err := cfg.Batches.validate(); err != nil {
		return nil, err
	}
	if cfg.EventRetention == 0 {
		cfg.EventRetention = 30 * 24 * time.Hour
	}
	if cfg.EventRetention < 0 {
		return nil, errors.New("jobs: Config.EventRetention must be positive")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = outbound.Client(cfg.AllowPrivateNetworks)
	}
	if cfg.WebhookTimeout == 0 {
		cfg.WebhookTimeout = 10 * time.Second
	}
	if cfg.WebhookTimeout < 0 {
		return nil, errors.New("jobs: Config.WebhookTimeout must be positive")
	}
	if cfg.JobTimeout < 0 {
		return nil, errors.New("jobs: Config.JobTimeout must be positive")
	}
	cfg.JobTimeout = cfg.jobTimeout()
	if cfg.WebhookBatch == 0 {
		cfg.WebhookBatch = defaultWebhookBatch
	}
	if cfg.WebhookBatch < 0 {
		return nil, errors.New("jobs: Config.WebhookBatch must be positive")
	}
	checker, err := newRevocationChecker(cfg)
	if err != nil {
		return nil, err
	}
	r := &registry{workers: river.NewWorkers()}
	add(r, &IdempotencyExpireSweepWorker{cfg: cfg})
	add(r, &EventRetentionSweepWorker{cfg: cfg})
	add(r, &WebhookDeliverWorker{cfg: cfg})
	add(r, &WebhookDeliverSweepWorker{cfg: cfg})
	add(r, &LicenseExpireSweepWorker{cfg: cfg})
	add(r, &PayInCreateInvoiceWorker{cfg: cfg})
	add(r, &PayInCreateInvoicesWorker{cfg: cfg})
	add(r, &PayInSettleWorker{cfg: cfg})
	add(r, &PayInInvalidateInvoiceWorker{cfg: cfg})
	add(r, &PayInReconcileSweepWorker{cfg: cfg})
	add(r, &RevocationCheckWorker{revocationChecker: checker})
	add(r, &RevocationCheckTenantWorker{revocationChecker: checker})
	add(r, &ReferralRecomputeWorker{cfg: cfg})
	add(r, &ReferralRecomputeSweepWorker{cfg: cfg})
	add(r, &SubscriptionRenewSweepWorker{cfg: cfg})
	add(r, &SubscriptionRenewWorker{cfg: cfg})
	add(r, &SubscriptionLapseSweepWorker{cfg: cfg})
	add(r, &ClockAdvanceWorker{cfg: cfg})
	return r, r.err
}

// registry is the workers of every job kind, the zero args of each kind, and the longest of
// their timeouts.
type registry struct {
	workers *river.Workers
	args    []river.JobArgs
	longest time.Duration
	err     error
}

// add registers w with r. Its Timeout must not depend on the job and must be positive: a
// worker without one would take River's client-wide JobTimeout, which the rescue bound
// (LongestTimeout) would not see. Args that carry a tenant_id must be a jobargs.TenantJob,
// so that the job is tagged with its tenant and its tenant sees it.
func add[T river.JobArgs](r *registry, w river.Worker[T]) {
	var args T
	timeout := w.Timeout(&river.Job[T]{JobRow: &rivertype.JobRow{Kind: args.Kind()}, Args: args})
	if timeout <= 0 {
		r.err = errors.Join(r.err, fmt.Errorf("jobs: the %s worker has no Timeout", args.Kind()))
	}
	if _, tenantJob := any(args).(jobargs.TenantJob); !tenantJob && hasTenantID(args) {
		r.err = errors.Join(r.err, fmt.Errorf("jobs: the %s args carry a tenant_id but are not a jobargs.TenantJob", args.Kind()))
	}
	r.args = append(r.args, args)
	r.longest = max(r.longest, timeout)
	river.AddWorker(r.workers, w)
}

// hasTenantID reports whether args, encoded, have a tenant_id field.
func hasTenantID(args river.JobArgs) bool {
	encoded, err := json.Marshal(args)
	if err != nil { //lint:swallow args that cannot be encoded cannot be inserted either; River reports that
		return false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(encoded, &fields) != nil {
		return false
	}
	_, ok := fields["tenant_id"]
	return ok
}

// queries is stateless generated code; every method takes the connection it runs on.
var queries = sql.New()

// complete marks job completed in tx, so the completion commits with the job's effects.
// River's completion query (JobSetStateIfRunningMany, a CTE over a dozen arrays) would get a
// custom plan at every call — 1.3 ms of planning on an idle machine, over 2 ms under load, for
// 0.1 ms of execution — as its generic plan is estimated for ten rows rather than one; the
// generic plan is the same primary-key scan, so the transaction forces generic plans from
// there on (JobCompletePlanGeneric: SET LOCAL, itself not planned). What follows a completion
// in its transaction is at most webhook.deliver's check for more work and its next run's
// insert, which Postgres runs on generic plans after five calls anyway.
func complete[T river.JobArgs](ctx context.Context, tx pgx.Tx, job *river.Job[T]) error {
	if err := queries.JobCompletePlanGeneric(ctx, tx); err != nil {
		return fmt.Errorf("complete job %d: %w", job.ID, err)
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("complete job %d: %w", job.ID, err)
	}
	return nil
}

// step returns what a core step needs inside a job: the time, the job as the actor, the box,
// the job's River client, to enqueue follow-up jobs in the job's transaction, and the
// attempt's outcomes, which Metrics counts once the job's transaction has committed.
func (cfg Config) step(ctx context.Context, job *rivertype.JobRow) core.Step {
	return core.Step{
		Now: cfg.Clock.Now(), Actor: jobActor(job), Box: cfg.Box, Jobs: river.ClientFromContext[pgx.Tx](ctx),
		Outcomes: outcomesFrom(ctx),
	}
}

// tenantStep is step for a job of one tenant (a jobargs.TenantJob, or a job about one
// tenant's PayIn): its time is the tenant's, a sandbox tenant's clock, else cfg.Clock's. It
// reads the clock on db, the job's transaction where it has one. Every worker of a tenant's
// job takes its step here.
func (cfg Config) tenantStep(ctx context.Context, db sql.DBTX, job *rivertype.JobRow, tenantID uuid.UUID) (core.Step, error) {
	tenant, err := queries.TenantGet(ctx, db, tenantID)
	if err != nil {
		return core.Step{}, fmt.Errorf("read the clock of tenant %s: %w", tenantID, err)
	}
	return cfg.tenantStepAt(ctx, job, tenant.ClockAt), nil
}

// tenantStepAt is tenantStep for a worker that read the tenant's clock (clockAt, nil for a
// tenant without a sandbox clock) with its own rows, in the job's transaction.
func (cfg Config) tenantStepAt(ctx context.Context, job *rivertype.JobRow, clockAt *time.Time) core.Step {
	st := cfg.step(ctx, job)
	if clockAt != nil {
		st.Now = *clockAt
	}
	return st
}

// jobActor is the audit-log actor of a job: its kind and id.
func jobActor(job *rivertype.JobRow) core.Actor {
	return core.Actor{Type: core.ActorJob, ID: job.Kind + "/" + strconv.FormatInt(job.ID, 10)}
}
