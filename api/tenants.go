package api

import (
	"context"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/sql"
)

// Tenant is a seller, the owner of everything else.
type Tenant struct {
	ID        uuid.UUID  `json:"id"`
	Slug      string     `json:"slug" example:"acme"`
	Name      string     `json:"name" example:"Acme Software"`
	CreatedAt time.Time  `json:"created_at"`
	Sandbox   bool       `json:"sandbox" doc:"A sandbox tenant runs on its own clock, moved only forward; a live tenant (false) on real time. Fixed at creation."`
	Clock     *time.Time `json:"clock,omitempty" doc:"The sandbox's clock: the instant every request, validation and job of the tenant happens at. Absent for a live tenant."`
}

func tenantFrom(t sql.Tenant) Tenant {
	return Tenant{ID: t.ID, Slug: t.Slug, Name: t.Name, CreatedAt: t.CreatedAt, Sandbox: t.ClockAt != nil, Clock: t.ClockAt}
}

// TenantOutput is one tenant.
type TenantOutput struct {
	Body Tenant
}

// PublicKeyInput names a tenant by slug.
type PublicKeyInput struct {
	Slug string `path:"slug" example:"acme"`
}

// PublicKeyOutput is a tenant's licence-signing public key.
type PublicKeyOutput struct {
	Body struct {
		TenantID  uuid.UUID `json:"tenant_id"`
		Slug      string    `json:"slug"`
		Algorithm string    `json:"algorithm" enum:"Ed25519"`
		PublicKey string    `json:"public_key" doc:"The 32-byte Ed25519 public key, base64 (standard, padded)."`
	}
}

func (s *Server) registerTenants() {
	huma.Register(s.api, tenantPublicKeyOperation, s.tenantPublicKey)
	huma.Register(s.api, adminOperation(tenantGetOperation), s.tenantGet)
}

var tenantTags = []string{"Tenant"}

var tenantPublicKeyOperation = huma.Operation{
	OperationID: "tenant-public-key",
	Method:      http.MethodGet,
	Path:        "/v1/tenants/{slug}/public-key",
	Summary:     "Read a tenant's licence-signing public key",
	Description: "Public: clients verify licence keys offline with it (see the README for the key format).",
	Tags:        tenantTags,
	Errors:      []int{http.StatusNotFound},
}

// tenantPublicKey reads the public key of the tenant the slug names; no API key needed. It
// may read a replica (s.read): a tenant the replica does not have yet is read again on the
// primary.
func (s *Server) tenantPublicKey(ctx context.Context, in *PublicKeyInput) (*PublicKeyOutput, error) {
	var key sql.SigningKeyGetPublicBySlugRow
	err := s.read(ctx, func(ctx context.Context) (bool, error) {
		var err error
		key, err = s.queries.SigningKeyGetPublicBySlug(ctx, s.conn(ctx), in.Slug)
		return true, err
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &PublicKeyOutput{}
	out.Body.TenantID, out.Body.Slug, out.Body.Algorithm = key.TenantID, key.Slug, "Ed25519"
	out.Body.PublicKey = base64.StdEncoding.EncodeToString(key.PublicKey)
	return out, nil
}

var tenantGetOperation = huma.Operation{
	OperationID: "tenant-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/tenant",
	Summary:     "Read the tenant of the API key",
	Description: "The tenant the Authorization header's key belongs to. `sandbox` says whether it is a sandbox " +
		"tenant, and `clock` is then its own clock: the time its requests, licence validations and jobs happen at. " +
		"A live tenant has no `clock`; it runs on real time. Tenants are created with `tessera tenant create` " +
		"(`--sandbox [--clock RFC3339]` for a sandbox).",
	Tags: tenantTags,
}

// tenantGet reads the caller's tenant.
func (s *Server) tenantGet(ctx context.Context, _ *struct{}) (*TenantOutput, error) {
	t, err := s.queries.TenantGet(ctx, s.conn(ctx), tenantID(ctx))
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &TenantOutput{Body: tenantFrom(t)}, nil
}
