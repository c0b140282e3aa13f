// Package priority lets licence validations go before background jobs in one process: the
// API counts the validations it is answering, and while there are any, the process's River
// jobs run at most a few at a time, so that a payment run or a renewal batch cannot take every
// core (and the database's) from the requests whose latency a client waits on.
package priority

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Gate counts the requests in flight (Begin, End) and holds back River jobs (Work, a worker
// middleware) while there are any: then at most busyJobs jobs run at once; with none in
// flight, jobs run as River starts them. A job held back waits until a running job ends, the
// last request does, or it has waited maxWait: then it starts anyway, so that slow jobs in the
// few slots (an upstream check waiting on the network) never stall the others for longer,
// and a job waiting costs a worker at most maxWait per job. A job already running is never
// interrupted. Jobs of the exempt queues are never held back (nor counted). A nil *Gate
// holds nothing back. It is safe for concurrent use.
type Gate struct {
	river.MiddlewareDefaults
	busyJobs int
	maxWait  time.Duration
	exempt   []string

	requests atomic.Int64 // requests in flight
	waiting  atomic.Int64 // jobs waiting to start

	mu   sync.Mutex
	jobs int           // jobs running (not exempt)
	wake chan struct{} // closed, and replaced, when a waiting job may start
}

// New returns a gate that lets busyJobs jobs (at least 1) run at once while requests are in
// flight, holds a job back for at most maxWait, and never holds back jobs of the exempt
// queues.
func New(busyJobs int, maxWait time.Duration, exempt ...string) *Gate {
	return &Gate{busyJobs: max(busyJobs, 1), maxWait: maxWait, exempt: exempt, wake: make(chan struct{})}
}

// Begin counts a request in flight; End must follow it.
func (g *Gate) Begin() {
	if g != nil {
		g.requests.Add(1)
	}
}

// End ends a request counted by Begin. The last one in flight lets the waiting jobs start.
func (g *Gate) End() {
	if g == nil {
		return
	}
	// The order matters: a job counts itself waiting before it reads the requests, and End
	// reads the waiting jobs after uncounting its request, so one of them sees the other.
	if g.requests.Add(-1) == 0 && g.waiting.Load() > 0 {
		g.signal()
	}
}

// Busy reports whether requests are in flight: work a request could do at once or leave to
// a job (the provider webhook's settle) is better left to the job, which the gate holds back.
func (g *Gate) Busy() bool {
	return g != nil && g.requests.Load() > 0
}

// Work runs the job when the gate lets it start (River's worker middleware).
func (g *Gate) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if g == nil || slices.Contains(g.exempt, job.Queue) {
		return doInner(ctx)
	}
	if err := g.start(ctx); err != nil {
		return err
	}
	defer g.done()
	return doInner(ctx)
}

// start waits until the job may start, and counts it running.
func (g *Gate) start(ctx context.Context) error {
	timeout := time.NewTimer(g.maxWait)
	defer timeout.Stop()
	waited := false
	for {
		g.mu.Lock()
		g.waiting.Add(1)
		if g.jobs < g.busyJobs || g.requests.Load() == 0 || waited {
			g.waiting.Add(-1)
			g.jobs++
			g.mu.Unlock()
			return nil
		}
		wake := g.wake
		g.mu.Unlock()
		select {
		case <-wake:
			g.waiting.Add(-1)
		case <-timeout.C:
			g.waiting.Add(-1)
			waited = true
		case <-ctx.Done():
			g.waiting.Add(-1)
			return ctx.Err()
		}
	}
}

// done counts a job ended and lets the waiting jobs try again.
func (g *Gate) done() {
	g.mu.Lock()
	g.jobs--
	g.mu.Unlock()
	if g.waiting.Load() > 0 {
		g.signal()
	}
}

// signal wakes every waiting job to try again.
func (g *Gate) signal() {
	g.mu.Lock()
	close(g.wake)
	g.wake = make(chan struct{})
	g.mu.Unlock()
}
