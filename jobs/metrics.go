package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/metrics"
	"github.com/tessera/tessera/sql"
)

// The outcomes of one attempt of a job, the outcome label of tessera_jobs_total: what River
// makes of what the worker returned.
const (
	// OutcomeCompleted: the worker returned nil (its transaction completed the job).
	OutcomeCompleted = "completed"
	// OutcomeFailed: the worker failed (an error, a timeout, a panic) and River retries the job.
	OutcomeFailed = "failed"
	// OutcomeDiscarded: the worker failed its last attempt; River gives up on the job.
	OutcomeDiscarded = "discarded"
	// OutcomeCancelled: the worker cancelled the job (river.JobCancel), or an operator
	// cancelled it while it ran.
	OutcomeCancelled = "cancelled"
	// OutcomeSnoozed: the worker snoozed the job (river.JobSnooze).
	OutcomeSnoozed = "snoozed"
)

// Metrics is the River worker middleware (river.Config.Middleware) that observes every
// attempt of every job: it counts the attempt in tessera_jobs_total{kind,outcome}, times it
// in tessera_job_duration_seconds{kind}, logs a failed attempt at WARN and a discarded job at
// ERROR, and, when the attempt completed, counts the domain outcomes its transaction brought
// about (metrics.Domain).
//
// A middleware rather than River's event subscription (Client.Subscribe): it runs in the
// job's own goroutine, once per attempt, around the worker, so it sees every outcome exactly
// once — including jobs that complete themselves with river.JobCompleteTx, panics and
// timeouts — while a subscription's channel drops events when its buffer of 1000 is full (as
// River's batch completer can deliver up to 5000 at once). And it knows the attempt's domain
// outcomes: every worker commits its effects in the transaction that completes its job, so an
// attempt that returned nil committed them, and one that failed rolled them back. It does
// not see what no process attempted: a job cancelled or deleted while waiting, or rescued
// after its process died (River's rescuer then retries or discards it).
type Metrics struct {
	river.MiddlewareDefaults
	jobs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	domain   *metrics.Domain
	log      *slog.Logger
}

// NewMetrics registers the job metrics with reg; completed jobs' domain outcomes are counted
// in domain, failures logged to log.
func NewMetrics(reg prometheus.Registerer, domain *metrics.Domain, log *slog.Logger) (*Metrics, error) {
	m := &Metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_jobs_total",
			Help: "Attempts of River jobs by kind and outcome: completed, failed (retried), discarded (failed for good), cancelled, snoozed.",
		}, []string{"kind", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tessera_job_duration_seconds",
			Help:    "How long one attempt of a River job ran, by kind.",
			Buckets: metrics.JobDurationBuckets,
		}, []string{"kind"}),
		domain: domain,
		log:    log,
	}
	for _, c := range []prometheus.Collector{m.jobs, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register job metrics: %w", err)
		}
	}
	return m, nil
}

// outcomesKey is the context key of the attempt's core.Outcomes, which Config.step hands to
// the core steps.
type outcomesKey struct{}

// outcomesFrom returns the attempt's outcomes; nil (nothing counted) outside the middleware,
// as in tests that run a worker alone.
func outcomesFrom(ctx context.Context) *core.Outcomes {
	o, _ := ctx.Value(outcomesKey{}).(*core.Outcomes)
	return o
}

// outcomesMark remembers the attempt's outcomes so far (outcomesFrom); the restore it returns
// drops those added since, by a transaction that then rolled back.
func outcomesMark(ctx context.Context) (restore func()) {
	o := outcomesFrom(ctx)
	if o == nil {
		return func() {}
	}
	kept := *o
	return func() { *o = kept }
}

// Work runs the attempt and observes it. A panic is observed as a failure and goes on up to
// River, which records it.
func (m *Metrics) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) (err error) {
	outcomes := &core.Outcomes{}
	start := clock.System{}.Now() // the attempt's own duration, not the domain clock
	defer func() {
		p := recover()
		if p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
		m.observe(ctx, job, err, time.Since(start))
		if err == nil {
			m.domain.Count(outcomes)
		}
		if p != nil {
			panic(p)
		}
	}()
	return doInner(context.WithValue(ctx, outcomesKey{}, outcomes))
}

// observe counts, times and logs one attempt that returned err after elapsed.
func (m *Metrics) observe(ctx context.Context, job *rivertype.JobRow, err error, elapsed time.Duration) {
	outcome := attemptOutcome(ctx, job, err)
	m.jobs.WithLabelValues(job.Kind, outcome).Inc()
	m.duration.WithLabelValues(job.Kind).Observe(elapsed.Seconds())
	var level slog.Level
	switch outcome {
	case OutcomeFailed:
		level = slog.LevelWarn
	case OutcomeDiscarded:
		level = slog.LevelError
	default:
		return
	}
	attrs := []any{"kind", job.Kind, "job_id", job.ID, "attempt", job.Attempt, "max_attempts", job.MaxAttempts}
	if tenant := jobTenant(job); tenant != uuid.Nil {
		attrs = append(attrs, "tenant_id", tenant)
	}
	attrs = append(attrs, "duration", elapsed, "error", err)
	msg := "job failed; River retries it"
	if outcome == OutcomeDiscarded {
		msg = "job discarded after its last attempt"
	}
	m.log.Log(ctx, level, msg, attrs...)
}

// attemptOutcome is what River makes of an attempt of job that returned err (see River's
// job executor: a cancel error or a remote cancel cancels, a snooze error snoozes, any other
// error retries the job until its last attempt).
func attemptOutcome(ctx context.Context, job *rivertype.JobRow, err error) string {
	var cancelErr *rivertype.JobCancelError
	var snoozeErr *rivertype.JobSnoozeError
	switch {
	case err == nil:
		return OutcomeCompleted
	case errors.As(err, &snoozeErr):
		return OutcomeSnoozed
	case errors.As(err, &cancelErr), errors.Is(context.Cause(ctx), rivertype.ErrJobCancelledRemotely):
		return OutcomeCancelled
	case job.Attempt >= job.MaxAttempts:
		return OutcomeDiscarded
	}
	return OutcomeFailed
}

// jobTenant is the tenant_id of job's args, or uuid.Nil for a job of no tenant (a sweep).
func jobTenant(job *rivertype.JobRow) uuid.UUID {
	var args struct {
		TenantID uuid.UUID `json:"tenant_id"`
	}
	if err := json.Unmarshal(job.EncodedArgs, &args); err != nil { //lint:swallow the worker reports args it cannot decode
		return uuid.Nil // args River could not have decoded for the worker either
	}
	return args.TenantID
}

// QueueDepthTTL is how long QueueDepthCollector reuses the counts it read: however often and
// by however many scrapers a process is scraped, it reads them at most once per QueueDepthTTL.
const QueueDepthTTL = 15 * time.Second

// QueueDepthCollector exports the gauge tessera_queue_jobs{queue,state}: per queue, the River
// jobs available and due (state "available": waiting for a worker, the queue's depth) and
// running (state "running"), read with sql.RiverJobCountByQueue — an index-only range over
// those two states, never over finished jobs — at most once per QueueDepthTTL. Every queue
// it is given is reported, with zeros when it is empty.
type QueueDepthCollector struct {
	db     sql.DBTX
	clock  clock.Clock
	log    *slog.Logger
	queues []string
	desc   *prometheus.Desc

	mu     sync.Mutex
	readAt time.Time
	counts []sql.RiverJobCountByQueueRow
}

// queueDepthTimeout bounds one read of the counts; a scrape that cannot read them in time
// reports none and logs why.
const queueDepthTimeout = 5 * time.Second

// NewQueueDepthCollector returns a collector reading from db at the time of clk, reporting
// at least queues.
func NewQueueDepthCollector(db sql.DBTX, clk clock.Clock, log *slog.Logger, queues []string) *QueueDepthCollector {
	return &QueueDepthCollector{
		db: db, clock: clk, log: log, queues: slices.Clone(queues),
		desc: prometheus.NewDesc("tessera_queue_jobs",
			"River jobs per queue that are available and due (waiting for a worker) or running, read at most every 15 s.",
			[]string{"queue", "state"}, nil),
	}
}

// Describe sends the collector's one metric description.
func (c *QueueDepthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect reports the counts, read again when the last read is QueueDepthTTL old.
func (c *QueueDepthCollector) Collect(ch chan<- prometheus.Metric) {
	counts, ok := c.read()
	if !ok {
		return
	}
	seen := map[[2]string]bool{}
	for _, r := range counts {
		seen[[2]string{r.Queue, r.State}] = true
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(r.Jobs), r.Queue, r.State)
	}
	for _, q := range c.queues {
		for _, state := range []string{"available", "running"} {
			if !seen[[2]string{q, state}] {
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 0, q, state)
			}
		}
	}
}

// read returns the cached counts, or reads them when they are QueueDepthTTL old. Scrapes at
// the same time wait for one read.
func (c *QueueDepthCollector) read() ([]sql.RiverJobCountByQueueRow, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if !c.readAt.IsZero() && now.Sub(c.readAt) < QueueDepthTTL {
		return c.counts, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), queueDepthTimeout)
	defer cancel()
	counts, err := queries.RiverJobCountByQueue(ctx, c.db, now)
	if err != nil {
		c.log.WarnContext(ctx, "count queued river jobs", "error", err)
		return nil, false
	}
	c.readAt, c.counts = now, counts
	return counts, true
}
