package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/jobs"
	"github.com/tessera/tessera/sql"
)

// queueDepthBundle is what a queue depth test needs: a rolled-back transaction, an
// insert-only River client, a manual clock, and a collector reading through the transaction
// into a captured log.
type queueDepthBundle struct {
	tx        pgx.Tx
	client    *river.Client[pgx.Tx]
	clock     *clock.Manual
	collector *jobs.QueueDepthCollector
	log       *bytes.Buffer
}

func setupQueueDepth(t *testing.T) *queueDepthBundle {
	t.Helper()
	tx := testdb.Tx(t)
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	require.NoError(t, err)
	var log bytes.Buffer
	// River schedules jobs at the real time; the collector's clock is a minute later.
	clk := clock.NewManual(clock.System{}.Now().Add(time.Minute))
	return &queueDepthBundle{
		tx: tx, client: client, clock: clk, log: &log,
		collector: jobs.NewQueueDepthCollector(tx, clk, slog.New(slog.NewTextHandler(&log, nil)), []string{river.QueueDefault, jobargs.QueueWebhooks}),
	}
}

// insert enqueues n jobs with opts.
func (b *queueDepthBundle) insert(t *testing.T, n int, opts *river.InsertOpts) {
	t.Helper()
	for range n {
		_, err := b.client.InsertTx(context.Background(), b.tx, jobargs.IdempotencyExpireSweep{}, opts)
		require.NoError(t, err)
	}
}

// gauges gathers the collector through a pedantic registry (which checks the metrics against
// their description) and returns tessera_queue_jobs by "queue/state".
func (b *queueDepthBundle) gauges(t *testing.T) map[string]float64 {
	t.Helper()
	registry := prometheus.NewPedanticRegistry()
	require.NoError(t, registry.Register(b.collector))
	families, err := registry.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, family := range families {
		require.Equal(t, "tessera_queue_jobs", family.GetName())
		require.Equal(t, dto.MetricType_GAUGE, family.GetType())
		for _, metric := range family.GetMetric() {
			labels := map[string]string{}
			for _, label := range metric.GetLabel() {
				labels[label.GetName()] = label.GetValue()
			}
			require.Len(t, labels, 2)
			got[labels["queue"]+"/"+labels["state"]] = metric.GetGauge().GetValue()
		}
	}
	return got
}

func TestQueueDepthCollector(t *testing.T) {
	t.Parallel()

	t.Run("CountsDueAndRunningJobsByQueue", func(t *testing.T) {
		t.Parallel()
		b := setupQueueDepth(t)
		b.insert(t, 2, nil)
		b.insert(t, 1, &river.InsertOpts{Queue: "reports"})
		b.insert(t, 1, &river.InsertOpts{ScheduledAt: b.clock.Now().Add(time.Hour)}) // not due: not waiting
		_, err := b.tx.Exec(context.Background(), `
			UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now()
			WHERE id = (SELECT min(id) FROM river_job WHERE queue = 'default')`)
		require.NoError(t, err)
		b.insert(t, 1, nil)
		_, err = b.tx.Exec(context.Background(), `
			UPDATE river_job SET state = 'completed', finalized_at = now()
			WHERE id = (SELECT max(id) FROM river_job)`)
		require.NoError(t, err)

		require.Equal(t, map[string]float64{
			"default/available":  1,
			"default/running":    1,
			"webhooks/available": 0, // the queues it was given are reported even when empty
			"webhooks/running":   0,
			"reports/available":  1,
		}, b.gauges(t))
		require.Empty(t, b.log.String())
	})

	t.Run("ReadAtMostOncePerTTL", func(t *testing.T) {
		t.Parallel()
		b := setupQueueDepth(t)
		b.insert(t, 1, nil)
		require.Equal(t, float64(1), b.gauges(t)["default/available"])

		b.insert(t, 2, nil)
		b.clock.Advance(jobs.QueueDepthTTL - time.Second)
		require.Equal(t, float64(1), b.gauges(t)["default/available"], "a scrape within the TTL reuses the last read")

		b.clock.Advance(time.Second)
		require.Equal(t, float64(3), b.gauges(t)["default/available"])
	})

	t.Run("QueryFailureReportsNothingAndLogs", func(t *testing.T) {
		t.Parallel()
		b := setupQueueDepth(t)
		b.insert(t, 1, nil)
		savepoint, err := b.tx.Begin(context.Background())
		require.NoError(t, err)
		_, err = savepoint.Exec(context.Background(), "SELECT 1/0")
		require.Error(t, err)

		require.Empty(t, b.gauges(t), "an aborted transaction reports no counts rather than wrong ones")
		require.Contains(t, b.log.String(), "count queued river jobs")
		require.NoError(t, savepoint.Rollback(context.Background()))
	})
}

// errCaptured is what captured answers every query with.
var errCaptured = errors.New("captured, not run")

// captured is a sql.DBTX that keeps the text and arguments of the query it is given instead
// of running it, so that a test can EXPLAIN the generated query itself.
type captured struct {
	sql.DBTX
	text string
	args []any
}

func (c *captured) Query(_ context.Context, text string, args ...any) (pgx.Rows, error) {
	c.text, c.args = text, args
	return nil, errCaptured
}

// TestQueueDepthQueryPlan checks that the queue depth query reads River's fetching index, not
// the table: with 20,000 finished jobs and 200 waiting, Postgres's plan is an index scan of
// river_job_prioritized_fetching_index and no sequential scan.
func TestQueueDepthQueryPlan(t *testing.T) {
	t.Parallel()
	tx := testdb.Tx(t)
	ctx := context.Background()
	_, err := tx.Exec(ctx, `
		INSERT INTO river_job (state, queue, kind, args, max_attempts, priority, scheduled_at, attempt, attempted_at, finalized_at)
		SELECT CASE WHEN g <= 200 THEN 'available' ELSE 'completed' END::river_job_state, 'default', 'subscription.renew', '{}',
		       25, 1, now() - interval '1 minute', 1, now(), CASE WHEN g <= 200 THEN NULL ELSE now() END
		FROM generate_series(1, 20200) g`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "ANALYZE river_job")
	require.NoError(t, err)

	query := &captured{}
	_, err = sql.New().RiverJobCountByQueue(ctx, query, factory.Now)
	require.ErrorIs(t, err, errCaptured)
	var plan []byte
	require.NoError(t, tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+query.text, query.args...).Scan(&plan))
	var nodes []map[string]any
	require.NoError(t, json.Unmarshal(plan, &nodes))
	scans := map[string]string{}
	var walk func(node map[string]any)
	walk = func(node map[string]any) {
		if relation, ok := node["Relation Name"].(string); ok && relation == "river_job" {
			index, _ := node["Index Name"].(string)
			scans[node["Node Type"].(string)] = index
		}
		children, _ := node["Plans"].([]any)
		for _, child := range children {
			walk(child.(map[string]any))
		}
	}
	walk(nodes[0]["Plan"].(map[string]any))
	require.NotContains(t, scans, "Seq Scan", "plan: %s", plan)
	require.Len(t, scans, 1, "plan: %s", plan)
	for _, index := range scans {
		require.Equal(t, "river_job_prioritized_fetching_index", index, "plan: %s", plan)
	}
}
