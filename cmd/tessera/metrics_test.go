package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
)

// TestWorkerServesMetrics starts a real `tessera worker` process on a database with a due
// subscription and scrapes the /metrics it serves on TESSERA_METRICS_ADDR: the job, renewal
// and queue metrics move as it works, and /healthz answers.
func TestWorkerServesMetrics(t *testing.T) {
	t.Parallel()
	pool, databaseURL := testdb.Clone(t)
	dueSubscriptions(t, pool, 1)
	worker := startProcess(t, append(os.Environ(),
		childEnv+"=worker",
		"DATABASE_URL="+databaseURL,
		"TESSERA_SECRET_KEY="+factory.SecretKey,
		// Nothing listens there: the renewal's invoice creation fails, and is retried.
		"TESSERA_BTCPAY_URL=http://127.0.0.1:9", "TESSERA_BTCPAY_STORE_ID=store", "TESSERA_BTCPAY_API_KEY=key", "TESSERA_BTCPAY_WEBHOOK_SECRET=secret",
		"TESSERA_METRICS_ADDR=127.0.0.1:0",
		"TESSERA_LOG_FORMAT=json", "TESSERA_LOG_LEVEL=info",
	))

	var metricsURL string
	require.Eventually(t, func() bool {
		for line := range strings.Lines(worker.output.String()) {
			var entry struct{ Msg, Metrics string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "tessera working jobs" {
				metricsURL = entry.Metrics
				return true
			}
		}
		return false
	}, crashStart, 20*time.Millisecond, "the worker never said where it serves its metrics")
	require.True(t, strings.HasPrefix(metricsURL, "http://127.0.0.1:"), metricsURL)

	client := &http.Client{Timeout: waitFor}
	get := func(url string) (int, string) {
		res, err := client.Get(url)
		require.NoError(t, err)
		defer func() { require.NoError(t, res.Body.Close()) }()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, string(body)
	}
	status, body := get(strings.TrimSuffix(metricsURL, "/metrics") + "/healthz")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"status":"ok"}`, body)

	wants := []string{
		`tessera_jobs_total{kind="subscription.renew_sweep",outcome="completed"} 1`,
		`tessera_renewals_total{outcome="started"} 1`,
		`tessera_jobs_total{kind="payin.create_invoice",outcome="failed"}`,
		`tessera_job_duration_seconds_bucket{kind="subscription.renew_sweep",le="0.001"}`,
		`tessera_queue_jobs{queue="default",state="available"}`,
		`tessera_queue_jobs{queue="webhooks",state="running"} 0`,
		`go_goroutines`,
	}
	require.Eventually(t, func() bool {
		status, body = get(metricsURL)
		for _, want := range wants {
			if !strings.Contains(body, want) {
				return false
			}
		}
		return status == http.StatusOK
	}, crashStart, 100*time.Millisecond, "the worker's metrics never showed all of %q:\n%s", wants, body)
	require.Contains(t, worker.output.String(), `"msg":"job failed; River retries it"`)
	require.Contains(t, worker.output.String(), `"kind":"payin.create_invoice"`)

	worker.stop(t)
}
