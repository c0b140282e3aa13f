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

// License is a licence as the API shows it.
type License struct {
	ID                         uuid.UUID  `json:"id"`
	Key                        string     `json:"key" doc:"The signed licence key the customer uses (see the README for its format)."`
	Status                     string     `json:"status" enum:"active,suspended,revoked,expired"`
	PolicyID                   uuid.UUID  `json:"policy_id"`
	CustomerID                 uuid.UUID  `json:"customer_id"`
	IssuedAt                   time.Time  `json:"issued_at"`
	ExpiresAt                  *time.Time `json:"expires_at,omitempty" doc:"Absent: the licence does not expire."`
	SubscriptionExpirationDate *time.Time `json:"subscription_expiration_date,omitempty" doc:"Set when a subscription ended into a perpetual licence: releases after it are not covered."`
	Message                    *string    `json:"message,omitempty"`
	Entitlements               []string   `json:"entitlements" example:"[\"R_Performance\"]"`
	MaxMachines                *int32     `json:"max_machines,omitempty" doc:"Absent: unlimited."`
	Origin                     string     `json:"origin" enum:"issued,external"`
	ExternalLicenseID          *string    `json:"external_license_id,omitempty"`
}

func licenseFrom(l sql.License) License {
	return License{
		ID: l.ID, Key: l.Key, Status: string(l.Status), PolicyID: l.PolicyID, CustomerID: l.CustomerID,
		IssuedAt: l.IssuedAt, ExpiresAt: l.ExpiresAt, SubscriptionExpirationDate: l.SubscriptionExpirationDate,
		Message: l.Message, Entitlements: l.Entitlements, MaxMachines: l.MaxMachines, Origin: string(l.Origin),
		ExternalLicenseID: l.ExternalLicenseID,
	}
}

// LicenseOutput is one licence.
type LicenseOutput struct {
	Body License
}

// LicenseIssueInput says what licence to issue.
type LicenseIssueInput struct {
	Body struct {
		PolicyID   uuid.UUID   `json:"policy_id"`
		CustomerID uuid.UUID   `json:"customer_id"`
		AddonIDs   []uuid.UUID `json:"addon_ids,omitempty" maxItems:"50" doc:"Add-ons; each must apply to the policy."`
		ExpiresAt  *time.Time  `json:"expires_at,omitempty" doc:"Overrides the computed expiry (none for one-off policies, one period plus grace for recurring ones)."`
	}
}

// LicenseIDInput names one licence.
type LicenseIDInput struct {
	ID uuid.UUID `path:"id"`
}

// LicenseListInput filters a list of licences.
type LicenseListInput struct {
	PageParams
	Status     string `query:"status" enum:"active,suspended,revoked,expired" doc:"Only licences with this status."`
	PolicyID   string `query:"policy_id" format:"uuid" doc:"Only licences of this policy."`
	CustomerID string `query:"customer_id" format:"uuid" doc:"Only licences of this customer."`
}

// LicenseListOutput is a page of licences.
type LicenseListOutput struct {
	Body Page[License]
}

func (s *Server) registerLicenses() {
	huma.Register(s.api, adminOperation(licenseIssueOperation), s.licenseIssue)
	huma.Register(s.api, adminOperation(licenseGetOperation), s.licenseGet)
	huma.Register(s.api, adminOperation(licenseListOperation), s.licenseList)
	huma.Register(s.api, adminOperation(licenseSuspendOperation), s.licenseSuspend)
	huma.Register(s.api, adminOperation(licenseReinstateOperation), s.licenseReinstate)
	huma.Register(s.api, adminOperation(licenseRevokeOperation), s.licenseRevoke)
}

var licenseTags = []string{"Licences"}

var licenseIssueOperation = huma.Operation{
	OperationID:   "license-issue",
	Method:        http.MethodPost,
	Path:          "/v1/admin/licenses",
	Summary:       "Issue a licence",
	Description:   "Issues a licence (e.g. a free or comp licence) of a policy to a customer, with optional add-ons and expiry.",
	Tags:          licenseTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusUnprocessableEntity},
}

// licenseIssue issues a licence of one of the caller's policies to one of its customers.
func (s *Server) licenseIssue(ctx context.Context, in *LicenseIssueInput) (*LicenseOutput, error) {
	l, err := core.LicenseIssue(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.LicenseIssueParams{
		TenantID: tenantID(ctx), PolicyID: in.Body.PolicyID, CustomerID: in.Body.CustomerID, AddonIDs: in.Body.AddonIDs, ExpiresAt: in.Body.ExpiresAt,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &LicenseOutput{Body: licenseFrom(l)}, nil
}

var licenseGetOperation = huma.Operation{
	OperationID: "license-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/licenses/{id}",
	Summary:     "Read a licence",
	Description: "404 when the tenant has no such licence.",
	Tags:        licenseTags,
	Errors:      []int{http.StatusNotFound},
}

// licenseGet reads one licence.
func (s *Server) licenseGet(ctx context.Context, in *LicenseIDInput) (*LicenseOutput, error) {
	l, err := s.license(ctx, in.ID)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &LicenseOutput{Body: licenseFrom(l)}, nil
}

var licenseListOperation = huma.Operation{
	OperationID: "license-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/licenses",
	Summary:     "List licences, newest first",
	Tags:        licenseTags,
}

// licenseList reads a page of licences, filtered by status, policy and customer.
func (s *Server) licenseList(ctx context.Context, in *LicenseListInput) (*LicenseListOutput, error) {
	after, fetch := in.cursor()
	params := sql.LicenseListParams{TenantID: tenantID(ctx), After: after, RowLimit: fetch,
		PolicyID: optionalUUID(in.PolicyID), CustomerID: optionalUUID(in.CustomerID)}
	if in.Status != "" {
		status := sql.LicenseStatus(in.Status)
		params.Status = &status
	}
	rows, err := s.queries.LicenseList(ctx, s.conn(ctx), params)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &LicenseListOutput{Body: page(rows, fetch, licenseFrom, func(l sql.License) uuid.UUID { return l.ID })}, nil
}

var (
	licenseSuspendOperation   = licenseTransitionOperation(core.LicenseSuspend)
	licenseReinstateOperation = licenseTransitionOperation(core.LicenseReinstate)
	licenseRevokeOperation    = licenseTransitionOperation(core.LicenseRevoke)
)

// licenseTransitionOperation is the operation of an admin action on a licence, described
// from its move in core.LicenseTransitions.
func licenseTransitionOperation(action core.LicenseAction) huma.Operation {
	t := core.LicenseTransitions[action]
	return huma.Operation{
		OperationID: "license-" + string(action),
		Method:      http.MethodPost,
		Path:        "/v1/admin/licenses/{id}/" + string(action),
		Summary:     "Set a licence " + string(t.To),
		Description: "Allowed from: " + joinStatuses(t.From) + ". Emits " + t.Data(core.LicenseFields{}).EventType() + ". Any other status is 409.",
		Tags:        licenseTags,
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	}
}

// licenseSuspend suspends an active licence.
func (s *Server) licenseSuspend(ctx context.Context, in *LicenseIDInput) (*LicenseOutput, error) {
	return s.licenseTransition(ctx, in.ID, core.LicenseSuspend)
}

// licenseReinstate reinstates a suspended licence.
func (s *Server) licenseReinstate(ctx context.Context, in *LicenseIDInput) (*LicenseOutput, error) {
	return s.licenseTransition(ctx, in.ID, core.LicenseReinstate)
}

// licenseRevoke revokes a licence.
func (s *Server) licenseRevoke(ctx context.Context, in *LicenseIDInput) (*LicenseOutput, error) {
	return s.licenseTransition(ctx, in.ID, core.LicenseRevoke)
}

// licenseTransition applies an admin action to one of the caller's licences.
func (s *Server) licenseTransition(ctx context.Context, id uuid.UUID, action core.LicenseAction) (*LicenseOutput, error) {
	l, err := core.LicenseTransition(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.LicenseTransitionParams{TenantID: tenantID(ctx), ID: id, Action: action})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &LicenseOutput{Body: licenseFrom(l)}, nil
}

// license reads one of the caller's licences; an unknown one is ErrNotFound.
func (s *Server) license(ctx context.Context, id uuid.UUID) (sql.License, error) {
	l, err := s.queries.LicenseGet(ctx, s.conn(ctx), sql.LicenseGetParams{TenantID: tenantID(ctx), ID: id})
	return l, notFound(err, "licence", id)
}

// joinStatuses lists statuses, comma-separated.
func joinStatuses(statuses []sql.LicenseStatus) string {
	out := ""
	for i, st := range statuses {
		if i > 0 {
			out += ", "
		}
		out += string(st)
	}
	return out
}

// optionalUUID parses an optional uuid query parameter that Huma has already validated.
func optionalUUID(s string) *uuid.UUID {
	id, err := uuid.Parse(s)
	if err != nil { //lint:swallow Huma validated the format: only the empty string (no filter) fails here
		return nil
	}
	return &id
}
