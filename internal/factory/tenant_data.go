package factory

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// TenantData gives tenantID rows in every table that holds a tenant's data (the tables
// tenant_data_tables lists, migration 00028), through the core steps where one makes the row
// and plainly where only a flow across providers and jobs would (an invoice, a refund, a
// check's outcome): a catalog with a release and an add-on, a referrer and a referred
// customer with events, a subscription with its add-on and a paid cycle, a machine, a
// credit grant and a custodial payment with a refund, an upgrade waiting for its PayIn, an
// endpoint of every event type with deliveries, referral settings and rewards, an upstream
// import with a check, a finished clock advance, an Idempotency-Key, and a waiting and a
// finished job. Tests of
// whole-tenant operations (reset, clone) fill a tenant with it and check that every table
// was reached, so a table added later must be given a row here.
func TenantData(tb testing.TB, db pg.DB, tenantID uuid.UUID) {
	tb.Helper()
	ctx := context.Background()
	product := Product(tb, db, tenantID)
	ProductRelease(tb, db, tenantID, product.ID, "1.0.0", Now)
	basic := Policy(tb, db, tenantID, PolicyProduct(product.ID), PolicyRecurring(30), PolicyTierRank(1), PolicyMaxMachines(3),
		PolicyPrice(sql.CurrencySAT, 1000))
	pro := Policy(tb, db, tenantID, PolicyProduct(product.ID), PolicyRecurring(30), PolicyTierRank(2), PolicyPrice(sql.CurrencySAT, 2000))
	addon := Addon(tb, db, tenantID)
	referrer := Customer(tb, db, tenantID, CustomerVerified())
	customer := Customer(tb, db, tenantID, CustomerReferredBy(referrer.ID))
	CustomerEvent(tb, db, tenantID, customer.ID, "purchase", "ip-hash", Now)
	sub, license := Subscription(tb, db, tenantID, basic.ID, customer.ID, addon.ID) // stores the referrer's reward
	UpstreamImport(tb, db, UpstreamStore(tb, db, tenantID, "https://store.example.com", "store-key"),
		UpstreamRow("JX-1", "owner-1", Now))
	Job(tb, db, jobargs.ReferralRecompute{TenantID: tenantID, ReferrerID: &referrer.ID}, rivertype.JobStateAvailable)
	Job(tb, db, jobargs.ReferralRecompute{TenantID: tenantID}, rivertype.JobStateCompleted)
	err := pg.InTx(ctx, core.DB(db), func(tx pgx.Tx) error {
		st := Step()
		if _, _, err := core.WebhookEndpointCreate(ctx, tx, st, core.WebhookEndpointCreateParams{
			TenantID: tenantID, MaxEndpoints: core.WebhookMaxEndpointsDefault,
			URL: "https://hooks.example.com/" + uuid.NewString(), EventTypes: core.EventTypes(),
		}); err != nil {
			return err
		}
		if _, _, err := core.MachineActivate(ctx, tx, st, core.MachineActivateParams{TenantID: tenantID, LicenseID: license.ID, Fingerprint: "machine-1"}); err != nil {
			return err
		}
		settled := int32(1)
		if _, err := core.ReferralSettingsUpdate(ctx, tx, st, core.ReferralSettingsUpdateParams{TenantID: tenantID, BatchSize: &settled}); err != nil {
			return err
		}
		grant, _, err := core.CreditGrant(ctx, tx, st, core.CreditGrantParams{TenantID: tenantID, CustomerID: customer.ID, Amount: 5000, Reason: "fixture"})
		if err != nil {
			return err
		}
		if _, _, err := core.TierUpgradeStart(ctx, tx, st, core.TierUpgradeStartParams{License: license, ToPolicyID: pro.ID}); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			WITH invoice AS (
				INSERT INTO payin_invoices (tenant_id, payin_id, provider, provider_invoice_id, checkout_url, amount_sats, created_at)
				VALUES ($1, $2::uuid, 'fixture', md5($2::uuid::text), 'https://pay.example.com/' || $2::uuid::text, 1, $4)
			), part AS (
				INSERT INTO payin_custodial_parts (tenant_id, payin_id, asset, amount, balance_after) VALUES ($1, $2, 'credits', 1, 0)
			), refund AS (
				INSERT INTO payin_refunds (tenant_id, payin_id, asset, amount, balance_after, created_at) VALUES ($1, $2, 'credits', 1, 1, $4)
			), cycle AS (
				INSERT INTO subscription_cycles (tenant_id, subscription_id, cycle_number, payin_id, period_start, period_end, created_at)
				VALUES ($1, $3, 99, $2, $4, $4 + interval '30 days', $4)

			), stats AS (
				INSERT INTO upstream_owner_stats (tenant_id, customer_id) SELECT tenant_id, customer_id FROM upstream_owners WHERE tenant_id = $1
				ON CONFLICT DO NOTHING
			), advance AS (
				INSERT INTO clock_advances (tenant_id, id, status, from_at, to_at, clock_at, created_at, finished_at)
				VALUES ($1, gen_random_uuid(), 'succeeded', $4, $4, $4, $4, $4)
			), checks AS (
				INSERT INTO upstream_license_checks (tenant_id, id, license_id, store_id, checked_at, outcome)
				SELECT tenant_id, gen_random_uuid(), license_id, store_id, $4, 'exists' FROM upstream_licenses WHERE tenant_id = $1
			)
			INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, response_status, response_body, created_at, expires_at)
			VALUES ($1, 'admin', 'fixture', sha256('fixture'), 200, '{}', $4, $4 + interval '1 day')`,
			tenantID, grant.ID, sub.ID, Now)
		return err
	})
	if err != nil {
		tb.Fatalf("factory: tenant data: %v", err)
	}
}
