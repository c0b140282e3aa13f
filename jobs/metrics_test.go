package jobs_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/jobs"
)

// metricsBundle is what a collector test needs: a rolled-back transaction, an insert-only
// River client and a collector reading through the transaction into a captured log.
type metricsBundle struct {
	tx        pgx.Tx
	client    *river.Client[pgx.Tx]
	collector *jobs.JobCountCollector
	log       *bytes.Buffer
}

func setupMetrics(t *testing.T) *metricsBundle {
	t.Helper()
	tx := testdb.Tx(t)
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	require.NoError(t, err)
	var log bytes.Buffer
	return &metricsBundle{
		tx:        tx,
		client:    client,
		collector: jobs.NewJobCountCollector(tx, slog.New(slog.NewTextHandler(&log, nil))),
		log:       &log,
	}
}

// gauges gathers the collector through a pedantic registry (which checks the metrics against
// their description) and returns tessera_river_jobs by "kind/state".
func (b *metricsBundle) gauges(t *testing.T) map[string]float64 {
	t.Helper()
	registry := prometheus.NewPedanticRegistry()
	require.NoError(t, registry.Register(b.collector))
	families, err := registry.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, family := range families {
		require.Equal(t, "tessera_river_jobs", family.GetName())
		require.Equal(t, dto.MetricType_GAUGE, family.GetType())
		for _, metric := range family.GetMetric() {
			labels := map[string]string{}
			for _, label := range metric.GetLabel() {
				labels[label.GetName()] = label.GetValue()
			}
			require.Len(t, labels, 2)
			got[labels["kind"]+"/"+labels["state"]] = metric.GetGauge().GetValue()
		}
	}
	return got
}

func TestJobCountCollector(t *testing.T) {
	t.Parallel()

	t.Run("CountsJobsByKindAndState", func(t *testing.T) {
		t.Parallel()
		b := setupMetrics(t)
		ctx := context.Background()
		for range 2 {
			_, err := b.client.InsertTx(ctx, b.tx, jobargs.IdempotencyExpireSweep{}, nil)
			require.NoError(t, err)
		}
		_, err := b.client.InsertTx(ctx, b.tx, jobargs.IdempotencyExpireSweep{},
			&river.InsertOpts{ScheduledAt: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)})
		require.NoError(t, err)

		require.Equal(t, map[string]float64{
			"idempotency.expire_sweep/available": 2,
			"idempotency.expire_sweep/scheduled": 1,
		}, b.gauges(t))
		require.Empty(t, b.log.String())
	})

	t.Run("NoJobsNoSeries", func(t *testing.T) {
		t.Parallel()
		b := setupMetrics(t)

		require.Empty(t, b.gauges(t))
		require.Empty(t, b.log.String())
	})

	t.Run("QueryFailureReportsNothingAndLogs", func(t *testing.T) {
		t.Parallel()
		b := setupMetrics(t)
		ctx := context.Background()
		_, err := b.client.InsertTx(ctx, b.tx, jobargs.IdempotencyExpireSweep{}, nil)
		require.NoError(t, err)
		savepoint, err := b.tx.Begin(ctx)
		require.NoError(t, err)
		_, err = savepoint.Exec(ctx, "SELECT 1/0")
		require.Error(t, err)

		require.Empty(t, b.gauges(t), "an aborted transaction reports no counts rather than wrong ones")
		require.Contains(t, b.log.String(), "count river jobs")
		require.NoError(t, savepoint.Rollback(ctx))
	})
}
