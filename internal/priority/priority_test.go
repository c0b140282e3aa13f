package priority

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// job starts a job of queue through g's Work on its own goroutine: started is closed when
// its work begins, and the work ends when finish is closed; Work's error goes to result.
type job struct {
	started, finish chan struct{}
	result          chan error
}

func startJob(ctx context.Context, g *Gate, queue string) *job {
	j := &job{started: make(chan struct{}), finish: make(chan struct{}), result: make(chan error, 1)}
	go func() {
		j.result <- g.Work(ctx, &rivertype.JobRow{Queue: queue}, func(context.Context) error {
			close(j.started)
			<-j.finish
			return nil
		})
	}()
	return j
}

// running reports whether the job's work has begun.
func (j *job) running() bool {
	select {
	case <-j.started:
		return true
	default:
		return false
	}
}

// end lets the job's work end and waits for Work to return.
func (j *job) end(t *testing.T) {
	close(j.finish)
	require.NoError(t, <-j.result)
}

// waitingJobs waits until n jobs wait at g's door.
func waitingJobs(t *testing.T, g *Gate, n int64) {
	require.Eventually(t, func() bool { return g.waiting.Load() == n }, 10*time.Second, time.Millisecond)
}

func TestGate(t *testing.T) {
	t.Parallel()

	t.Run("NoRequestsNoLimit", func(t *testing.T) {
		t.Parallel()
		g := New(1, time.Hour)
		jobs := []*job{startJob(t.Context(), g, "default"), startJob(t.Context(), g, "default"), startJob(t.Context(), g, "default")}
		for _, j := range jobs {
			<-j.started
		}
		for _, j := range jobs {
			j.end(t)
		}
	})

	t.Run("RequestsHoldJobsBack", func(t *testing.T) {
		t.Parallel()
		g := New(2, time.Hour)
		g.Begin()
		first, second := startJob(t.Context(), g, "default"), startJob(t.Context(), g, "default")
		<-first.started
		<-second.started
		third := startJob(t.Context(), g, "default")
		waitingJobs(t, g, 1)
		require.False(t, third.running(), "a third job ran while a request was in flight")

		first.end(t) // a running job's end lets the waiting one in
		<-third.started
		fourth, fifth := startJob(t.Context(), g, "default"), startJob(t.Context(), g, "default")
		waitingJobs(t, g, 2)
		require.False(t, fourth.running())
		require.False(t, fifth.running())

		g.End() // the last request's end lets every waiting job in
		<-fourth.started
		<-fifth.started
		for _, j := range []*job{second, third, fourth, fifth} {
			j.end(t)
		}
	})

	t.Run("ExemptQueue", func(t *testing.T) {
		t.Parallel()
		g := New(1, time.Hour, "webhooks")
		g.Begin()
		defer g.End()
		held := startJob(t.Context(), g, "default")
		<-held.started
		hooks := []*job{startJob(t.Context(), g, "webhooks"), startJob(t.Context(), g, "webhooks")}
		for _, j := range hooks {
			<-j.started // neither held back nor counted against the default queue's one
			j.end(t)
		}
		held.end(t)
	})

	t.Run("CancelledWhileWaiting", func(t *testing.T) {
		t.Parallel()
		g := New(1, time.Hour)
		g.Begin()
		defer g.End()
		running := startJob(t.Context(), g, "default")
		<-running.started
		ctx, cancel := context.WithCancel(t.Context())
		waiter := startJob(ctx, g, "default")
		waitingJobs(t, g, 1)
		cancel()
		require.ErrorIs(t, <-waiter.result, context.Canceled)
		require.False(t, waiter.running())
		require.Equal(t, int64(0), g.waiting.Load())
		running.end(t)
	})

	t.Run("WaitedLongEnough", func(t *testing.T) {
		t.Parallel()
		g := New(1, time.Millisecond)
		g.Begin()
		defer g.End()
		slow := startJob(t.Context(), g, "default")
		<-slow.started
		waited := startJob(t.Context(), g, "default")
		<-waited.started // the slow job still runs and the request is still in flight
		waited.end(t)
		slow.end(t)
	})

	t.Run("Nil", func(t *testing.T) {
		t.Parallel()
		var g *Gate
		g.Begin()
		j := startJob(t.Context(), g, "default")
		<-j.started
		j.end(t)
		g.End()
	})
}

// Many requests and jobs at once (run with -race): every job runs (no wake-up is lost), and
// the gate's counts end at zero.
func TestGateConcurrent(t *testing.T) {
	t.Parallel()
	g := New(2, time.Hour)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2000 {
			g.Begin()
			g.End()
		}
	}()
	results := make(chan error, 200)
	for range 200 {
		go func() {
			results <- g.Work(t.Context(), &rivertype.JobRow{Queue: "default"}, func(context.Context) error { return nil })
		}()
	}
	for range 200 {
		require.NoError(t, <-results)
	}
	<-done
	require.Equal(t, 0, g.jobs)
	require.Equal(t, int64(0), g.waiting.Load())
	require.Equal(t, int64(0), g.requests.Load())
}
