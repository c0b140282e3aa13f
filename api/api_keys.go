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

// APIKey is an admin API key as listed: its visible prefix, never the key.
type APIKey struct {
	ID        uuid.UUID  `json:"id"`
	Name      string     `json:"name" example:"deploy bot"`
	Prefix    string     `json:"prefix" example:"tsk_3f9a1c0b7d2e" doc:"The visible start of the key, to recognise it (tsk_test_... for a sandbox tenant's key)."`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

func apiKeyFrom(k sql.APIKey) APIKey {
	return APIKey{ID: k.ID, Name: k.Name, Prefix: k.Prefix, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}

// APIKeyCreateInput names a new key.
type APIKeyCreateInput struct {
	Body struct {
		Name string `json:"name" minLength:"1" maxLength:"200" doc:"What the key is for." example:"deploy bot"`
	}
}

// APIKeyCreateOutput is a new key, with the key itself, shown this once.
type APIKeyCreateOutput struct {
	Body struct {
		APIKey
		Key string `json:"key" doc:"The key. It is not stored and cannot be shown again."`
	}
}

// APIKeyOutput is one key.
type APIKeyOutput struct {
	Body APIKey
}

// APIKeyListOutput is a page of keys.
type APIKeyListOutput struct {
	Body Page[APIKey]
}

// APIKeyIDInput names one key.
type APIKeyIDInput struct {
	ID uuid.UUID `path:"id"`
}

func (s *Server) registerAPIKeys() {
	huma.Register(s.api, adminOperation(apiKeyCreateOperation), s.apiKeyCreate)
	huma.Register(s.api, adminOperation(apiKeyListOperation), s.apiKeyList)
	huma.Register(s.api, adminOperation(apiKeyRevokeOperation), s.apiKeyRevoke)
}

var apiKeyTags = []string{"API keys"}

var apiKeyCreateOperation = huma.Operation{
	OperationID:   "api-key-create",
	Method:        http.MethodPost,
	Path:          "/v1/admin/api-keys",
	Summary:       "Create an admin API key",
	Description:   "The response carries the key itself; it is shown once.",
	Tags:          apiKeyTags,
	DefaultStatus: http.StatusCreated,
}

// apiKeyCreate issues an admin key of the caller's tenant and answers with the key itself.
func (s *Server) apiKeyCreate(ctx context.Context, in *APIKeyCreateInput) (*APIKeyCreateOutput, error) {
	key, secret, err := core.APIKeyCreate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.APIKeyCreateParams{TenantID: tenantID(ctx), Name: in.Body.Name})
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &APIKeyCreateOutput{}
	out.Body.APIKey = apiKeyFrom(key)
	out.Body.Key = secret
	return out, nil
}

var apiKeyListOperation = huma.Operation{
	OperationID: "api-key-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/api-keys",
	Summary:     "List the tenant's admin API keys, oldest first",
	Tags:        apiKeyTags,
}

// apiKeyList reads a page of the caller's tenant's keys, revoked ones included.
func (s *Server) apiKeyList(ctx context.Context, in *PageParams) (*APIKeyListOutput, error) {
	after, fetch := in.cursor()
	keys, err := s.queries.APIKeyList(ctx, s.conn(ctx), sql.APIKeyListParams{TenantID: tenantID(ctx), After: after, RowLimit: fetch})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &APIKeyListOutput{Body: page(keys, fetch, apiKeyFrom, func(k sql.APIKey) uuid.UUID { return k.ID })}, nil
}

var apiKeyRevokeOperation = huma.Operation{
	OperationID: "api-key-revoke",
	Method:      http.MethodDelete,
	Path:        "/v1/admin/api-keys/{id}",
	Summary:     "Revoke an admin API key",
	Description: "The key stops authenticating at once. Revoking a revoked key is 409.",
	Tags:        apiKeyTags,
	Errors:      []int{http.StatusNotFound, http.StatusConflict},
}

// apiKeyRevoke revokes one of the caller's tenant's keys.
func (s *Server) apiKeyRevoke(ctx context.Context, in *APIKeyIDInput) (*APIKeyOutput, error) {
	key, err := core.APIKeyRevoke(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.APIKeyRevokeParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &APIKeyOutput{Body: apiKeyFrom(key)}, nil
}
