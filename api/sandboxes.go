package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tessera/tessera/internal/core"
)

// SandboxResetInput resets the caller's sandbox tenant; the body is optional.
type SandboxResetInput struct {
	Body *struct {
		Clock *time.Time `json:"clock,omitempty" example:"2030-01-01T00:00:00Z" doc:"The instant the tenant's clock restarts at: any instant, even before its clock, since nothing is left that happened after it. Default: the clock stays where it is."`
	}
}

// SandboxResetOutput is the tenant after its reset and what the reset deleted.
type SandboxResetOutput struct {
	Body struct {
		Tenant  Tenant           `json:"tenant"`
		Deleted map[string]int64 `json:"deleted" doc:"Rows deleted per table (tables with none left out); river_job counts the tenant's unfinished background jobs."`
		Total   int64            `json:"deleted_total" doc:"Rows deleted in all."`
	}
}

func (s *Server) registerSandboxes() {
	huma.Register(s.api, adminOperation(sandboxResetOperation), s.sandboxReset)
}

var sandboxTags = []string{"Sandbox"}

var sandboxResetOperation = huma.Operation{
	OperationID: "sandbox-reset",
	Method:      http.MethodPost,
	Path:        "/v1/admin/sandbox/reset",
	Summary:     "Delete all of a sandbox tenant's data",
	Description: "Deletes, in one transaction, everything the caller's sandbox tenant has — customers, catalog, licences, " +
		"subscriptions, PayIns, balances, referrals, events, webhook endpoints and deliveries, upstream stores and imports, " +
		"Idempotency-Keys, the audit log — and its background jobs that have not finished. The tenant, its API keys and " +
		"its licence-signing key stay. `clock` restarts the tenant's clock at any instant, even an earlier one; without it " +
		"the clock stays. The reset is the first entry of the emptied audit log (`sandbox.reset`). " +
		"A live tenant's key is refused with 409 `sandbox_only` and nothing is deleted.",
	Tags:   sandboxTags,
	Errors: []int{http.StatusConflict},
}

// sandboxReset deletes the caller's sandbox tenant's data.
func (s *Server) sandboxReset(ctx context.Context, in *SandboxResetInput) (*SandboxResetOutput, error) {
	p := core.SandboxResetParams{TenantID: tenantID(ctx)}
	if in.Body != nil {
		p.Clock = in.Body.Clock
	}
	reset, err := core.SandboxReset(ctx, tx(ctx), s.step(ctx, actor(ctx)), p)
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &SandboxResetOutput{}
	out.Body.Tenant, out.Body.Deleted = tenantFrom(reset.Tenant), reset.Deleted
	for _, n := range reset.Deleted {
		out.Body.Total += n
	}
	return out, nil
}
