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
	huma.Register(s.api, healthzOperation, s.healthz)
	huma.Register(s.api, readyzOperation, s.readyz)
}

var healthTags = []string{"Health"}

var healthzOperation = huma.Operation{
	OperationID: "healthz",
	Method:      http.MethodGet,
	Path:        "/healthz",
	Summary:     "Liveness: the process is up",
	Description: "200 while the process runs. It reads nothing, so a database outage does not fail it (readyz does).",
	Tags:        healthTags,
	Metadata:    map[string]any{metadataNoDatabase: true},
}

// healthz answers that the process is up, reading nothing.
func (s *Server) healthz(context.Context, *struct{}) (*HealthOutput, error) {
	out := &HealthOutput{}
	out.Body.Status = "ok"
	return out, nil
}

var readyzOperation = huma.Operation{
	OperationID: "readyz",
	Method:      http.MethodGet,
	Path:        "/readyz",
	Summary:     "Readiness: the database is reachable and fully migrated",
	Description: "503 when the database is unreachable (with `Retry-After`) or has pending migrations.",
	Tags:        healthTags,
	Errors:      []int{http.StatusServiceUnavailable},
}

// readyz answers whether the server can serve (Config.Ready): 503 with Retry-After while
// the database is unreachable, 503 naming the reason otherwise.
func (s *Server) readyz(ctx context.Context, _ *struct{}) (*HealthOutput, error) {
	if err := s.cfg.Ready(ctx); err != nil {
		if core.DBUnavailable(err) {
			requestInfoFrom(ctx).logger().WarnContext(ctx, "not ready", "error", err)
			return nil, unavailable("not ready: the database is unreachable")
		}
		return nil, newProblem(CodeNotReady, "not ready: "+err.Error())
	}
	out := &HealthOutput{}
	out.Body.Status = "ready"
	return out, nil
}
