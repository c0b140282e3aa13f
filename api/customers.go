package api

import (
	"context"
	"fmt"
	"net/http"
	"net/mail"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// Customer is a buyer of a tenant.
type Customer struct {
	ID         uuid.UUID  `json:"id"`
	Email      string     `json:"email" example:"ada@example.com"`
	ExternalID *string    `json:"external_id" example:"user-4711" doc:"The tenant's own id for the customer; null when none."`
	IsActive   bool       `json:"is_active" example:"true"`
	IsVerified bool       `json:"is_verified" example:"false"`
	InviteCode string     `json:"invite_code" example:"K7QW2M9XPA" doc:"The code the customer gives to people they refer."`
	ReferredBy *uuid.UUID `json:"referred_by" nullable:"true" doc:"The customer who referred this one; null when none."`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

func customerFrom(c sql.Customer) Customer {
	return Customer{
		ID: c.ID, Email: c.Email, ExternalID: c.ExternalID, IsActive: c.IsActive, IsVerified: c.IsVerified,
		InviteCode: c.InviteCode, ReferredBy: c.ReferredBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
}

// CustomerCreateInput is a new customer.
type CustomerCreateInput struct {
	Body struct {
		Email      string     `json:"email" maxLength:"320" example:"ada@example.com" doc:"A bare address (local@domain). Unique among the tenant's customers, case-insensitively."`
		ExternalID *string    `json:"external_id,omitempty" minLength:"1" maxLength:"200" example:"user-4711" doc:"The tenant's own id for the customer; unique among the tenant's customers."`
		IsActive   *bool      `json:"is_active,omitempty" example:"true" doc:"Default true."`
		IsVerified bool       `json:"is_verified,omitempty" example:"false" doc:"Default false."`
		InviteCode *string    `json:"invite_code,omitempty" pattern:"^[A-Za-z0-9_-]{4,64}$" example:"ADA-2026" doc:"4 to 64 letters, digits, '_' or '-'. Unique among the tenant's customers; default a random 10-character code."`
		ReferredBy *uuid.UUID `json:"referred_by,omitempty" doc:"Another customer of the tenant who referred this one."`
	}
}

// CustomerUpdateInput changes a customer; fields left out keep their value.
type CustomerUpdateInput struct {
	ID   uuid.UUID `path:"id"`
	Body struct {
		Email      *string          `json:"email,omitempty" maxLength:"320" example:"ada@example.org"`
		ExternalID Nullable[string] `json:"external_id,omitzero" nullable:"true" minLength:"1" maxLength:"200" example:"user-4711" doc:"null clears it."`
		IsActive   *bool            `json:"is_active,omitempty" example:"false"`
		IsVerified *bool            `json:"is_verified,omitempty" example:"true"`
		ReferredBy *uuid.UUID       `json:"referred_by,omitempty" doc:"Only while the customer has no referrer: once set it cannot change."`
	}
}

// CustomerListInput pages through customers.
type CustomerListInput struct {
	PageParams
	Email      string `query:"email" maxLength:"320" example:"ada@example.com" doc:"Only the customer with this email (case-insensitive)."`
	ExternalID string `query:"external_id" maxLength:"200" doc:"Only the customer with this external id."`
	ReferredBy string `query:"referred_by" format:"uuid" doc:"Only the customers this customer referred."`
}

// CustomerIDInput names one customer.
type CustomerIDInput struct {
	ID uuid.UUID `path:"id"`
}

// CustomerOutput is one customer.
type CustomerOutput struct {
	Body Customer
}

// CustomerListOutput is a page of customers.
type CustomerListOutput struct {
	Body Page[Customer]
}

// customerConstraints words the customers table's constraint violations.
var customerConstraints = map[string]string{
	"customers_email_key":       "a customer with this email already exists (emails compare case-insensitively)",
	"customers_external_id_key": "a customer with this external_id already exists",
	"customers_invite_code_key": "a customer with this invite_code already exists",
	"customers_email_check":     "email must be a bare address (local@domain) of at most 320 characters",
}

func (s *Server) registerCustomers() {
	huma.Register(s.api, adminOperation(customerCreateOperation), s.customerCreate)
	huma.Register(s.api, adminOperation(customerGetOperation), s.customerGet)
	huma.Register(s.api, adminOperation(customerListOperation), s.customerList)
	huma.Register(s.api, adminOperation(customerUpdateOperation), s.customerUpdate)

	s.registerCustomerEvents()
	s.registerCustomerBalances()
}

var customerTags = []string{"Customers"}

var customerCreateOperation = huma.Operation{
	OperationID: "customer-create",
	Method:      http.MethodPost,
	Path:        "/v1/admin/customers",
	Summary:     "Create a customer",
	Description: "A taken email (case-insensitively), external_id or invite_code is 409. referred_by must be " +
		"another customer of the tenant (422 otherwise).",
	Tags:          customerTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusConflict},
}

// customerCreate creates a customer of the caller's tenant.
func (s *Server) customerCreate(ctx context.Context, in *CustomerCreateInput) (*CustomerOutput, error) {
	b := in.Body
	if err := validEmail("body.email", b.Email); err != nil {
		return nil, err
	}
	customer, err := core.CustomerCreate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.CustomerCreateParams{
		TenantID: tenantID(ctx), Email: b.Email, ExternalID: b.ExternalID, IsActive: b.IsActive == nil || *b.IsActive,
		IsVerified: b.IsVerified, InviteCode: b.InviteCode, ReferredBy: b.ReferredBy,
		Details: func(c sql.Customer) any { return customerFrom(c) },
	})
	if err != nil {
		return nil, problem(ctx, constraintError(err, customerConstraints))
	}
	return &CustomerOutput{Body: customerFrom(customer)}, nil
}

var customerGetOperation = huma.Operation{
	OperationID: "customer-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/customers/{id}",
	Summary:     "Read a customer",
	Description: "To find a customer by email or external id, list with the email or external_id filter.",
	Tags:        customerTags,
	Errors:      []int{http.StatusNotFound},
}

// customerGet reads one customer.
func (s *Server) customerGet(ctx context.Context, in *CustomerIDInput) (*CustomerOutput, error) {
	customer, err := s.customer(ctx, in.ID)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &CustomerOutput{Body: customerFrom(customer)}, nil
}

var customerListOperation = huma.Operation{
	OperationID: "customer-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/customers",
	Summary:     "List customers, oldest first",
	Description: "Filters combine: email (case-insensitive, at most one match), external_id (at most one " +
		"match), referred_by (the customers one customer referred).",
	Tags: customerTags,
}

// customerList reads a page of the customers the filters select.
func (s *Server) customerList(ctx context.Context, in *CustomerListInput) (*CustomerListOutput, error) {
	after, fetch := in.cursor()
	params := sql.CustomerListParams{TenantID: tenantID(ctx), After: after, RowLimit: fetch}
	if in.Email != "" {
		params.Email = &in.Email
	}
	if in.ExternalID != "" {
		params.ExternalID = &in.ExternalID
	}
	if id, err := uuid.Parse(in.ReferredBy); err == nil {
		params.ReferredBy = &id
	}
	rows, err := s.queries.CustomerList(ctx, s.conn(ctx), params)
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("list customers: %w", err))
	}
	return &CustomerListOutput{Body: page(rows, fetch, customerFrom, func(c sql.Customer) uuid.UUID { return c.ID })}, nil
}

var customerUpdateOperation = huma.Operation{
	OperationID: "customer-update",
	Method:      http.MethodPatch,
	Path:        "/v1/admin/customers/{id}",
	Summary:     "Update a customer",
	Description: "Fields left out keep their value; external_id is cleared with null. referred_by can be set " +
		"only while the customer has none (409 once set to another customer); it must be another customer of " +
		"the tenant and must not close a referral cycle (422). Customers are never deleted, because licences " +
		"reference them: deactivate them with is_active=false.",
	Tags:   customerTags,
	Errors: []int{http.StatusNotFound, http.StatusConflict},
}

// customerUpdate changes the fields of a customer that the request sends.
func (s *Server) customerUpdate(ctx context.Context, in *CustomerUpdateInput) (*CustomerOutput, error) {
	b := in.Body
	if b.Email != nil {
		if err := validEmail("body.email", *b.Email); err != nil {
			return nil, err
		}
	}
	customer, err := core.CustomerUpdate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.CustomerUpdateParams{
		TenantID: tenantID(ctx), ID: in.ID, Email: b.Email, SetExternalID: b.ExternalID.Sent, ExternalID: b.ExternalID.Ptr(),
		IsActive: b.IsActive, IsVerified: b.IsVerified, ReferredBy: b.ReferredBy, Sent: b,
	})
	if err != nil {
		return nil, problem(ctx, constraintError(err, customerConstraints))
	}
	return &CustomerOutput{Body: customerFrom(customer)}, nil
}

// customer reads one of the caller's customers; an unknown one is ErrNotFound.
func (s *Server) customer(ctx context.Context, id uuid.UUID) (sql.Customer, error) {
	customer, err := s.queries.CustomerGet(ctx, s.conn(ctx), sql.CustomerGetParams{TenantID: tenantID(ctx), ID: id})
	return customer, notFound(err, "customer", id)
}

// validEmail accepts a bare address, local@domain, without a display name or spaces.
func validEmail(location, email string) error {
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email {
		return invalid(location, fmt.Sprintf("email %q is not a valid address: give a bare local@domain", email), email)
	}
	return nil
}

// Balance is a customer's custodial balance in one asset.
type Balance struct {
	Asset  string `json:"asset" enum:"credits,reward_sats" example:"credits" doc:"credits: store credit bought or granted; reward_sats: referral rewards earned, in sats."`
	Amount int64  `json:"amount" example:"2500" doc:"Never negative; minor units of the asset."`
}

// CustomerBalanceListOutput is a customer's balance in every asset.
type CustomerBalanceListOutput struct {
	Body struct {
		Items []Balance `json:"items" nullable:"false" doc:"One entry per asset, zero where nothing was ever credited."`
	}
}

func (s *Server) registerCustomerBalances() {
	huma.Register(s.api, adminOperation(customerBalanceListOperation), s.customerBalanceList)
}

var customerBalanceListOperation = huma.Operation{
	OperationID: "customer-balance-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/customers/{id}/balances",
	Summary:     "Read a customer's custodial balances",
	Description: "Every asset is listed, with 0 where the customer has none. Read-only: payments move balances.",
	Tags:        customerTags,
	Errors:      []int{http.StatusNotFound},
}

// customerBalanceList reads a customer's balance in every asset.
func (s *Server) customerBalanceList(ctx context.Context, in *CustomerIDInput) (*CustomerBalanceListOutput, error) {
	rows, err := s.queries.CustomerBalanceList(ctx, s.conn(ctx), sql.CustomerBalanceListParams{TenantID: tenantID(ctx), CustomerID: in.ID})
	switch {
	case err != nil:
		return nil, problem(ctx, fmt.Errorf("read balances of customer %s: %w", in.ID, err))
	case len(rows) == 0:
		return nil, problem(ctx, fmt.Errorf("%w: customer %s", core.ErrNotFound, in.ID))
	}
	out := &CustomerBalanceListOutput{}
	out.Body.Items = make([]Balance, len(rows))
	for i, r := range rows {
		out.Body.Items[i] = Balance{Asset: string(r.Asset), Amount: r.Amount}
	}
	return out, nil
}
