package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/metrics"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// bundle is what an API test needs: a server on a database, a tenant and its key.
type bundle struct {
	clock   *clock.Manual
	db      pg.DB
	handler http.Handler
	metrics *prometheus.Registry
	tenant  sql.Tenant
	key     string
	keyID   uuid.UUID
	ready   error
	// payments is the fake BTCPay server the API's provider talks to.
	payments factory.Payments
}

// setup returns a bundle inside a rolled-back transaction; requests run one at a time.
func setup(t *testing.T) *bundle {
	t.Helper()
	return newBundle(t, testdb.Tx(t))
}

// setupServer returns a bundle on its own database, served on loopback, for tests that
// send concurrent requests.
func setupServer(t *testing.T, configure ...func(*api.Config)) (*bundle, *httptest.Server) {
	t.Helper()
	pool, _ := testdb.Clone(t)
	b := newBundle(t, pool, configure...)
	srv := httptest.NewServer(b.handler)
	t.Cleanup(srv.Close)
	return b, srv
}

// newBundle builds the bundle's server on db, with its configuration changed by configure.
func newBundle(t *testing.T, db pg.DB, configure ...func(*api.Config)) *bundle {
	t.Helper()
	b := &bundle{clock: clock.NewManual(factory.Now), db: db, metrics: prometheus.NewRegistry(), payments: factory.FakeBTCPay(t, "")}
	jobs, err := river.NewClient(riverpgxv5.New(nil), &river.Config{}) // insert-only
	require.NoError(t, err)
	outcomes, err := metrics.NewDomain(b.metrics)
	require.NoError(t, err)
	cfg := api.Config{
		DB:       db,
		Clock:    b.clock,
		Jobs:     jobs,
		Box:      factory.Box,
		Payments: b.payments.Client,
		Rates:    b.payments.Client,
		Log:      testLogger(),
		Metrics:  b.metrics,
		Outcomes: outcomes,
		Ready: func(ctx context.Context) error {
			if b.ready != nil {
				return b.ready
			}
			_, err := db.Exec(ctx, "SELECT 1")
			return err
		},
	}
	for _, c := range configure {
		c(&cfg)
	}
	server, err := api.New(cfg)
	require.NoError(t, err)
	b.handler = codedProblems(t, server.Handler())
	t.Cleanup(func() { factory.RequireEventsDocumented(t, db) })
	b.tenant = factory.Tenant(t, db)
	var key sql.APIKey
	key, b.key = factory.APIKey(t, db, b.tenant.ID)
	b.keyID = key.ID
	return b
}

// response is a finished request.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request sends a request authenticated with the bundle's key; header pairs follow the
// body ("Name", "value", ...), and an Authorization pair replaces the key.
func (b *bundle) request(t *testing.T, method, path, body string, header ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+b.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// send sends a request to a served bundle over real HTTP.
func (b *bundle) send(t *testing.T, srv *httptest.Server, method, path, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer func() { require.NoError(t, res.Body.Close()) }()
	got, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{status: res.StatusCode, header: res.Header, body: got}
}

// decode unmarshals a response body.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

// problem is an RFC 9457 problem as Tessera writes it.
type problem struct {
	Type   string          `json:"type"`
	Code   api.ProblemCode `json:"code"`
	Title  string          `json:"title"`
	Status int             `json:"status"`
	Detail string          `json:"detail"`
}

// requireProblem asserts that r is a problem+json answer with the given status.
func requireProblem(t *testing.T, r response, status int) problem {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), "body: %s", r.body)
	p := decode[problem](t, r)
	require.Equal(t, status, p.Status)
	require.NotEmpty(t, p.Detail)
	return p
}

// requireCode asserts that r is a problem+json answer with the given status and code.
func requireCode(t *testing.T, r response, status int, code api.ProblemCode) problem {
	t.Helper()
	p := requireProblem(t, r, status)
	require.Equal(t, code, p.Code, "body: %s", r.body)
	return p
}

// testLogger discards request logs unless TESSERA_TEST_LOG is set, when they go to stderr.
func testLogger() *slog.Logger {
	if os.Getenv("TESSERA_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
