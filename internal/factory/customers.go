package factory

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// Customer creates an active, unverified customer of tenantID with a unique email and
// invite code, no external id and no referrer. opts (CustomerReferredBy, CustomerVerified,
// CustomerEmail, CustomerCreatedAt or any func) change the parameters before the insert.
func Customer(tb testing.TB, db sql.DBTX, tenantID uuid.UUID, opts ...func(*sql.CustomerCreateParams)) sql.Customer {
	tb.Helper()
	p := sql.CustomerCreateParams{
		TenantID: tenantID, ID: core.NewID(), Email: unique("c-") + "@example.com",
		IsActive: true, InviteCode: unique("inv"), Now: Now,
	}
	for _, opt := range opts {
		opt(&p)
	}
	customer, err := queries.CustomerCreate(context.Background(), db, p)
	if err != nil {
		tb.Fatalf("factory: customer: %v", err)
	}
	return customer
}

// CustomerReferredBy makes the customer a referral of referrerID.
func CustomerReferredBy(referrerID uuid.UUID) func(*sql.CustomerCreateParams) {
	return func(p *sql.CustomerCreateParams) { p.ReferredBy = &referrerID }
}

// CustomerVerified marks the customer verified.
func CustomerVerified() func(*sql.CustomerCreateParams) {
	return func(p *sql.CustomerCreateParams) { p.IsVerified = true }
}

// CustomerEmail sets the customer's email.
func CustomerEmail(email string) func(*sql.CustomerCreateParams) {
	return func(p *sql.CustomerCreateParams) { p.Email = email }
}

// CustomerCreatedAt sets when the customer was created (default Now).
func CustomerCreatedAt(at time.Time) func(*sql.CustomerCreateParams) {
	return func(p *sql.CustomerCreateParams) { p.Now = at }
}

// CustomerEvent records an event of type typ (e.g. "registered") for customerID, with
// ipHash when it is not empty, at occurredAt.
func CustomerEvent(tb testing.TB, db sql.DBTX, tenantID, customerID uuid.UUID, typ, ipHash string, occurredAt time.Time) sql.CustomerEvent {
	tb.Helper()
	var hash *string
	if ipHash != "" {
		hash = &ipHash
	}
	event, err := queries.CustomerEventCreate(context.Background(), db, sql.CustomerEventCreateParams{
		TenantID: tenantID, ID: core.NewID(), CustomerID: customerID, Type: typ, IPHash: hash, OccurredAt: occurredAt, Now: Now,
	})
	if err != nil {
		tb.Fatalf("factory: customer event: %v", err)
	}
	return event
}
