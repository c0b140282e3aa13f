package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/testdb"
)

// TestMountsAreObserved serves a mounted handler with a request id, a log line (reads at
// debug level, writes at info) and the request metrics, under its pattern.
func TestMountsAreObserved(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	b := newBundle(t, testdb.Tx(t), func(cfg *api.Config) {
		cfg.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		cfg.Mounts = map[string]http.Handler{"/mounted/": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusTeapot)
		})}
	})

	for _, tt := range []struct {
		method, path, wantLog string
	}{
		{http.MethodGet, "/mounted/page", `level=DEBUG msg=request request_id=\S+ method=GET path=/mounted/page operation=/mounted/ status=418 `},
		{http.MethodPost, "/mounted/action", `level=INFO msg=request request_id=\S+ method=POST path=/mounted/action operation=/mounted/ status=418 `},
	} {
		logs.Reset()
		res := b.request(t, tt.method, tt.path, "")
		require.Equal(t, http.StatusTeapot, res.status)
		require.NotEmpty(t, res.header.Get("X-Request-Id"))
		require.Regexp(t, tt.wantLog, logs.String())
	}

	logs.Reset()
	require.Equal(t, http.StatusOK, b.request(t, http.MethodGet, "/healthz", "").status)
	require.Regexp(t, `level=INFO msg=request .* path=/healthz `, logs.String(), "operations' reads stay at info")

	families, err := b.metrics.Gather()
	require.NoError(t, err)
	var mounted float64
	for _, f := range families {
		if f.GetName() != "tessera_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" && l.GetValue() == "/mounted/" {
					mounted += m.GetCounter().GetValue()
				}
			}
		}
	}
	require.InDelta(t, 2, mounted, 0)
}
