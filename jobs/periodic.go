package jobs

import (
	"time"

	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/jobargs"
)

// periodicJob is one entry of the periodic schedule: args are enqueued every interval.
type periodicJob struct {
	args     river.JobArgs
	interval time.Duration
}

// schedule is the periodic schedule, the one place a periodic job is declared; rc is the
// revocation configuration with its defaults, whose Interval paces revocation.check.
func schedule(rc RevocationConfig) []periodicJob {
	return []periodicJob{
		{jobargs.IdempotencyExpireSweep{}, time.Hour},
		{jobargs.EventRetentionSweep{}, time.Hour},
		// The most a delivery waits past its due time (after a backoff, or when its
		// endpoint's job was cancelled, deleted or lost) before its endpoint's job is enqueued.
		{jobargs.WebhookDeliverSweep{}, 10 * time.Second},
		{jobargs.LicenseExpireSweep{}, time.Minute},
		{jobargs.PayInReconcileSweep{}, 5 * time.Minute},
		{jobargs.ReferralRecomputeSweep{}, time.Hour},
		{jobargs.SubscriptionRenewSweep{}, time.Minute},
		{jobargs.SubscriptionLapseSweep{}, time.Minute},
		// River's leader enqueues it every Interval; the global permit in Postgres
		// (RevocationLimiterAcquire) holds the rate even if several firings run.
		{jobargs.RevocationCheck{}, rc.Interval},
	}
}

// PeriodicJobs returns the periodic schedule, revocation.check paced by cfg's
// Revocation.Interval. Every job is enqueued as soon as the client starts (RunOnStart), then
// every interval, unique by that period; its periodic id is its kind. River's elected leader
// enqueues them, so running more processes does not run them more often. Only cfg's
// settings count; its dependencies (DB, Clock, ...) may be nil.
func PeriodicJobs(cfg Config) ([]*river.PeriodicJob, error) {
	rc, err := cfg.Revocation.withDefaults()
	if err != nil {
		return nil, err
	}
	var jobs []*river.PeriodicJob
	for _, p := range schedule(rc) {
		jobs = append(jobs, river.NewPeriodicJob(river.PeriodicInterval(p.interval), func() (river.JobArgs, *river.InsertOpts) {
			return p.args, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: p.interval}}
		}, &river.PeriodicJobOpts{ID: p.args.Kind(), RunOnStart: true}))
	}
	return jobs, nil
}
