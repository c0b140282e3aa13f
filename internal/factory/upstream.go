package factory

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

// UpstreamStore connects an enabled Jinxxy-style store of tenantID at baseURL with apiKey,
// whose imported licences get a new one-off policy. opts change the parameters first.
func UpstreamStore(tb testing.TB, db pg.DB, tenantID uuid.UUID, baseURL, apiKey string, opts ...func(*upstream.StoreCreateParams)) sql.UpstreamStore {
	tb.Helper()
	p := upstream.StoreCreateParams{TenantID: tenantID, Kind: "jinxxy", Name: "Store", BaseURL: baseURL, APIKey: apiKey,
		PolicyID: Policy(tb, db, tenantID).ID, Enabled: true}
	for _, opt := range opts {
		opt(&p)
	}
	var store sql.UpstreamStore
	err := pg.InTx(context.Background(), core.DB(db), func(tx pgx.Tx) (err error) {
		store, err = upstream.StoreCreate(context.Background(), tx, Step(), p)
		return err
	})
	if err != nil {
		tb.Fatalf("factory: upstream store: %v", err)
	}
	return store
}

// UpstreamImport imports rows into store at Now and returns the licence ids by external id.
func UpstreamImport(tb testing.TB, db pg.DB, store sql.UpstreamStore, rows ...upstream.Row) map[string]uuid.UUID {
	tb.Helper()
	ids := map[string]uuid.UUID{}
	err := pg.InTx(context.Background(), core.DB(db), func(tx pgx.Tx) error {
		im, err := upstream.NewImporter(context.Background(), tx, Step(), upstream.ImporterParams{TenantID: store.TenantID, StoreID: store.ID})
		if err != nil {
			return err
		}
		for i, r := range rows {
			if err := im.Import(context.Background(), i, r); err != nil {
				return err
			}
		}
		for _, r := range rows {
			var id uuid.UUID
			if err := tx.QueryRow(context.Background(), "SELECT id FROM licenses WHERE tenant_id = $1 AND external_license_id = $2",
				store.TenantID, r.ExternalLicenseID).Scan(&id); err != nil {
				return err
			}
			ids[r.ExternalLicenseID] = id
		}
		return im.Finish(context.Background())
	})
	if err != nil {
		tb.Fatalf("factory: upstream import: %v", err)
	}
	return ids
}

// UpstreamRow is an import row of owner acquired at acquiredAt.
func UpstreamRow(externalID, owner string, acquiredAt time.Time) upstream.Row {
	return upstream.Row{ExternalLicenseID: externalID, Owner: owner, AcquiredAt: acquiredAt}
}

// LogChannel gives tenantID an enabled webhook endpoint subscribed to
// license.upstream_revoked: the log channel that makes its licences checked.
func LogChannel(tb testing.TB, db pg.DB, tenantID uuid.UUID) sql.WebhookEndpoint {
	tb.Helper()
	var endpoint sql.WebhookEndpoint
	err := pg.InTx(context.Background(), core.DB(db), func(tx pgx.Tx) (err error) {
		endpoint, _, err = core.WebhookEndpointCreate(context.Background(), tx, Step(), core.WebhookEndpointCreateParams{
			TenantID: tenantID, MaxEndpoints: core.WebhookMaxEndpointsDefault,
			URL: "https://hooks.example.com/" + uuid.NewString(), EventTypes: []string{core.EventLicenseUpstreamRevoked},
		})
		return err
	})
	if err != nil {
		tb.Fatalf("factory: log channel: %v", err)
	}
	return endpoint
}
