package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/upstream"
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

// SandboxCloneInput names the clone of the caller's sandbox tenant.
type SandboxCloneInput struct {
	Body struct {
		Slug string `json:"slug" pattern:"^[a-z0-9][a-z0-9-]{1,62}$" example:"acme-test-2" doc:"The clone's slug: lowercase letters, digits and '-', 2 to 63, starting with a letter or digit; unique among all tenants."`
		Name string `json:"name" minLength:"1" maxLength:"200" example:"Acme (copy)"`
	}
}

// SandboxCloneOutput is the clone: the new tenant, its admin key (shown once) and what was copied.
type SandboxCloneOutput struct {
	Body struct {
		Tenant Tenant `json:"tenant"`
		APIKey struct {
			APIKey
			Key string `json:"key" doc:"The clone's admin key. It is not stored and cannot be shown again."`
		} `json:"api_key"`
		Copied map[string]int64 `json:"copied" doc:"Rows copied per table (tables with none left out); river_job counts the unfinished background jobs."`
	}
}

// sandboxConstraints words the constraint violations of a clone.
var sandboxConstraints = map[string]string{
	"tenants_slug_key": "a tenant with this slug already exists",
}

func (s *Server) registerSandboxData() {
	huma.Register(s.api, adminOperation(sandboxResetOperation), s.sandboxReset)
	huma.Register(s.api, adminOperation(sandboxCloneOperation), s.sandboxClone)
}

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
		"A live tenant's key is refused with 409 `sandbox_only` and nothing is deleted; while an advance of the clock runs, " +
		"409 `clock_advance_running`.",
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

var sandboxCloneOperation = huma.Operation{
	OperationID: "sandbox-clone",
	Method:      http.MethodPost,
	Path:        "/v1/admin/sandbox/clone",
	Summary:     "Copy a sandbox tenant into a new one",
	Description: "Creates, in one transaction, a new sandbox tenant at the caller's sandbox clock with a copy of all its data " +
		"and its background jobs that have not finished, and answers its first admin key (`tsk_test_...`, shown once). " +
		"The clone is a tenant of its own: ids are kept (they are per tenant) but for PayIns, which get new ids in the " +
		"same order; it has its own licence-signing key, and every licence keeps its id with a key re-signed by it " +
		"(verify them with the clone's public key); webhook endpoints keep their secrets; Idempotency-Keys are not copied; " +
		"a sandbox invoice follows its PayIn's new id (the clone pays at its own checkout), while another provider's invoice id " +
		"gets `~` and the clone's id (that provider's webhooks settle the source's PayIn only). " +
		"Writes to one tenant never change the other. A taken slug is 409 `duplicate`; a live tenant's key is refused " +
		"with 409 `sandbox_only`; while an advance of the clock runs, 409 `clock_advance_running`.",
	Tags:          sandboxTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusConflict},
}

// sandboxClone copies the caller's sandbox tenant into a new one.
func (s *Server) sandboxClone(ctx context.Context, in *SandboxCloneInput) (*SandboxCloneOutput, error) {
	st := s.step(ctx, actor(ctx))
	clone, err := core.SandboxClone(ctx, tx(ctx), st, core.SandboxCloneParams{TenantID: tenantID(ctx), Slug: in.Body.Slug, Name: in.Body.Name})
	if err != nil {
		return nil, problem(ctx, constraintError(err, sandboxConstraints))
	}
	err = upstream.StoreKeysReseal(ctx, tx(ctx), st, upstream.StoreKeysResealParams{SourceID: tenantID(ctx), CloneID: clone.Tenant.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &SandboxCloneOutput{}
	out.Body.Tenant, out.Body.Copied = tenantFrom(clone.Tenant), clone.Copied
	out.Body.APIKey.APIKey, out.Body.APIKey.Key = apiKeyFrom(clone.Key), clone.Secret
	return out, nil
}
