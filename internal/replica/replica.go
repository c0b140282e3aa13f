// Package replica sends read-only queries to a Postgres streaming replica while the replica is
// known to be within a staleness bound of the primary, and to the primary otherwise.
//
// The bound is measured, not assumed. Every Interval the Router's monitor (Run) reads the
// primary's flushed WAL position and remembers when it read it; then it reads how far the
// replica has replayed. The latest remembered position the replica has replayed tells up to
// when it is complete: it holds every transaction the primary had committed when that
// position was read. A read goes to the replica only while that instant is at most MaxLag ago,
// so whatever a read on the replica misses was committed less than MaxLag before the read.
// Comparing WAL positions is right when the primary is idle too (nothing new to replay: the
// replica is complete up to the last check), which the replica's own
// now() - pg_last_xact_replay_timestamp() is not (it grows while nothing happens).
//
// While the replica lags beyond MaxLag, is unreachable, fails its check or is not a standby,
// reads go to the primary, and return to the replica once a check finds it within the bound.
// A read that fails on the replica (a connection refused or reset, a query cancelled by a
// recovery conflict) runs once more on the primary, and the replica is not used again until
// the next check has found it healthy. So does a read the replica has not answered within
// MaxLag of its start: a replica that hangs (stopped, partitioned, stuck on a lock) costs a
// read at most the bound before the primary answers it, not the request's whole timeout.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// DefaultInterval is how often the monitor checks the replica's lag by default: 250 ms.
const DefaultInterval = 250 * time.Millisecond

// Config configures a Router.
type Config struct {
	// Primary is the database that writes go to; reads go there while the replica is not
	// usable. Required.
	Primary *pgxpool.Pool
	// Replica is a streaming replica (a hot standby) of Primary. Required.
	Replica *pgxpool.Pool
	// MaxLag is the staleness bound: a read goes to the replica only while the replica is
	// known to hold every transaction committed on the primary more than MaxLag ago. It
	// must be above Interval. Required.
	MaxLag time.Duration
	// Interval is how often the monitor checks the replica's lag. Default DefaultInterval.
	Interval time.Duration
	// Clock tells the time of checks and reads. Required.
	Clock clock.Clock
	// Log receives the replica's changes of state (usable, not usable and why). Required.
	Log *slog.Logger
	// Metrics is where the Router registers tessera_read_replica_usable,
	// tessera_read_replica_lag_seconds and tessera_reads_total. Required.
	Metrics prometheus.Registerer
}

// Router runs read-only queries on the replica while it is usable (see the package
// comment), and on the primary otherwise. It is safe for concurrent use; Run must run for
// the replica to be used at all.
type Router struct {
	cfg              Config
	queries          *sql.Queries
	primary, replica pg.DB
	// complete is when (Unix nanoseconds) the primary had committed nothing that the
	// replica has not replayed, as of the last check; 0 while the replica is not usable.
	complete atomic.Int64

	// The monitor's own state (Run's goroutine only).
	samples []sample // primary WAL positions, oldest first, from the latest the replica has replayed
	state   int      // the replica's state found by the last check (stateUsable, ...)

	usableGauge prometheus.Gauge
	lagGauge    prometheus.Gauge
	reads       *prometheus.CounterVec
	// The series of reads, one per route, resolved once: Read runs on every validation.
	onReplica, onPrimary, afterFailure, confirmed prometheus.Counter
}

// sample is the primary's flushed WAL position lsn, read at at.
type sample struct {
	at  time.Time
	lsn int64
}

// Routes of tessera_reads_total: where a read was answered, and why there.
const (
	routeReplica   = "replica"        // on the replica
	routePrimary   = "primary"        // on the primary: the replica was not usable
	routeFailed    = "replica_failed" // on the primary, after it failed on the replica
	routeConfirmed = "confirmed"      // on the primary, confirming an answer of the replica's
)

// New validates cfg and returns a Router whose replica is not usable until Run's first check
// has found it within the bound.
func New(cfg Config) (*Router, error) {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	switch {
	case cfg.Primary == nil || cfg.Replica == nil:
		return nil, errors.New("replica: Config.Primary and Config.Replica are required")
	case cfg.Clock == nil || cfg.Log == nil || cfg.Metrics == nil:
		return nil, errors.New("replica: Config.Clock, Config.Log and Config.Metrics are required")
	case cfg.Interval < 0 || cfg.MaxLag <= cfg.Interval:
		return nil, fmt.Errorf("replica: the lag bound (%s) must be above the check interval (%s)", cfg.MaxLag, cfg.Interval)
	}
	r := &Router{
		cfg: cfg, queries: sql.New(), primary: core.DB(cfg.Primary), replica: core.DB(cfg.Replica),
		usableGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tessera_read_replica_usable",
			Help: "1 while read-only queries go to the read replica (TESSERA_READ_DATABASE_URL): it answers and lags the primary by at most TESSERA_READ_MAX_LAG; 0 while they go to the primary.",
		}),
		lagGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tessera_read_replica_lag_seconds",
			Help: "How stale the read replica was at its last check: the time since the primary had committed nothing it has not replayed (+Inf while it cannot be checked).",
		}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_reads_total",
			Help: "Read-only operations (licence validation, public reads) by where they were answered: replica; primary (the replica was not usable); replica_failed (failed on the replica, answered by the primary); confirmed (the primary confirmed an answer the replica may not give alone, such as not found).",
		}, []string{"route"}),
	}
	r.lagGauge.Set(math.Inf(1))
	// Resolved here, every route is reported from the start, at 0.
	r.onReplica, r.onPrimary = r.reads.WithLabelValues(routeReplica), r.reads.WithLabelValues(routePrimary)
	r.afterFailure, r.confirmed = r.reads.WithLabelValues(routeFailed), r.reads.WithLabelValues(routeConfirmed)
	for _, c := range []prometheus.Collector{r.usableGauge, r.lagGauge, r.reads} {
		if err := cfg.Metrics.Register(c); err != nil {
			return nil, fmt.Errorf("register read replica metrics: %w", err)
		}
	}
	return r, nil
}

// Read runs fn on the replica while it is usable, else on the primary. fn runs the read's
// queries on db and says whether its answer is final: an answer that is not (one a stale
// replica could give wrongly, such as a licence not found or not valid) is read again on the
// primary, as is any failure on the replica other than ctx ending; the primary's answer
// stands either way. Read returns fn's error of the run whose answer stands. On the replica,
// fn's queries must end within MaxLag of the read's start: past it they are cancelled, the
// replica is out of use until its next check, and the primary answers.
func (r *Router) Read(ctx context.Context, fn func(db sql.DBTX) (final bool, err error)) error {
	if !r.Usable() {
		r.onPrimary.Inc()
		_, err := fn(r.primary)
		return err
	}
	bounded := &boundedDB{db: r.replica, deadline: r.cfg.Clock.Now().Add(r.cfg.MaxLag)}
	final, err := fn(bounded)
	switch {
	case err == nil && final:
		r.onReplica.Inc()
		return nil
	case err == nil:
		r.confirmed.Inc()
	case ctx.Err() != nil:
		return err // the request has ended: nothing to answer
	case bounded.expired.Load() || core.DBUnavailable(err):
		r.failed(ctx, err)
		r.afterFailure.Inc()
	case errors.Is(err, core.ErrNotFound):
		r.confirmed.Inc()
	default: // a query cancelled by a recovery conflict, say: the replica is not down
		r.afterFailure.Inc()
	}
	_, err = fn(r.primary)
	return err
}

// Usable reports whether reads go to the replica now: its last check found it complete up
// to MaxLag ago or later, and no read has failed on it since.
func (r *Router) Usable() bool {
	complete := r.complete.Load()
	return complete != 0 && r.cfg.Clock.Now().UnixNano()-complete <= int64(r.cfg.MaxLag)
}

// failed takes the replica out of use after a read failed on it, until the next check finds
// it healthy again.
func (r *Router) failed(ctx context.Context, err error) {
	if r.complete.Swap(0) != 0 {
		r.cfg.Log.WarnContext(ctx, "read replica failed a read: reads go to the primary until it answers its check", "error", err)
	}
}

// Run checks the replica's lag every Interval until ctx ends, taking the replica out of use
// and back as the checks find it.
func (r *Router) Run(ctx context.Context) {
	ticker := time.NewTicker(r.cfg.Interval)
	defer ticker.Stop()
	for {
		r.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// check measures the replica's lag (see the package comment) and records what it found.
func (r *Router) check(ctx context.Context) {
	run := ctx
	// A check that takes longer than the bound could not find the replica within it: a
	// replica (or primary) that hangs that long is unreachable.
	ctx, cancel := context.WithTimeout(ctx, r.cfg.MaxLag)
	defer cancel()
	at := r.cfg.Clock.Now() // before the read: what was committed by then lies before flushed
	flushed, err := r.queries.ReplicationFlushedLSN(ctx, r.cfg.Primary)
	if run.Err() != nil {
		return // shutting down
	}
	if err != nil {
		r.notUsable(ctx, stateNoPrimary, fmt.Sprintf("the primary's WAL position is unreadable: %v", err), math.Inf(1))
		return
	}
	r.samples = append(r.samples, sample{at: at, lsn: flushed})
	r.dropOld(at)
	replayed, err := r.queries.ReplicationReplayedLSN(ctx, r.cfg.Replica)
	switch {
	case run.Err() != nil:
		return
	case err != nil:
		r.notUsable(ctx, stateUnreachable, fmt.Sprintf("the replica is unreachable: %v", err), math.Inf(1))
		return
	case !replayed.Standby:
		r.notUsable(ctx, stateNotStandby, "the replica is not a standby (pg_is_in_recovery() is false): a promoted replica no longer follows the primary", math.Inf(1))
		return
	}
	now := r.cfg.Clock.Now()
	// The latest sample the replica has replayed; the samples before it are done with.
	covered := -1
	for i, s := range r.samples {
		if s.lsn <= replayed.LSN {
			covered = i
		}
	}
	if covered < 0 { // not even the oldest sample kept: at least that stale
		lag := now.Sub(r.samples[0].at)
		r.notUsable(ctx, stateLagging, fmt.Sprintf("the replica lags at least %s, beyond TESSERA_READ_MAX_LAG (%s)", lag.Round(time.Millisecond), r.cfg.MaxLag), lag.Seconds())
		return
	}
	r.samples = r.samples[covered:]
	complete := r.samples[0].at
	lag := now.Sub(complete)
	if lag > r.cfg.MaxLag {
		r.notUsable(ctx, stateLagging, fmt.Sprintf("the replica lags %s, beyond TESSERA_READ_MAX_LAG (%s)", lag.Round(time.Millisecond), r.cfg.MaxLag), lag.Seconds())
		return
	}
	r.complete.Store(complete.UnixNano())
	r.usableGauge.Set(1)
	r.lagGauge.Set(lag.Seconds())
	if r.state != stateUsable {
		r.state = stateUsable
		r.cfg.Log.InfoContext(ctx, "read replica usable: read-only operations go to it", "lag", lag.Round(time.Millisecond), "max_lag", r.cfg.MaxLag)
	}
}

// dropOld forgets the samples read more than MaxLag before now but the latest of them: a
// replica that has replayed only those is beyond the bound anyway, so forgetting them cannot
// make it usable, and a replica stuck for long does not make the samples grow without end.
func (r *Router) dropOld(now time.Time) {
	old := 0
	for old+1 < len(r.samples) && now.Sub(r.samples[old+1].at) > r.cfg.MaxLag {
		old++
	}
	r.samples = r.samples[old:]
}

// The states of the replica that the monitor logs a change of.
const (
	stateUnknown     = iota // before the first check
	stateUsable             // reads go to it
	stateNoPrimary          // the primary's WAL position is unreadable
	stateUnreachable        // the replica does not answer its check
	stateNotStandby         // the replica is not in recovery (promoted, or not a replica)
	stateLagging            // the replica lags beyond the bound
)

// notUsable takes the replica out of use in state, because of reason, logged when the state
// changes; lag is the replica's staleness in seconds as far as it is known (+Inf: unknown).
func (r *Router) notUsable(ctx context.Context, state int, reason string, lag float64) {
	r.complete.Store(0)
	r.usableGauge.Set(0)
	r.lagGauge.Set(lag)
	if r.state != state {
		r.state = state
		r.cfg.Log.WarnContext(ctx, "read replica not usable: read-only operations go to the primary", "reason", reason)
	}
}

// boundedDB runs each query on db within deadline: the query's context is the caller's with
// the deadline, kept until the query's rows are read. expired records that the deadline, not
// the caller, ended a query.
type boundedDB struct {
	db       sql.DBTX
	deadline time.Time
	expired  atomic.Bool
}

// bound returns ctx with the deadline, and the function that releases it and records
// whether the deadline ended it.
func (b *boundedDB) bound(ctx context.Context) (context.Context, func()) {
	bounded, cancel := context.WithDeadline(ctx, b.deadline)
	return bounded, func() {
		if errors.Is(bounded.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			b.expired.Store(true)
		}
		cancel()
	}
}

func (b *boundedDB) Exec(ctx context.Context, statement string, args ...any) (pgconn.CommandTag, error) {
	ctx, release := b.bound(ctx)
	defer release()
	return b.db.Exec(ctx, statement, args...)
}

func (b *boundedDB) Query(ctx context.Context, statement string, args ...any) (pgx.Rows, error) {
	ctx, release := b.bound(ctx)
	rows, err := b.db.Query(ctx, statement, args...)
	if err != nil {
		release()
		return rows, err
	}
	return &boundedRows{Rows: rows, release: release}, nil
}

func (b *boundedDB) QueryRow(ctx context.Context, statement string, args ...any) pgx.Row {
	ctx, release := b.bound(ctx)
	return boundedRow{row: b.db.QueryRow(ctx, statement, args...), release: release}
}

// boundedRow releases its query's deadline once scanned.
type boundedRow struct {
	row     pgx.Row
	release func()
}

func (r boundedRow) Scan(dest ...any) error {
	defer r.release()
	return r.row.Scan(dest...)
}

// boundedRows releases its query's deadline once read to the end or closed.
type boundedRows struct {
	pgx.Rows
	release func()
}

func (r *boundedRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.release()
	return false
}

func (r *boundedRows) Close() {
	r.Rows.Close()
	r.release()
}
