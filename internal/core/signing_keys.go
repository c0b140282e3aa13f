package core

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/sql"
)

func signingKeyLabel(tenantID uuid.UUID) string { return "signing-key/" + tenantID.String() }

// SigningKeyCreate gives a tenant its Ed25519 key pair, the private key sealed with box.
func SigningKeyCreate(ctx context.Context, tx sql.DBTX, now time.Time, box *secrets.Box, tenantID uuid.UUID) error {
	public, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	err = queries.SigningKeyCreate(ctx, tx, sql.SigningKeyCreateParams{
		TenantID: tenantID, ID: NewID(), PublicKey: public,
		PrivateKeySealed: box.Seal(private.Seed(), signingKeyLabel(tenantID)), Now: now,
	})
	if err != nil {
		return fmt.Errorf("store signing key: %w", DBError(err))
	}
	return nil
}

// SigningKeyPrivate opens a tenant's private signing key.
func SigningKeyPrivate(ctx context.Context, db sql.DBTX, box *secrets.Box, tenantID uuid.UUID) (ed25519.PrivateKey, error) {
	key, err := queries.SigningKeyGet(ctx, db, tenantID)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", DBError(err))
	}
	seed, err := box.Open(key.PrivateKeySealed, signingKeyLabel(tenantID))
	if err != nil {
		return nil, fmt.Errorf("open signing key of tenant %s (is TESSERA_SECRET_KEY the one it was sealed with?): %w", tenantID, err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
