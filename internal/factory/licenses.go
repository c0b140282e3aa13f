package factory

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// Jobs is an insert-only River client: fixtures enqueue their follow-up jobs through it.
var Jobs = func() *river.Client[pgx.Tx] {
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	if err != nil {
		panic(err)
	}
	return client
}()

// Step is the core.Step of fixtures: at Now, by Actor, with Box and Jobs.
func Step() core.Step {
	return core.Step{Now: Now, Actor: Actor, Box: Box, Jobs: Jobs}
}

// License issues a licence of policyID to customerID through core.LicenseIssue at Now.
// opts change the parameters first.
func License(tb testing.TB, db pg.DB, tenantID, policyID, customerID uuid.UUID, opts ...func(*core.LicenseIssueParams)) sql.License {
	tb.Helper()
	p := core.LicenseIssueParams{TenantID: tenantID, PolicyID: policyID, CustomerID: customerID}
	for _, opt := range opts {
		opt(&p)
	}
	var license sql.License
	err := pg.InTx(context.Background(), db, func(tx pgx.Tx) error {
		var err error
		license, err = core.LicenseIssue(context.Background(), tx, Step(), p)
		return err
	})
	if err != nil {
		tb.Fatalf("factory: license: %v", err)
	}
	return license
}

// Subscription starts a subscription of customerID to the recurring policyID through
// core.SubscriptionCreate at Now, with add-ons.
func Subscription(tb testing.TB, db pg.DB, tenantID, policyID, customerID uuid.UUID, addonIDs ...uuid.UUID) (sql.Subscription, sql.License) {
	tb.Helper()
	var sub sql.Subscription
	var license sql.License
	err := pg.InTx(context.Background(), db, func(tx pgx.Tx) error {
		var err error
		sub, license, err = core.SubscriptionCreate(context.Background(), tx, Step(), core.SubscriptionCreateParams{TenantID: tenantID, CustomerID: customerID, PolicyID: policyID, AddonIDs: addonIDs})
		return err
	})
	if err != nil {
		tb.Fatalf("factory: subscription: %v", err)
	}
	return sub, license
}
