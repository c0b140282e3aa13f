package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// Tenant is a seller, the owner of everything else.
type Tenant struct {
	ID        uuid.UUID `json:"id"`
	Slug      string    `json:"slug" example:"acme"`
	Name      string    `json:"name" example:"Acme Software"`
	CreatedAt time.Time `json:"created_at"`
}

func tenantFrom(t sql.Tenant) Tenant {
	return Tenant{ID: t.ID, Slug: t.Slug, Name: t.Name, CreatedAt: t.CreatedAt}
}

// TenantOutput is one tenant.
type TenantOutput struct {
	Body Tenant
}

func (s *Server) registerTenants() {
	huma.Register(s.api, adminOperation(huma.Operation{
		OperationID: "tenant-get",
		Method:      http.MethodGet,
		Path:        "/v1/admin/tenant",
		Summary:     "Read the tenant of the API key",
		Tags:        []string{"Tenant"},
	}), func(ctx context.Context, _ *struct{}) (*TenantOutput, error) {
		t, err := s.queries.TenantGet(ctx, s.conn(ctx), tenantID(ctx))
		if err != nil {
			return nil, problem(ctx, core.DBError(err))
		}
		return &TenantOutput{Body: tenantFrom(t)}, nil
	})
}
