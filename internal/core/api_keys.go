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

// APIKeyCreate issues a new admin key for tenantID and audits it. The returned secret is
// the whole key; it is not stored and cannot be shown again.
func APIKeyCreate(ctx context.Context, tx sql.DBTX, now time.Time, actor Actor, tenantID uuid.UUID, name string) (sql.APIKey, string, error) {
	random := make([]byte, 6+32)
	if _, err := rand.Read(random); err != nil {
		return sql.APIKey{}, "", fmt.Errorf("generate api key: %w", err)
	}
	prefix := apiKeyScheme + hex.EncodeToString(random[:6])
	secret := prefix + "_" + base64.RawURLEncoding.EncodeToString(random[6:])
	hash := sha256.Sum256([]byte(secret))
	key, err := queries.APIKeyCreate(ctx, tx, sql.APIKeyCreateParams{
		TenantID: tenantID, ID: NewID(), Name: name, Prefix: prefix, KeyHash: hash[:], Now: now,
	})
	if err != nil {
		return sql.APIKey{}, "", fmt.Errorf("create api key: %w", DBError(err))
	}
	err = Audit(ctx, tx, Step{Now: now, Actor: actor}, Change{TenantID: tenantID,
		Action: "api_key.create", SubjectType: "api_key", SubjectID: key.ID.String(),
		Details: map[string]string{"name": name, "prefix": prefix},
	})
	return key, secret, err
}

// APIKeyRevoke revokes one of tenantID's keys and audits it. An unknown key is ErrNotFound;
// an already revoked key is ErrAPIKeyRevoked (an ErrConflict).
func APIKeyRevoke(ctx context.Context, tx sql.DBTX, now time.Time, actor Actor, tenantID, id uuid.UUID) (sql.APIKey, error) {
	key, err := queries.APIKeyRevoke(ctx, tx, sql.APIKeyRevokeParams{TenantID: tenantID, ID: id, Now: now})
	if err != nil {
		if err = DBError(err); !errors.Is(err, ErrNotFound) {
			return sql.APIKey{}, fmt.Errorf("revoke api key %s: %w", id, err)
		}
		if _, getErr := queries.APIKeyGet(ctx, tx, sql.APIKeyGetParams{TenantID: tenantID, ID: id}); getErr == nil {
			return sql.APIKey{}, fmt.Errorf("%w: api key %s is already revoked", ErrAPIKeyRevoked, id)
		}
		return sql.APIKey{}, fmt.Errorf("%w: api key %s", ErrNotFound, id)
	}
	err = Audit(ctx, tx, Step{Now: now, Actor: actor}, Change{TenantID: tenantID,
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
		case !errors.Is(DBError(err), ErrNotFound):
			return sql.APIKey{}, fmt.Errorf("authenticate api key: %w", err)
		}
	}
	if subtle.ConstantTimeCompare(hash[:], stored) != 1 || key.RevokedAt != nil {
		return sql.APIKey{}, ErrUnauthenticated
	}
	return key, nil
}
