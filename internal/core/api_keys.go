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

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// An admin API key reads tsk_<12 hex>_<43 base64url>: the first part, up to the second
// underscore, is its visible prefix (stored, shown in lists); the whole key is stored only
// as its SHA-256.
const (
	apiKeyScheme    = "tsk_"
	apiKeyPrefixLen = len(apiKeyScheme) + 12
	apiKeySecretLen = 43
	apiKeyLen       = apiKeyPrefixLen + 1 + apiKeySecretLen
)

// ErrUnauthenticated means a presented API key is malformed, unknown or revoked. The three
// are deliberately indistinguishable.
var ErrUnauthenticated = errors.New("unauthenticated")

// APIKeyCreateParams is a new admin key of TenantID.
type APIKeyCreateParams struct {
	TenantID uuid.UUID
	// Name says what the key is for.
	Name string
}

// APIKeyCreate issues a new admin key and audits it (api_key.create). The returned secret
// is the whole key; it is not stored and cannot be shown again.
func APIKeyCreate(ctx context.Context, tx pgx.Tx, st Step, p APIKeyCreateParams) (sql.APIKey, string, error) {
	random := make([]byte, 6+32)
	if _, err := rand.Read(random); err != nil {
		return sql.APIKey{}, "", fmt.Errorf("generate api key: %w", err)
	}
	prefix := apiKeyScheme + hex.EncodeToString(random[:6])
	secret := prefix + "_" + base64.RawURLEncoding.EncodeToString(random[6:])
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

// APIKeyAuthenticate finds the active key that secret is. The hash comparison takes the same
// time whether or not the key exists; malformed, unknown and revoked keys are all
// ErrUnauthenticated.
func APIKeyAuthenticate(ctx context.Context, db sql.DBTX, secret string) (sql.APIKey, error) {
	hash := sha256.Sum256([]byte(secret))
	stored := make([]byte, sha256.Size)
	key, err := sql.APIKey{}, error(nil)
	if len(secret) == apiKeyLen && strings.HasPrefix(secret, apiKeyScheme) && secret[apiKeyPrefixLen] == '_' {
		key, err = queries.APIKeyGetByPrefix(ctx, db, secret[:apiKeyPrefixLen])
		switch {
		case err == nil:
			stored = key.KeyHash
		case !errors.Is(err, ErrNotFound):
			return sql.APIKey{}, fmt.Errorf("authenticate api key: %w", err)
		}
	}
	if subtle.ConstantTimeCompare(hash[:], stored) != 1 || key.RevokedAt != nil {
		return sql.APIKey{}, ErrUnauthenticated
	}
	return key, nil
}
