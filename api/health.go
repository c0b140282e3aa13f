package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tessera/tessera/internal/core"
)

// HealthOutput answers the health probes.
type HealthOutput struct {
	Body struct {
		Status string `json:"status" example:"ok"`
	}
}

func (s *Server) registerHealth() {
	huma.Register(s.api, huma.Operation{
		OperationID: "healthz",
		Method:      http.MethodGet,
		Path:        "/healthz",
		Summary:     "Liveness: the process is up",
		Description: "200 while the process runs. It reads nothing, so a database outage does not fail it (readyz does).",
		Tags:        []string{"Health"},
		Metadata:    map[string]any{metadataNoDatabase: true},
	}, func(ctx context.Context, _ *struct{}) (*HealthOutput, error) {
		out := &HealthOutput{}
		out.Body.Status = "ok"
		return out, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "readyz",
		Method:      http.MethodGet,
		Path:        "/readyz",
		Summary:     "Readiness: the database is reachable and fully migrated",
		Description: "503 when the database is unreachable (with `Retry-After`) or has pending migrations.",
		Tags:        []string{"Health"},
		Errors:      []int{http.StatusServiceUnavailable},
	}, func(ctx context.Context, _ *struct{}) (*HealthOutput, error) {
		if err := s.cfg.Ready(ctx); err != nil {
			if core.DBUnavailable(err) {
				requestInfoFrom(ctx).log.WarnContext(ctx, "not ready", "error", err)
				return nil, unavailable("not ready: the database is unreachable")
			}
			return nil, newProblem(CodeNotReady, "not ready: "+err.Error())
		}
		out := &HealthOutput{}
		out.Body.Status = "ready"
		return out, nil
	})
}
