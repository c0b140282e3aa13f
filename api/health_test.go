package api_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	b := setup(t)

	require.Equal(t, http.StatusOK, b.request(t, http.MethodGet, "/healthz", "").status)
	require.Equal(t, http.StatusOK, b.request(t, http.MethodGet, "/readyz", "").status)

	b.ready = errors.New("the database has pending migrations")
	p := requireCode(t, b.request(t, http.MethodGet, "/readyz", ""), http.StatusServiceUnavailable, api.CodeNotReady)
	require.Contains(t, p.Detail, "pending migrations")
	require.Equal(t, http.StatusOK, b.request(t, http.MethodGet, "/healthz", "").status, "liveness does not depend on the database")
}

func TestDocuments(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{"/openapi.json", "/openapi-3.0.json", "/docs"} {
		res := b.request(t, http.MethodGet, path, "")
		require.Equal(t, http.StatusOK, res.status, path)
	}
	require.Contains(t, string(b.request(t, http.MethodGet, "/openapi.json", "").body), `"openapi":"3.1`)
	require.Contains(t, string(b.request(t, http.MethodGet, "/openapi-3.0.json", "").body), `"openapi":"3.0`)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.request(t, http.MethodGet, "/v1/admin/tenant", "")
	b.request(t, http.MethodGet, "/v1/admin/tenant", "", "Authorization", "")
	b.request(t, http.MethodGet, "/nowhere", "")

	res := b.request(t, http.MethodGet, "/metrics", "")
	require.Equal(t, http.StatusOK, res.status)
	body := string(res.body)
	for _, want := range []string{
		`tessera_http_requests_total{operation="tenant-get",status="200"} 1`,
		`tessera_http_requests_total{operation="tenant-get",status="401"} 1`,
		`tessera_http_requests_total{operation="unmatched",status="404"} 1`,
		`tessera_http_request_duration_seconds_count{operation="tenant-get",status="200"} 1`,
		// Buckets from 100 µs, three per power of ten: a 1 ms validation is resolved.
		`tessera_http_request_duration_seconds_bucket{operation="tenant-get",status="200",le="0.0001"}`,
		`tessera_http_request_duration_seconds_bucket{operation="tenant-get",status="200",le="0.00025"}`,
		`tessera_http_request_duration_seconds_bucket{operation="tenant-get",status="200",le="0.0005"}`,
		`tessera_http_request_duration_seconds_bucket{operation="tenant-get",status="200",le="0.001"}`,
		`tessera_http_request_duration_seconds_bucket{operation="tenant-get",status="200",le="10"}`,
	} {
		require.True(t, strings.Contains(body, want), "missing %s in:\n%s", want, body)
	}
}
