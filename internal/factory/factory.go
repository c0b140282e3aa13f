// Package factory makes test fixtures with sensible defaults, through the same core steps
// the API and CLI use.
package factory

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
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

// Tenant creates a tenant with a unique slug.
func Tenant(tb testing.TB, db sql.DBTX) sql.Tenant {
	tb.Helper()
	slug := "t-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	tenant, err := core.TenantCreate(context.Background(), db, Now, Actor, Box, slug, "Tenant "+slug)
	if err != nil {
		tb.Fatalf("factory: tenant: %v", err)
	}
	return tenant
}

// APIKey creates an admin key for tenantID and returns it with its secret.
func APIKey(tb testing.TB, db sql.DBTX, tenantID uuid.UUID) (sql.APIKey, string) {
	tb.Helper()
	key, secret, err := core.APIKeyCreate(context.Background(), db, Now, Actor, tenantID, "test key")
	if err != nil {
		tb.Fatalf("factory: api key: %v", err)
	}
	return key, secret
}
