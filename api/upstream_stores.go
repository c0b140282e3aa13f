package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

// UpstreamStore is an external store the tenant sells through. Its API key is never returned.
type UpstreamStore struct {
	ID           uuid.UUID `json:"id"`
	Kind         string    `json:"kind" enum:"jinxxy"`
	Name         string    `json:"name" example:"Jinxxy"`
	BaseURL      string    `json:"base_url" example:"https://api.creators.jinxxy.com/v1"`
	PolicyID     uuid.UUID `json:"policy_id" doc:"The policy imported licences get."`
	Enabled      bool      `json:"enabled" doc:"Disabled stores' licences are not checked."`
	RevokeOnGone bool      `json:"revoke_on_gone" doc:"Also revoke a licence the store no longer knows (license.upstream_revoked is always emitted)."`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

func upstreamStoreFrom(s sql.UpstreamStore) UpstreamStore {
	return UpstreamStore{ID: s.ID, Kind: string(s.Kind), Name: s.Name, BaseURL: s.BaseURL, PolicyID: s.PolicyID,
		Enabled: s.Enabled, RevokeOnGone: s.RevokeOnGone, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

// UpstreamStoreCreateInput connects a store.
type UpstreamStoreCreateInput struct {
	Body struct {
		Kind         string    `json:"kind" enum:"jinxxy" doc:"jinxxy: GET {base_url}/licenses/{id} with x-api-key; 200 exists, 404 or 403 gone."`
		Name         string    `json:"name" minLength:"1" maxLength:"200" example:"Jinxxy"`
		BaseURL      string    `json:"base_url" maxLength:"2000" example:"https://api.creators.jinxxy.com/v1" doc:"Absolute http(s) URL."`
		APIKey       string    `json:"api_key" minLength:"1" maxLength:"500" doc:"Sealed at rest; never returned."`
		PolicyID     uuid.UUID `json:"policy_id" doc:"A live policy of the tenant, given to imported licences."`
		Enabled      *bool     `json:"enabled,omitempty" doc:"Default true."`
		RevokeOnGone bool      `json:"revoke_on_gone,omitempty" doc:"Default false."`
	}
}

// UpstreamStoreUpdateInput changes a store; fields left out keep their value.
type UpstreamStoreUpdateInput struct {
	ID   uuid.UUID `path:"id"`
	Body struct {
		Name         *string `json:"name,omitempty" minLength:"1" maxLength:"200"`
		BaseURL      *string `json:"base_url,omitempty" maxLength:"2000"`
		APIKey       *string `json:"api_key,omitempty" minLength:"1" maxLength:"500" doc:"Replaces the key."`
		Enabled      *bool   `json:"enabled,omitempty"`
		RevokeOnGone *bool   `json:"revoke_on_gone,omitempty"`
	}
}

// UpstreamStoreIDInput names one store.
type UpstreamStoreIDInput struct {
	ID uuid.UUID `path:"id"`
}

// UpstreamStoreOutput is one store.
type UpstreamStoreOutput struct {
	Body UpstreamStore
}

// UpstreamStoreListOutput is a page of stores.
type UpstreamStoreListOutput struct {
	Body Page[UpstreamStore]
}

// UpstreamImportInput is a bulk import of a store's licences.
type UpstreamImportInput struct {
	ID          uuid.UUID `path:"id"`
	ContentType string    `header:"Content-Type"`
	RawBody     []byte
}

// UpstreamImportRow is one row of an import, as the document publishes it (upstream.Row,
// which parses it, under a name that says what it is).
type UpstreamImportRow upstream.Row

// UpstreamImportOutput counts what an import did.
type UpstreamImportOutput struct {
	Body upstream.ImportResult
}

// maxImportBytes bounds one import request; the CLI imports larger files.
const maxImportBytes = 32 << 20

func (s *Server) registerUpstreamStores() {
	huma.Register(s.api, adminOperation(upstreamStoreCreateOperation), s.upstreamStoreCreate)
	huma.Register(s.api, adminOperation(upstreamStoreGetOperation), s.upstreamStoreGet)
	huma.Register(s.api, adminOperation(upstreamStoreListOperation), s.upstreamStoreList)
	huma.Register(s.api, adminOperation(upstreamStoreUpdateOperation), s.upstreamStoreUpdate)
	huma.Register(s.api, adminOperation(upstreamStoreImportOperation), s.upstreamStoreImport)
	s.describeImportBody()
}

var upstreamStoreTags = []string{"Upstream stores"}

var upstreamStoreCreateOperation = huma.Operation{
	OperationID:   "upstream-store-create",
	Method:        http.MethodPost,
	Path:          "/v1/admin/upstream-stores",
	Summary:       "Connect an upstream store",
	Description:   "Imported licences of the store are re-checked in the background (see the revocation queue). The API key is sealed at rest and never returned.",
	Tags:          upstreamStoreTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusUnprocessableEntity},
}

// upstreamStoreCreate connects an upstream store of the caller's tenant.
func (s *Server) upstreamStoreCreate(ctx context.Context, in *UpstreamStoreCreateInput) (*UpstreamStoreOutput, error) {
	b := in.Body
	store, err := upstream.StoreCreate(ctx, tx(ctx), s.step(ctx, actor(ctx)), upstream.StoreCreateParams{
		TenantID: tenantID(ctx), Kind: b.Kind, Name: b.Name, BaseURL: b.BaseURL, APIKey: b.APIKey, PolicyID: b.PolicyID,
		Enabled: b.Enabled == nil || *b.Enabled, RevokeOnGone: b.RevokeOnGone,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &UpstreamStoreOutput{Body: upstreamStoreFrom(store)}, nil
}

var upstreamStoreGetOperation = huma.Operation{
	OperationID: "upstream-store-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/upstream-stores/{id}",
	Summary:     "Read an upstream store",
	Description: "Its API key is never returned. 404 when the tenant has no such store.",
	Tags:        upstreamStoreTags,
	Errors:      []int{http.StatusNotFound},
}

// upstreamStoreGet reads one of the tenant's upstream stores, without its API key.
func (s *Server) upstreamStoreGet(ctx context.Context, in *UpstreamStoreIDInput) (*UpstreamStoreOutput, error) {
	store, err := s.queries.UpstreamStoreGet(ctx, s.conn(ctx), sql.UpstreamStoreGetParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, notFound(err, "upstream store", in.ID))
	}
	return &UpstreamStoreOutput{Body: upstreamStoreFrom(store)}, nil
}

var upstreamStoreListOperation = huma.Operation{
	OperationID: "upstream-store-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/upstream-stores",
	Summary:     "List upstream stores, oldest first",
	Tags:        upstreamStoreTags,
}

// upstreamStoreList pages through the tenant's upstream stores.
func (s *Server) upstreamStoreList(ctx context.Context, in *PageParams) (*UpstreamStoreListOutput, error) {
	after, fetch := in.cursor()
	rows, err := s.queries.UpstreamStoreList(ctx, s.conn(ctx), sql.UpstreamStoreListParams{TenantID: tenantID(ctx), After: after, RowLimit: fetch})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("list upstream stores: %w", err))
	}
	return &UpstreamStoreListOutput{Body: page(rows, fetch, upstreamStoreFrom, func(s sql.UpstreamStore) uuid.UUID { return s.ID })}, nil
}

var upstreamStoreUpdateOperation = huma.Operation{
	OperationID: "upstream-store-update",
	Method:      http.MethodPatch,
	Path:        "/v1/admin/upstream-stores/{id}",
	Summary:     "Update an upstream store",
	Description: "Fields left out keep their value. Disable a store to stop checking its licences.",
	Tags:        upstreamStoreTags,
	Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity},
}

// upstreamStoreUpdate changes the given fields of one of the tenant's upstream stores.
func (s *Server) upstreamStoreUpdate(ctx context.Context, in *UpstreamStoreUpdateInput) (*UpstreamStoreOutput, error) {
	b := in.Body
	store, err := upstream.StoreUpdate(ctx, tx(ctx), s.step(ctx, actor(ctx)), upstream.StoreUpdateParams{
		TenantID: tenantID(ctx), ID: in.ID, Name: b.Name, BaseURL: b.BaseURL, APIKey: b.APIKey, Enabled: b.Enabled, RevokeOnGone: b.RevokeOnGone,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &UpstreamStoreOutput{Body: upstreamStoreFrom(store)}, nil
}

var upstreamStoreImportOperation = huma.Operation{
	OperationID: "upstream-store-import",
	Method:      http.MethodPost,
	Path:        "/v1/admin/upstream-stores/{id}/imports",
	Summary:     "Import licences from an upstream store",
	Description: "The body is NDJSON (one UpstreamImportRow per line) or a JSON array of UpstreamImportRow. " +
		"Every row is validated first; any invalid row makes the whole import 422 with one error per row (location `body[i].field`, i from 0) " +
		"and nothing is written. Re-importing a licence (same external_license_id) updates it: its owner, acquisition time and new activations; " +
		"it never duplicates it. Each owner becomes one customer (the one with owner_email when given). Up to 32 MiB per request: " +
		"`tessera import licenses` imports larger files.",
	Tags:         upstreamStoreTags,
	MaxBodyBytes: maxImportBytes,
	Errors:       []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
}

// upstreamStoreImport imports the rows of its body into one of the tenant's upstream stores.
func (s *Server) upstreamStoreImport(ctx context.Context, in *UpstreamImportInput) (*UpstreamImportOutput, error) {
	result, err := s.importRows(ctx, in.ID, strings.NewReader(string(in.RawBody)))
	if err != nil {
		return nil, err
	}
	return &UpstreamImportOutput{Body: result}, nil
}

// describeImportBody documents upstream-store-import's body, which is read raw, in both
// accepted forms: NDJSON text and an array of typed rows, which OpenAPI 3.0 and 3.1 both
// express (Huma would publish a binary string).
func (s *Server) describeImportBody() {
	op := s.api.OpenAPI().Paths[upstreamStoreImportOperation.Path].Post
	if op == nil || op.RequestBody == nil {
		return
	}
	row := s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[UpstreamImportRow](), true, "")
	op.RequestBody.Required = true
	op.RequestBody.Content = map[string]*huma.MediaType{
		"application/x-ndjson": {Schema: &huma.Schema{Type: "string",
			Description: "One UpstreamImportRow object per line; blank lines are skipped."},
			Example: `{"external_license_id":"JX-8842-1177","owner":"user_51a2","acquired_at":"2026-01-15T10:00:00Z"}` + "\n"},
		"application/json": {Schema: &huma.Schema{Type: "array", Items: row, MinItems: ptr(1)}},
	}
}

// importRows parses and imports rows into one of the caller's stores, in the request's
// transaction; row errors become one 422 with an error per row.
func (s *Server) importRows(ctx context.Context, storeID uuid.UUID, body io.Reader) (upstream.ImportResult, error) {
	st := s.step(ctx, actor(ctx))
	rows, err := upstream.ParseRows(body, st.Now)
	if err != nil {
		return upstream.ImportResult{}, rowProblem(ctx, err)
	}
	im, err := upstream.NewImporter(ctx, tx(ctx), st, upstream.ImporterParams{TenantID: tenantID(ctx), StoreID: storeID})
	if err != nil {
		return upstream.ImportResult{}, problem(ctx, err)
	}
	for i, r := range rows {
		if err := im.Import(ctx, i, r); err != nil {
			return upstream.ImportResult{}, rowProblem(ctx, err)
		}
	}
	if err := im.Finish(ctx); err != nil {
		return upstream.ImportResult{}, problem(ctx, err)
	}
	return im.Result, nil
}

// rowProblem answers row errors with one 422 listing each.
func rowProblem(ctx context.Context, err error) error {
	var rowErrs upstream.RowErrors
	if !errors.As(err, &rowErrs) {
		return problem(ctx, err)
	}
	details := make([]error, len(rowErrs))
	for i, re := range rowErrs {
		details[i] = &huma.ErrorDetail{Location: fmt.Sprintf("body[%d].%s", re.Row, re.Field), Message: re.Message}
	}
	return newProblem(CodeInvalid, fmt.Sprintf("%d rows are invalid; nothing was imported", len(rowErrs)), details...)
}
