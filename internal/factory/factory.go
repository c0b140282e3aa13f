// Package factory makes test fixtures with sensible defaults, through the same core steps
// the API and CLI use.
package factory

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/sql"
)

// Now is the time fixtures are created at unless a test says otherwise.
var Now = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

// SecretKey is the fixed test TESSERA_SECRET_KEY (base64), the key of Box: commands run in
// tests with it read what fixtures sealed.
const SecretKey = "dGVzc2VyYS10ZXN0LXNlY3JldC1rZXktMzItYnl0ZXM="

// Box seals fixtures' secrets with SecretKey.
var Box = func() *secrets.Box {
	box, err := secrets.Parse(SecretKey)
	if err != nil {
		panic(err)
	}
	return box
}()

// Actor is the audit-log actor of fixtures.
var Actor = core.Actor{Type: core.ActorCLI, ID: "factory"}

// Tenant creates a live tenant with a unique slug.
func Tenant(tb testing.TB, db pg.DB) sql.Tenant {
	tb.Helper()
	return tenant(tb, db, nil)
}

// SandboxTenant creates a sandbox tenant with a unique slug, its clock standing at clock.
func SandboxTenant(tb testing.TB, db pg.DB, clock time.Time) sql.Tenant {
	tb.Helper()
	return tenant(tb, db, &clock)
}

func tenant(tb testing.TB, db pg.DB, sandboxClock *time.Time) sql.Tenant {
	tb.Helper()
	slug := "t-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	var tenant sql.Tenant
	err := pg.InTx(context.Background(), db, func(tx pgx.Tx) (err error) {
		tenant, err = core.TenantCreate(context.Background(), tx, Step(), core.TenantCreateParams{Slug: slug, Name: "Tenant " + slug, SandboxClock: sandboxClock})
		return err
	})
	if err != nil {
		tb.Fatalf("factory: tenant: %v", err)
	}
	return tenant
}

// APIKey creates an admin key for tenantID and returns it with its secret.
func APIKey(tb testing.TB, db pg.DB, tenantID uuid.UUID) (sql.APIKey, string) {
	tb.Helper()
	var key sql.APIKey
	var secret string
	err := pg.InTx(context.Background(), db, func(tx pgx.Tx) (err error) {
		key, secret, err = core.APIKeyCreate(context.Background(), tx, Step(), core.APIKeyCreateParams{TenantID: tenantID, Name: "test key"})
		return err
	})
	if err != nil {
		tb.Fatalf("factory: api key: %v", err)
	}
	return key, secret
}
