package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// Policy is a tier of a product: its price, whether it renews, and what its licences allow.
type Policy struct {
	ID                    uuid.UUID  `json:"id"`
	ProductID             uuid.UUID  `json:"product_id"`
	Slug                  string     `json:"slug" example:"pro-yearly"`
	Name                  string     `json:"name" example:"Pro (yearly)"`
	TierRank              int32      `json:"tier_rank" example:"2" doc:"Higher ranks are higher tiers (upgrades go up)."`
	ListedCurrency        string     `json:"listed_currency" enum:"USD,EUR,SAT" example:"USD"`
	ListedValue           int64      `json:"listed_value" example:"7500" doc:"Price in minor units of listed_currency (cents, or sats)."`
	IsRecurring           bool       `json:"is_recurring" example:"true"`
	PeriodDays            *int32     `json:"period_days" example:"365" doc:"Renewal period of a recurring policy; null for a one-off purchase."`
	GracePeriodDays       int32      `json:"grace_period_days" example:"7" doc:"Days an unpaid renewal keeps the licence valid."`
	MaxMachines           *int32     `json:"max_machines" example:"3" doc:"Active machines per licence; null means unlimited."`
	Entitlements          []string   `json:"entitlements" nullable:"false" example:"[\"export\",\"R_Pro\"]"`
	PerpetualAfterDays    *int32     `json:"perpetual_after_days" example:"1095" doc:"A subscription cancelled at least this many days after it was created leaves a perpetual licence; null never."`
	QualifiesForReferrals bool       `json:"qualifies_for_referrals" example:"true" doc:"A referred customer subscribed to this policy counts for their referrer."`
	CreatedAt             time.Time  `json:"created_at"`
	UpdatedAt             time.Time  `json:"updated_at"`
	ArchivedAt            *time.Time `json:"archived_at,omitempty" doc:"When the policy was archived; absent while it is live."`
}

func policyFrom(p sql.Policy) Policy {
	return Policy{
		ID: p.ID, ProductID: p.ProductID, Slug: p.Slug, Name: p.Name, TierRank: p.TierRank,
		ListedCurrency: string(p.ListedCurrency), ListedValue: p.ListedValue, IsRecurring: p.IsRecurring,
		PeriodDays: p.PeriodDays, GracePeriodDays: p.GracePeriodDays, MaxMachines: p.MaxMachines,
		Entitlements: p.Entitlements, PerpetualAfterDays: p.PerpetualAfterDays, QualifiesForReferrals: p.QualifiesForReferrals,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, ArchivedAt: p.ArchivedAt,
	}
}

// PolicyCreateInput is a new policy.
type PolicyCreateInput struct {
	Body struct {
		ProductID             uuid.UUID     `json:"product_id" doc:"A live product of the tenant."`
		Slug                  string        `json:"slug" pattern:"^[a-z0-9][a-z0-9._-]{0,99}$" example:"pro-yearly" doc:"Lowercase letters, digits, '.', '_' and '-', starting with a letter or digit; at most 100. Unique among the tenant's policies; add-ons name policies by slug. Cannot change."`
		Name                  string        `json:"name" minLength:"1" maxLength:"200" example:"Pro (yearly)"`
		TierRank              int32         `json:"tier_rank,omitempty" minimum:"-1000000" maximum:"1000000" example:"2" doc:"Default 0."`
		ListedCurrency        string        `json:"listed_currency" enum:"USD,EUR,SAT" example:"USD"`
		ListedValue           int64         `json:"listed_value" minimum:"0" maximum:"1000000000000" example:"7500" doc:"Price in minor units of listed_currency (cents, or sats); at most 10^12 (ten billion dollars or euros, 10,000 BTC), so that no conversion, proration or sum overflows."`
		IsRecurring           bool          `json:"is_recurring" example:"true" doc:"Whether the policy renews every period_days. Cannot change."`
		PeriodDays            *int32        `json:"period_days,omitempty" minimum:"1" maximum:"3660" example:"365" doc:"Required when is_recurring, refused otherwise. Cannot change."`
		GracePeriodDays       *int32        `json:"grace_period_days,omitempty" minimum:"0" maximum:"365" example:"7" doc:"Default 7."`
		MaxMachines           *int32        `json:"max_machines,omitempty" minimum:"0" maximum:"1000000" example:"3" doc:"Active machines per licence; left out means unlimited."`
		Entitlements          UniqueStrings `json:"entitlements,omitempty" nullable:"false" maxItems:"100" example:"[\"export\",\"R_Pro\"]" doc:"Feature names, 1 to 100 characters each."`
		PerpetualAfterDays    *int32        `json:"perpetual_after_days,omitempty" minimum:"1" maximum:"36600" example:"1095" doc:"A subscription cancelled at least this many days after it was created leaves a perpetual licence; left out never."`
		QualifiesForReferrals bool          `json:"qualifies_for_referrals,omitempty" example:"true" doc:"Default false."`
	}
}

// PolicyUpdateInput changes a policy; fields left out keep their value, and max_machines
// and perpetual_after_days can be cleared with null.
type PolicyUpdateInput struct {
	ID   uuid.UUID `path:"id"`
	Body struct {
		Name                  *string         `json:"name,omitempty" minLength:"1" maxLength:"200" example:"Pro (yearly)"`
		TierRank              *int32          `json:"tier_rank,omitempty" minimum:"-1000000" maximum:"1000000" example:"3"`
		ListedCurrency        *string         `json:"listed_currency,omitempty" enum:"USD,EUR,SAT" example:"USD"`
		ListedValue           *int64          `json:"listed_value,omitempty" minimum:"0" maximum:"1000000000000" example:"8000" doc:"At most 10^12 minor units."`
		GracePeriodDays       *int32          `json:"grace_period_days,omitempty" minimum:"0" maximum:"365" example:"14"`
		MaxMachines           Nullable[int32] `json:"max_machines,omitzero" nullable:"true" minimum:"0" maximum:"1000000" example:"5" doc:"null means unlimited."`
		Entitlements          UniqueStrings   `json:"entitlements,omitempty" nullable:"false" maxItems:"100" example:"[\"export\",\"R_Pro\",\"R_Batch\"]" doc:"Replaces the list."`
		PerpetualAfterDays    Nullable[int32] `json:"perpetual_after_days,omitzero" nullable:"true" minimum:"1" maximum:"36600" example:"1095" doc:"null means never."`
		QualifiesForReferrals *bool           `json:"qualifies_for_referrals,omitempty" example:"true"`
	}
}

// PolicyListInput pages through policies.
type PolicyListInput struct {
	PageParams
	ProductID       string `query:"product_id" format:"uuid" doc:"Only this product's policies."`
	IncludeArchived bool   `query:"include_archived" doc:"Include archived policies."`
}

// PolicyIDInput names one policy.
type PolicyIDInput struct {
	ID uuid.UUID `path:"id"`
}

// PolicyOutput is one policy.
type PolicyOutput struct {
	Body Policy
}

// PolicyListOutput is a page of policies.
type PolicyListOutput struct {
	Body Page[Policy]
}

// policyConstraints words the policies table's constraint violations.
var policyConstraints = map[string]string{
	"policies_slug_key":     "a policy with this slug already exists",
	"policies_period_check": "period_days is required when is_recurring is true, and refused otherwise",
}

func (s *Server) registerPolicies() {
	huma.Register(s.api, adminOperation(policyCreateOperation), s.policyCreate)
	huma.Register(s.api, adminOperation(policyGetOperation), s.policyGet)
	huma.Register(s.api, adminOperation(policyListOperation), s.policyList)
	huma.Register(s.api, adminOperation(policyUpdateOperation), s.policyUpdate)
	huma.Register(s.api, adminOperation(policyArchiveOperation), s.policyArchive)
}

var policyTags = []string{"Policies"}

var policyCreateOperation = huma.Operation{
	OperationID: "policy-create",
	Method:      http.MethodPost,
	Path:        "/v1/admin/policies",
	Summary:     "Create a policy (tier) of a product",
	Description: "A recurring policy needs period_days; a one-off one must not have it. " +
		"An unknown or archived product is 422; a taken slug is 409.",
	Tags:          policyTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusConflict},
}

// policyCreate creates a policy of one of the caller's live products.
func (s *Server) policyCreate(ctx context.Context, in *PolicyCreateInput) (*PolicyOutput, error) {
	b := in.Body
	switch {
	case b.IsRecurring && b.PeriodDays == nil:
		return nil, invalid("body.period_days", "period_days is required when is_recurring is true", nil)
	case !b.IsRecurring && b.PeriodDays != nil:
		return nil, invalid("body.period_days", "period_days is only for recurring policies (is_recurring is false)", *b.PeriodDays)
	}
	if err := validEntitlements(b.Entitlements.Items); err != nil {
		return nil, err
	}
	policy, err := core.PolicyCreate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.PolicyCreateParams{
		TenantID: tenantID(ctx), ProductID: b.ProductID, Slug: b.Slug, Name: b.Name, TierRank: b.TierRank,
		ListedCurrency: sql.Currency(b.ListedCurrency), ListedValue: b.ListedValue, IsRecurring: b.IsRecurring,
		PeriodDays: b.PeriodDays, GracePeriodDays: b.GracePeriodDays, MaxMachines: b.MaxMachines,
		Entitlements: b.Entitlements.Items, PerpetualAfterDays: b.PerpetualAfterDays,
		QualifiesForReferrals: b.QualifiesForReferrals, Details: func(p sql.Policy) any { return policyFrom(p) },
	})
	if err != nil {
		return nil, problem(ctx, constraintError(err, policyConstraints))
	}
	return &PolicyOutput{Body: policyFrom(policy)}, nil
}

var policyGetOperation = huma.Operation{
	OperationID: "policy-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/policies/{id}",
	Summary:     "Read a policy",
	Description: "Archived policies can still be read.",
	Tags:        policyTags,
	Errors:      []int{http.StatusNotFound},
}

// policyGet reads one policy.
func (s *Server) policyGet(ctx context.Context, in *PolicyIDInput) (*PolicyOutput, error) {
	policy, err := s.policy(ctx, in.ID)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &PolicyOutput{Body: policyFrom(policy)}, nil
}

var policyListOperation = huma.Operation{
	OperationID: "policy-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/policies",
	Summary:     "List policies, oldest first",
	Description: "Optionally of one product. Archived policies are left out unless include_archived=true.",
	Tags:        policyTags,
}

// policyList reads a page of policies, optionally of one product.
func (s *Server) policyList(ctx context.Context, in *PolicyListInput) (*PolicyListOutput, error) {
	after, fetch := in.cursor()
	var productID *uuid.UUID
	if id, err := uuid.Parse(in.ProductID); err == nil {
		productID = &id
	}
	rows, err := s.queries.PolicyList(ctx, s.conn(ctx), sql.PolicyListParams{
		TenantID: tenantID(ctx), ProductID: productID, IncludeArchived: in.IncludeArchived, After: after, RowLimit: fetch,
	})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("list policies: %w", err))
	}
	return &PolicyListOutput{Body: page(rows, fetch, policyFrom, func(p sql.Policy) uuid.UUID { return p.ID })}, nil
}

var policyUpdateOperation = huma.Operation{
	OperationID: "policy-update",
	Method:      http.MethodPatch,
	Path:        "/v1/admin/policies/{id}",
	Summary:     "Update a policy",
	Description: "Fields left out keep their value; max_machines and perpetual_after_days are cleared with null. " +
		"A price change (listed_currency, listed_value) applies to new purchases only: a subscription keeps " +
		"the price and period it was created with. Licences already issued keep their entitlements and " +
		"max_machines until their tier changes. slug, product_id, is_recurring and period_days cannot change " +
		"(create another policy instead); sending them is 422. Turning qualifies_for_referrals on or off enqueues a " +
		"recompute of every referrer's reward.",
	Tags:   policyTags,
	Errors: []int{http.StatusNotFound},
}

// policyUpdate changes the fields of a policy that the request sends.
func (s *Server) policyUpdate(ctx context.Context, in *PolicyUpdateInput) (*PolicyOutput, error) {
	b := in.Body
	if err := validEntitlements(b.Entitlements.Items); err != nil {
		return nil, err
	}
	params := core.PolicyUpdateParams{
		TenantID: tenantID(ctx), ID: in.ID, Name: b.Name, TierRank: b.TierRank, ListedValue: b.ListedValue,
		GracePeriodDays: b.GracePeriodDays, SetMaxMachines: b.MaxMachines.Sent, MaxMachines: b.MaxMachines.Ptr(),
		Entitlements: b.Entitlements.Items, SetPerpetualAfterDays: b.PerpetualAfterDays.Sent,
		PerpetualAfterDays: b.PerpetualAfterDays.Ptr(), QualifiesForReferrals: b.QualifiesForReferrals, Sent: b,
	}
	if b.ListedCurrency != nil {
		currency := sql.Currency(*b.ListedCurrency)
		params.ListedCurrency = &currency
	}
	policy, err := core.PolicyUpdate(ctx, tx(ctx), s.step(ctx, actor(ctx)), params)
	if err != nil {
		return nil, problem(ctx, constraintError(err, policyConstraints))
	}
	return &PolicyOutput{Body: policyFrom(policy)}, nil
}

var policyArchiveOperation = huma.Operation{
	OperationID: "policy-archive",
	Method:      http.MethodPost,
	Path:        "/v1/admin/policies/{id}/archive",
	Summary:     "Archive a policy",
	Description: "An archived policy leaves default lists and is not offered for new purchases; it can still be " +
		"read, and the licences and subscriptions on it are unaffected. Archiving an archived policy is 409.",
	Tags:   policyTags,
	Errors: []int{http.StatusNotFound, http.StatusConflict},
}

// policyArchive archives a policy.
func (s *Server) policyArchive(ctx context.Context, in *PolicyIDInput) (*PolicyOutput, error) {
	policy, err := core.PolicyArchive(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.PolicyArchiveParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &PolicyOutput{Body: policyFrom(policy)}, nil
}

// policy reads one of the caller's policies; an unknown one is ErrNotFound.
func (s *Server) policy(ctx context.Context, id uuid.UUID) (sql.Policy, error) {
	policy, err := s.queries.PolicyGet(ctx, s.conn(ctx), sql.PolicyGetParams{TenantID: tenantID(ctx), ID: id})
	return policy, notFound(err, "policy", id)
}

// validEntitlements checks that every entitlement is 1 to 100 characters.
func validEntitlements(entitlements []string) error {
	for i, e := range entitlements {
		if len(e) == 0 || len(e) > 100 {
			return invalid(fmt.Sprintf("body.entitlements[%d]", i), fmt.Sprintf("entitlements[%d] must be 1 to 100 characters", i), e)
		}
	}
	return nil
}
