package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// Addon is something sold on top of a policy. A perpetual add-on has metadata
// {"perpetual": true, "features": [...], "allowed_ids": [policy slug...]}: it applies only to
// subscriptions whose policy slug is in allowed_ids, adds features to the licence's
// entitlements, and lifts the licence's expiry.
type Addon struct {
	ID         uuid.UUID      `json:"id"`
	Slug       string         `json:"slug" example:"perpetual-elite"`
	Name       string         `json:"name" example:"Perpetual Elite"`
	Metadata   map[string]any `json:"metadata" nullable:"false" example:"{\"perpetual\":true,\"features\":[\"R_Elite\"],\"allowed_ids\":[\"elite-yearly\"]}"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
	ArchivedAt *time.Time     `json:"archived_at,omitempty" doc:"When the add-on was archived; absent while it is live."`
}

func addonFrom(a sql.Addon) (Addon, error) {
	out := Addon{ID: a.ID, Slug: a.Slug, Name: a.Name, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt, ArchivedAt: a.ArchivedAt}
	if err := json.Unmarshal(a.Metadata, &out.Metadata); err != nil {
		return Addon{}, fmt.Errorf("decode metadata of add-on %s: %w", a.ID, err)
	}
	return out, nil
}

// AddonCreateInput is a new add-on.
type AddonCreateInput struct {
	Body struct {
		Slug     string         `json:"slug" pattern:"^[a-z0-9][a-z0-9._-]{0,99}$" example:"perpetual-elite" doc:"Lowercase letters, digits, '.', '_' and '-', starting with a letter or digit; at most 100. Unique among the tenant's add-ons; cannot change."`
		Name     string         `json:"name" minLength:"1" maxLength:"200" example:"Perpetual Elite"`
		Metadata map[string]any `json:"metadata,omitempty" nullable:"false" example:"{\"perpetual\":true,\"features\":[\"R_Elite\"],\"allowed_ids\":[\"elite-yearly\"]}" doc:"A JSON object; default {}. With a perpetual key it must be a perpetual add-on: perpetual (boolean), features (feature names) and allowed_ids (policy slugs), the two arrays required when perpetual is true."`
	}
}

// AddonUpdateInput changes an add-on; fields left out keep their value.
type AddonUpdateInput struct {
	ID   uuid.UUID `path:"id"`
	Body struct {
		Name     *string        `json:"name,omitempty" minLength:"1" maxLength:"200" example:"Perpetual Elite"`
		Metadata map[string]any `json:"metadata,omitempty" nullable:"false" example:"{\"perpetual\":true,\"features\":[\"R_Elite\"],\"allowed_ids\":[\"elite-yearly\",\"elite-monthly\"]}" doc:"Replaces the metadata whole; the rules of addon-create apply."`
	}
}

// AddonListInput pages through add-ons.
type AddonListInput struct {
	PageParams
	IncludeArchived bool `query:"include_archived" doc:"Include archived add-ons."`
}

// AddonIDInput names one add-on.
type AddonIDInput struct {
	ID uuid.UUID `path:"id"`
}

// AddonOutput is one add-on.
type AddonOutput struct {
	Body Addon
}

// AddonListOutput is a page of add-ons.
type AddonListOutput struct {
	Body Page[Addon]
}

// addonConstraints words the addons table's constraint violations.
var addonConstraints = map[string]string{
	"addons_slug_key":        "an add-on with this slug already exists",
	"addons_perpetual_shape": `metadata with "perpetual" must be {"perpetual": boolean, "features": [...], "allowed_ids": [...]}`,
}

func (s *Server) registerAddons() {
	huma.Register(s.api, adminOperation(addonCreateOperation), s.addonCreate)
	huma.Register(s.api, adminOperation(addonGetOperation), s.addonGet)
	huma.Register(s.api, adminOperation(addonListOperation), s.addonList)
	huma.Register(s.api, adminOperation(addonUpdateOperation), s.addonUpdate)
	huma.Register(s.api, adminOperation(addonArchiveOperation), s.addonArchive)
}

var addonTags = []string{"Add-ons"}

var addonCreateOperation = huma.Operation{
	OperationID:   "addon-create",
	Method:        http.MethodPost,
	Path:          "/v1/admin/addons",
	Summary:       "Create an add-on",
	Description:   "Malformed perpetual add-on metadata is 422; a taken slug is 409.",
	Tags:          addonTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusConflict},
}

// addonCreate creates an add-on of the caller's tenant.
func (s *Server) addonCreate(ctx context.Context, in *AddonCreateInput) (*AddonOutput, error) {
	metadata := in.Body.Metadata
	if metadata == nil {
		metadata = map[string]any{}
	}
	encoded, err := addonMetadata(metadata)
	if err != nil {
		return nil, err
	}
	addon, err := core.AddonCreate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.AddonCreateParams{
		TenantID: tenantID(ctx), Slug: in.Body.Slug, Name: in.Body.Name, Metadata: encoded, Sent: in.Body,
	})
	if err != nil {
		return nil, problem(ctx, constraintError(err, addonConstraints))
	}
	return addonOutput(ctx, addon)
}

var addonGetOperation = huma.Operation{
	OperationID: "addon-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/addons/{id}",
	Summary:     "Read an add-on",
	Description: "Archived add-ons can still be read.",
	Tags:        addonTags,
	Errors:      []int{http.StatusNotFound},
}

// addonGet reads one add-on.
func (s *Server) addonGet(ctx context.Context, in *AddonIDInput) (*AddonOutput, error) {
	addon, err := s.addon(ctx, in.ID)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return addonOutput(ctx, addon)
}

var addonListOperation = huma.Operation{
	OperationID: "addon-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/addons",
	Summary:     "List add-ons, oldest first",
	Description: "Archived add-ons are left out unless include_archived=true.",
	Tags:        addonTags,
}

// addonList reads a page of add-ons.
func (s *Server) addonList(ctx context.Context, in *AddonListInput) (*AddonListOutput, error) {
	after, fetch := in.cursor()
	rows, err := s.queries.AddonList(ctx, s.conn(ctx), sql.AddonListParams{
		TenantID: tenantID(ctx), IncludeArchived: in.IncludeArchived, After: after, RowLimit: fetch,
	})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("list add-ons: %w", err))
	}
	addons := make([]Addon, len(rows))
	for i, r := range rows {
		if addons[i], err = addonFrom(r); err != nil {
			return nil, problem(ctx, err)
		}
	}
	return &AddonListOutput{Body: page(addons, fetch, func(a Addon) Addon { return a }, func(a Addon) uuid.UUID { return a.ID })}, nil
}

var addonUpdateOperation = huma.Operation{
	OperationID: "addon-update",
	Method:      http.MethodPatch,
	Path:        "/v1/admin/addons/{id}",
	Summary:     "Update an add-on",
	Description: "Fields left out keep their value; metadata is replaced whole. Licences already issued keep " +
		"their entitlements. The slug cannot change.",
	Tags:   addonTags,
	Errors: []int{http.StatusNotFound},
}

// addonUpdate changes the fields of an add-on that the request sends.
func (s *Server) addonUpdate(ctx context.Context, in *AddonUpdateInput) (*AddonOutput, error) {
	var encoded []byte
	if in.Body.Metadata != nil {
		var err error
		if encoded, err = addonMetadata(in.Body.Metadata); err != nil {
			return nil, err
		}
	}
	addon, err := core.AddonUpdate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.AddonUpdateParams{
		TenantID: tenantID(ctx), ID: in.ID, Name: in.Body.Name, Metadata: encoded, Sent: in.Body,
	})
	if err != nil {
		return nil, problem(ctx, constraintError(err, addonConstraints))
	}
	return addonOutput(ctx, addon)
}

var addonArchiveOperation = huma.Operation{
	OperationID: "addon-archive",
	Method:      http.MethodPost,
	Path:        "/v1/admin/addons/{id}/archive",
	Summary:     "Archive an add-on",
	Description: "An archived add-on leaves default lists and is not offered for new purchases; it can still be " +
		"read, and the licences and subscriptions that have it keep it. Archiving an archived add-on is 409.",
	Tags:   addonTags,
	Errors: []int{http.StatusNotFound, http.StatusConflict},
}

// addonArchive archives an add-on.
func (s *Server) addonArchive(ctx context.Context, in *AddonIDInput) (*AddonOutput, error) {
	addon, err := core.AddonArchive(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.AddonArchiveParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return addonOutput(ctx, addon)
}

// addonOutput answers with an add-on.
func addonOutput(ctx context.Context, addon sql.Addon) (*AddonOutput, error) {
	out, err := addonFrom(addon)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &AddonOutput{Body: out}, nil
}

// addon reads one of the caller's add-ons; an unknown one is ErrNotFound.
func (s *Server) addon(ctx context.Context, id uuid.UUID) (sql.Addon, error) {
	addon, err := s.queries.AddonGet(ctx, s.conn(ctx), sql.AddonGetParams{TenantID: tenantID(ctx), ID: id})
	return addon, notFound(err, "add-on", id)
}

var slugRegexp = regexp.MustCompile(slugPattern)

// addonMetadata validates add-on metadata and encodes it. Metadata without "perpetual" is
// free; with it, it must be a perpetual add-on: "perpetual" a boolean, "features" an array of
// feature names (1 to 100 characters) and "allowed_ids" an array of policy slugs, both
// required when perpetual is true. The database's addons_perpetual_shape check is the last
// line behind this.
func addonMetadata(m map[string]any) ([]byte, error) {
	if p, ok := m["perpetual"]; ok {
		perpetual, isBool := p.(bool)
		if !isBool {
			return nil, invalid("body.metadata.perpetual", "metadata.perpetual must be a boolean", p)
		}
		for _, field := range []struct {
			name  string
			valid func(string) bool
			what  string
		}{
			{"features", func(f string) bool { return f != "" && len(f) <= 100 }, "feature names (1 to 100 characters)"},
			{"allowed_ids", slugRegexp.MatchString, "policy slugs"},
		} {
			v, present := m[field.name]
			if !present {
				if perpetual {
					return nil, invalid("body.metadata."+field.name,
						fmt.Sprintf("metadata.%s is required when metadata.perpetual is true: an array of %s", field.name, field.what), nil)
				}
				continue
			}
			list, isList := v.([]any)
			if !isList {
				return nil, invalid("body.metadata."+field.name, fmt.Sprintf("metadata.%s must be an array of %s", field.name, field.what), v)
			}
			for i, item := range list {
				if s, isString := item.(string); !isString || !field.valid(s) {
					return nil, invalid(fmt.Sprintf("body.metadata.%s[%d]", field.name, i),
						fmt.Sprintf("metadata.%s[%d] must be one of the %s", field.name, i, field.what), item)
				}
			}
		}
	}
	encoded, err := json.Marshal(m)
	if err != nil {
		return nil, invalid("body.metadata", fmt.Sprintf("metadata must be a JSON object: %v", err), nil)
	}
	return encoded, nil
}
