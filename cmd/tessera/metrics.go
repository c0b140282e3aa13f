package main

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/metrics"
	"github.com/tessera/tessera/jobs"
	"github.com/tessera/tessera/sql"
)

// observability is a process's metrics: one registry holding the Go and process collectors,
// the queue depths, the domain outcome counters that the API and the jobs count into, and
// the River middleware that observes every job.
type observability struct {
	registry *prometheus.Registry
	outcomes *metrics.Domain
	jobs     *jobs.Metrics
}

// newObservability registers a process's metrics; queues are the River queues it works,
// reported even when empty.
func newObservability(db sql.DBTX, clk clock.Clock, log *slog.Logger, queues []string) (*observability, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister( // three different collectors on a new registry: they cannot clash
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		jobs.NewQueueDepthCollector(db, clk, log, queues),
	)
	outcomes, err := metrics.NewDomain(reg)
	if err != nil {
		return nil, err
	}
	jobMetrics, err := jobs.NewMetrics(reg, outcomes, log)
	if err != nil {
		return nil, err
	}
	return &observability{registry: reg, outcomes: outcomes, jobs: jobMetrics}, nil
}

// handler serves what a worker process serves on TESSERA_METRICS_ADDR: GET /metrics and
// GET /healthz (200 while the process is up).
func (o *observability) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}` + "\n")) //nolint:errcheck // the prober went away
	})
	return mux
}
