package core

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/licensekey"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/sql"
)

func signingKeyLabel(tenantID uuid.UUID) string { return "signing-key/" + tenantID.String() }

// SigningKeyCreate gives tenant tenantID its Ed25519 key pair, the private key sealed with
// st.Box.
func SigningKeyCreate(ctx context.Context, tx pgx.Tx, st Step, tenantID uuid.UUID) error {
	public, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	err = queries.SigningKeyCreate(ctx, tx, sql.SigningKeyCreateParams{
		TenantID: tenantID, ID: NewID(), PublicKey: public,
		PrivateKeySealed: st.Box.Seal(private.Seed(), signingKeyLabel(tenantID)), Now: st.Now,
	})
	if err != nil {
		return fmt.Errorf("store signing key: %w", err)
	}
	return nil
}

// LicenseSigner signs one tenant's licence keys with its private signing key, marked live
// or sandbox as the tenant is.
type LicenseSigner struct {
	tenantID uuid.UUID
	private  ed25519.PrivateKey
	sandbox  bool
}

// Sign returns the key of the tenant's licence licenseID.
func (s LicenseSigner) Sign(licenseID uuid.UUID) string {
	return licensekey.Sign(s.private, licensekey.Claims{TenantID: s.tenantID, LicenseID: licenseID, Sandbox: s.sandbox})
}

// SigningKeyPrivateParams names the tenant whose private signing key to open.
type SigningKeyPrivateParams struct {
	TenantID uuid.UUID
	// Box opens the sealed key: the one it was sealed with (TESSERA_SECRET_KEY).
	Box *secrets.Box
}

// SigningKeyPrivate opens a tenant's private signing key, as the signer of its licence keys.
func SigningKeyPrivate(ctx context.Context, db sql.DBTX, p SigningKeyPrivateParams) (LicenseSigner, error) {
	key, err := queries.SigningKeyGet(ctx, db, p.TenantID)
	if err != nil {
		return LicenseSigner{}, fmt.Errorf("read signing key: %w", err)
	}
	seed, err := p.Box.Open(key.PrivateKeySealed, signingKeyLabel(p.TenantID))
	if err != nil {
		return LicenseSigner{}, fmt.Errorf("open signing key of tenant %s (is TESSERA_SECRET_KEY the one it was sealed with?): %w", p.TenantID, err)
	}
	return LicenseSigner{tenantID: p.TenantID, private: ed25519.NewKeyFromSeed(seed), sandbox: key.Sandbox}, nil
}
