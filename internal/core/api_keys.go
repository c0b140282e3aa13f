package core

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// An admin API key of a live tenant reads tsk_<12 hex>_<43 base64url>, one of a sandbox
// tenant tsk_test_<12 hex>_<43 base64url>: the part before the last underscore is its
// visible prefix (stored, shown in lists); the whole key is stored only as its SHA-256.
// Neither scheme is a prefix of the other's keys ("test" is not hex).
const (
	apiKeyScheme        = "tsk_"
	sandboxAPIKeyScheme = "tsk_test_"
	apiKeyIDLen         = 12 // hex digits after the scheme
	apiKeySecretLen     = 43
)

// apiKeySchemeOf returns the scheme of a live (false) or sandbox (true) tenant's keys.
func apiKeySchemeOf(sandbox bool) string {
	if sandbox {
		return sandboxAPIKeyScheme
	}
	return apiKeyScheme
}

// APIKeyPrincipal is what an admin API key authenticates: the key, and its tenant's clock.
type APIKeyPrincipal struct {
	sql.APIKey
	// TenantClock is the sandbox clock of the key's tenant; nil for a live tenant.
	TenantClock *time.Time
}

// ErrUnauthenticated means a presented API key is malformed, unknown or revoked. The three
// are deliberately indistinguishable.
var ErrUnauthenticated = errors.New("unauthenticated")

// APIKeyCreateParams is a new admin key of TenantID.
type APIKeyCreateParams struct {
	TenantID uuid.UUID
	// Name says what the key is for.
	Name string
}

// APIKeyCreate issues a new admin key and audits it (api_key.create); a sandbox tenant's key
// reads tsk_test_…. The returned secret is the whole key; it is not stored and cannot be
// shown again. An unknown tenant is ErrNotFound.
func APIKeyCreate(ctx context.Context, tx pgx.Tx, st Step, p APIKeyCreateParams) (sql.APIKey, string, error) {
	tenant, err := queries.TenantGet(ctx, tx, p.TenantID)
	if err != nil {
		return sql.APIKey{}, "", notFound(err, "tenant", p.TenantID)
	}
	random := make([]byte, apiKeyIDLen/2+32)
	if _, err := rand.Read(random); err != nil {
		return sql.APIKey{}, "", fmt.Errorf("generate api key: %w", err)
	}
	prefix := apiKeySchemeOf(tenant.ClockAt != nil) + hex.EncodeToString(random[:apiKeyIDLen/2])
	secret := prefix + "_" + base64.RawURLEncoding.EncodeToString(random[apiKeyIDLen/2:])
	hash := sha256.Sum256([]byte(secret))
	key, err := queries.APIKeyCreate(ctx, tx, sql.APIKeyCreateParams{
		TenantID: p.TenantID, ID: NewID(), Name: p.Name, Prefix: prefix, KeyHash: hash[:], Now: st.Now,
	})
	if err != nil {
		return sql.APIKey{}, "", fmt.Errorf("create api key: %w", err)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "api_key.create", SubjectType: "api_key", SubjectID: key.ID.String(),
		Details: map[string]string{"name": p.Name, "prefix": prefix},
	})
	return key, secret, err
}

// APIKeyRevokeParams names the key to revoke.
type APIKeyRevokeParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
}

// APIKeyRevoke revokes one of a tenant's keys and audits it (api_key.revoke). An unknown key
// is ErrNotFound; an already revoked key is ErrAPIKeyRevoked (an ErrConflict).
func APIKeyRevoke(ctx context.Context, tx pgx.Tx, st Step, p APIKeyRevokeParams) (sql.APIKey, error) {
	key, err := queries.APIKeyRevoke(ctx, tx, sql.APIKeyRevokeParams{TenantID: p.TenantID, ID: p.ID, Now: st.Now})
	if errors.Is(err, ErrNotFound) { // revoked already, or no such key
		_, err := queries.APIKeyGet(ctx, tx, sql.APIKeyGetParams{TenantID: p.TenantID, ID: p.ID})
		if err != nil {
			return sql.APIKey{}, notFound(err, "api key", p.ID)
		}
		return sql.APIKey{}, fmt.Errorf("%w: api key %s is already revoked", ErrAPIKeyRevoked, p.ID)
	}
	if err != nil {
		return sql.APIKey{}, fmt.Errorf("revoke api key %s: %w", p.ID, err)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "api_key.revoke", SubjectType: "api_key", SubjectID: key.ID.String(),
	})
	return key, err
}

// APIKeyAuthenticate finds the active key that secret is, with its tenant's clock. A
// tsk_test_ key is looked for only among sandbox tenants' keys and a tsk_ key only among
// live tenants'. The hash comparison takes the same time whether or not the key exists;
// malformed, unknown and revoked keys are all ErrUnauthenticated.
func APIKeyAuthenticate(ctx context.Context, db sql.DBTX, secret string) (APIKeyPrincipal, error) {
	hash := sha256.Sum256([]byte(secret))
	stored := make([]byte, sha256.Size)
	row, err := sql.APIKeyGetByPrefixRow{}, error(nil)
	sandbox := strings.HasPrefix(secret, sandboxAPIKeyScheme)
	prefixLen := len(apiKeySchemeOf(sandbox)) + apiKeyIDLen
	if len(secret) == prefixLen+1+apiKeySecretLen && strings.HasPrefix(secret, apiKeyScheme) && secret[prefixLen] == '_' {
		row, err = queries.APIKeyGetByPrefix(ctx, db, sql.APIKeyGetByPrefixParams{Prefix: secret[:prefixLen], Sandbox: sandbox})
		switch {
		case err == nil:
			stored = row.APIKey.KeyHash
		case !errors.Is(err, ErrNotFound):
			return APIKeyPrincipal{}, fmt.Errorf("authenticate api key: %w", err)
		}
	}
	if subtle.ConstantTimeCompare(hash[:], stored) != 1 || row.APIKey.RevokedAt != nil {
		return APIKeyPrincipal{}, ErrUnauthenticated
	}
	return APIKeyPrincipal{APIKey: row.APIKey, TenantClock: row.TenantClockAt}, nil
}
