package api

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera/tessera/internal/metrics"
)

// httpMetrics counts and times requests by operation id and status. Routes outside Huma
// (/docs, /openapi.json, /metrics) are labelled with their mux pattern, requests no route
// matches with "unmatched".
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_http_requests_total",
			Help: "HTTP requests by operation id and status.",
		}, []string{"operation", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tessera_http_request_duration_seconds",
			Help:    "HTTP request latency by operation id and status.",
			Buckets: metrics.HTTPDurationBuckets,
		}, []string{"operation", "status"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

func (m *httpMetrics) observe(operation string, status int, elapsed time.Duration) {
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(operation, code).Inc()
	m.duration.WithLabelValues(operation, code).Observe(elapsed.Seconds())
}
