package core

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/sql"
)

// ReferralRecomputeEnqueue enqueues, in tx, a recompute of tenantID's referral rewards: of
// one referrer, or of all when referrerID is nil. Unique by its args while one is waiting
// or running (jobargs.ReferralRecompute).
func ReferralRecomputeEnqueue(ctx context.Context, tx pgx.Tx, jobs JobInserter, tenantID uuid.UUID, referrerID *uuid.UUID) error {
	_, err := jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: jobargs.ReferralRecompute{TenantID: tenantID, ReferrerID: referrerID}}})
	if err != nil {
		return fmt.Errorf("enqueue referral recompute: %w", err)
	}
	return nil
}

// ReferralRecomputeReferrerOf enqueues, in tx, a recompute of the referrer of customerID if
// it has one: the step calling it changed something that can move that referrer's count
// (the customer's status, referrer or subscriptions).
func ReferralRecomputeReferrerOf(ctx context.Context, tx pgx.Tx, jobs JobInserter, tenantID, customerID uuid.UUID) error {
	referrer, err := queries.ReferralReferrerOf(ctx, tx, sql.ReferralReferrerOfParams{TenantID: tenantID, CustomerID: customerID})
	if err != nil {
		return fmt.Errorf("find referrer of customer %s: %w", customerID, DBError(err))
	}
	if referrer == nil {
		return nil
	}
	return ReferralRecomputeEnqueue(ctx, tx, jobs, tenantID, referrer)
}

// CustomPlans runs every query on db with a plan made for that call's arguments (pgx's
// describe-exec mode: an unnamed statement, planned at bind time). Queries whose best plan
// depends on their arguments use it, like ReferralRecompute, whose optional referrer filter
// needs an index lookup for one referrer and a scan for all: a cached generic plan would
// serve one of the two badly.
type CustomPlans struct {
	DB sql.DBTX
}

// Exec runs a statement with a custom plan.
func (c CustomPlans) Exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	return c.DB.Exec(ctx, query, append([]any{pgx.QueryExecModeDescribeExec}, args...)...)
}

// Query runs a query with a custom plan.
func (c CustomPlans) Query(ctx context.Context, query string, args ...any) (pgx.Rows, error) {
	return c.DB.Query(ctx, query, append([]any{pgx.QueryExecModeDescribeExec}, args...)...)
}

// QueryRow runs a one-row query with a custom plan.
func (c CustomPlans) QueryRow(ctx context.Context, query string, args ...any) pgx.Row {
	return c.DB.QueryRow(ctx, query, append([]any{pgx.QueryExecModeDescribeExec}, args...)...)
}
