package replica_test

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/replica"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// waitFor bounds every wait for the replica or the monitor.
const waitFor = 30 * time.Second

// router is a Router on the test's pair, running until the test ends, with its metrics and logs.
type router struct {
	*replica.Router
	metrics *prometheus.Registry
	logs    *factory.Output
}

func startRouter(t *testing.T, primary, replicaPool *pgxpool.Pool, maxLag, interval time.Duration) router {
	t.Helper()
	r := router{metrics: prometheus.NewRegistry(), logs: &factory.Output{}}
	var err error
	r.Router, err = replica.New(replica.Config{
		Primary: primary, Replica: replicaPool, MaxLag: maxLag, Interval: interval,
		Clock: clock.System{}, Log: slog.New(slog.NewTextHandler(r.logs, nil)), Metrics: r.metrics,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return r
}

// metric is the value of the metric name (with the label route, when given).
func (r router) metric(t *testing.T, name, route string) float64 {
	t.Helper()
	families, err := r.metrics.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if route != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != route) {
				continue
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	require.FailNow(t, "no metric", "%s{route=%q}", name, route)
	return 0
}

// reading is what one read saw: whether it ran on the standby and the marks table's count.
type reading struct {
	standby bool
	marks   int
}

// read reads through r whether it ran on the standby and how many marks it saw.
func (r router) read(t *testing.T) reading {
	t.Helper()
	got, err := r.tryRead()
	require.NoError(t, err)
	return got
}

// tryRead is read, returning its error.
func (r router) tryRead() (reading, error) {
	var got reading
	err := r.Read(context.Background(), func(db sql.DBTX) (bool, error) {
		return true, db.QueryRow(context.Background(), "SELECT pg_is_in_recovery(), (SELECT count(*) FROM marks)").Scan(&got.standby, &got.marks)
	})
	return got, err
}

// reads reports whether a read through r sees want.
func (r router) reads(want reading) func() bool {
	return func() bool {
		got, err := r.tryRead()
		return err == nil && got == want
	}
}

func connect(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// TestRouter runs reads through two routers on one primary and its replica as the replica
// lags and dies: fast checks every 50 ms with a 400 ms bound; slow checks every 5 minutes with
// a 10-minute bound, so its replica stays in use between checks whatever happens to it.
//
//nolint:paralleltest,tparallel // the subtests run in order on one replica, which they pause and kill
func TestRouter(t *testing.T) {
	t.Parallel()
	pair := testdb.Replicated(t)
	ctx := context.Background()
	primary, replicaPool := connect(t, pair.PrimaryURL), connect(t, pair.ReplicaURL)
	_, err := primary.Exec(ctx, "CREATE TABLE marks (n int PRIMARY KEY)")
	require.NoError(t, err)
	pair.CatchUp(t)
	const maxLag = 400 * time.Millisecond
	fast := startRouter(t, primary, replicaPool, maxLag, 50*time.Millisecond)
	slow := startRouter(t, primary, replicaPool, 10*time.Minute, 5*time.Minute)
	usable := func(r router) {
		t.Helper()
		require.Eventually(t, r.Usable, waitFor, 10*time.Millisecond, "the replica never became usable")
	}

	t.Run("ReadsOnReplica", func(t *testing.T) {
		usable(slow)
		require.Equal(t, reading{standby: true}, slow.read(t))
		require.Equal(t, 1.0, slow.metric(t, "tessera_reads_total", "replica"))
		// fast's 400 ms bound holds only while checks come in time: a loaded machine may delay one.
		require.Eventually(t, fast.reads(reading{standby: true}), waitFor, 10*time.Millisecond)
		require.Positive(t, fast.metric(t, "tessera_reads_total", "replica"))
		require.Less(t, fast.metric(t, "tessera_read_replica_lag_seconds", ""), maxLag.Seconds())
		require.Contains(t, fast.logs.String(), "read replica usable")
	})

	t.Run("AnswerNotFinalReadOnPrimary", func(t *testing.T) {
		for _, answer := range []struct {
			final bool
			err   error
		}{{final: false}, {final: true, err: core.ErrNotFound}} {
			var standby []bool
			err := slow.Read(ctx, func(db sql.DBTX) (bool, error) {
				var s bool
				require.NoError(t, db.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&s))
				standby = append(standby, s)
				if s {
					return answer.final, answer.err
				}
				return true, answer.err
			})
			require.ErrorIs(t, err, answer.err)
			require.Equal(t, []bool{true, false}, standby, "read on the replica, then confirmed on the primary")
		}
		require.Equal(t, 2.0, slow.metric(t, "tessera_reads_total", "confirmed"))
		require.True(t, slow.Usable(), "an answer to confirm is no failure of the replica")
	})

	t.Run("HangingReadReadsPrimary", func(t *testing.T) {
		usable(fast)
		// The replica answers its checks but hangs on this read: the read is cancelled at the
		// bound and the primary answers.
		started := (clock.System{}).Now()
		var standby []bool
		require.NoError(t, fast.Read(ctx, func(db sql.DBTX) (bool, error) {
			var s bool
			if err := db.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&s); err != nil {
				return false, err
			}
			standby = append(standby, s)
			if !s {
				return true, nil
			}
			_, err := db.Exec(ctx, "SELECT pg_sleep(60)")
			return true, err
		}))
		require.Equal(t, []bool{true, false}, standby, "hung on the replica, answered by the primary")
		require.Less(t, (clock.System{}).Now().Sub(started), waitFor, "the read waited for the hanging replica")
		require.Equal(t, 1.0, fast.metric(t, "tessera_reads_total", "replica_failed"))
		require.Contains(t, fast.logs.String(), "read replica failed a read")
		require.Eventually(t, fast.reads(reading{standby: true}), waitFor, 10*time.Millisecond, "the next check puts the replica back in use")
	})

	t.Run("LagBeyondBoundReadsPrimary", func(t *testing.T) {
		usable(fast)
		pair.PauseReplay(t)
		_, err := primary.Exec(ctx, "INSERT INTO marks VALUES (1)")
		require.NoError(t, err)
		committed := (clock.System{}).Now()
		// Every read that starts more than maxLag after the commit sees it.
		for (clock.System{}).Now().Sub(committed) < 3*maxLag {
			started := (clock.System{}).Now()
			got := fast.read(t)
			if started.Sub(committed) > maxLag {
				require.Equal(t, reading{standby: false, marks: 1}, got, "read %s after the commit", started.Sub(committed))
			}
			time.Sleep(10 * time.Millisecond)
		}
		require.False(t, fast.Usable())
		require.Equal(t, 0.0, fast.metric(t, "tessera_read_replica_usable", ""))
		require.Greater(t, fast.metric(t, "tessera_read_replica_lag_seconds", ""), maxLag.Seconds())
		require.Positive(t, fast.metric(t, "tessera_reads_total", "primary"))
		require.Contains(t, fast.logs.String(), "the replica lags")
		// Within its 10 minutes' bound, slow still reads the paused replica: up to its bound stale.
		require.Equal(t, reading{standby: true, marks: 0}, slow.read(t))

		pair.ResumeReplay(t)
		require.Eventually(t, fast.reads(reading{standby: true, marks: 1}), waitFor, 10*time.Millisecond)
	})

	t.Run("KilledReplicaReadsPrimary", func(t *testing.T) {
		usable(slow)
		pair.Kill(t)
		// slow's replica is in use until its next check: the read fails on it and is answered
		// by the primary, and the replica is out of use from then on.
		require.Equal(t, reading{standby: false, marks: 1}, slow.read(t))
		require.Equal(t, 1.0, slow.metric(t, "tessera_reads_total", "replica_failed"))
		require.False(t, slow.Usable())
		require.Contains(t, slow.logs.String(), "read replica failed a read")
		require.Equal(t, reading{standby: false, marks: 1}, slow.read(t))

		require.Eventually(t, func() bool { return !fast.Usable() }, waitFor, 10*time.Millisecond)
		require.Equal(t, reading{standby: false, marks: 1}, fast.read(t))
		require.True(t, math.IsInf(fast.metric(t, "tessera_read_replica_lag_seconds", ""), 1))
		require.Contains(t, fast.logs.String(), "the replica is unreachable")
	})

	t.Run("RestartedReplicaReadAgain", func(t *testing.T) {
		pair.Start(t)
		require.Eventually(t, fast.reads(reading{standby: true, marks: 1}), waitFor, 10*time.Millisecond)
	})
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	pool := connect(t, "postgres://localhost/unused")
	for name, cfg := range map[string]replica.Config{
		"NoReplica":         {Primary: pool, MaxLag: time.Second, Clock: clock.System{}, Log: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry()},
		"NoMetrics":         {Primary: pool, Replica: pool, MaxLag: time.Second, Clock: clock.System{}, Log: slog.New(slog.DiscardHandler)},
		"BoundNotAboveTick": {Primary: pool, Replica: pool, MaxLag: replica.DefaultInterval, Clock: clock.System{}, Log: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry()},
	} {
		_, err := replica.New(cfg)
		require.Error(t, err, name)
	}
}
