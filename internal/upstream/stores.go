package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/sql"
)

// queries is stateless generated code; every method takes the connection it runs on.
var queries = sql.New()

// apiKeyLabel binds a store's sealed API key to the store.
func apiKeyLabel(tenantID, storeID uuid.UUID) string {
	return "upstream-store/" + tenantID.String() + "/" + storeID.String()
}

// StoreCreateParams describe a store of TenantID to connect.
type StoreCreateParams struct {
	TenantID     uuid.UUID
	Kind         string
	Name         string
	BaseURL      string
	APIKey       string
	PolicyID     uuid.UUID
	Enabled      bool
	RevokeOnGone bool
}

// StoreCreate connects a store of p.TenantID, sealing its API key with st.Box, and audits it
// (without the key). A base URL that is not absolute http(s) and a policy the tenant does
// not have (live) are core.ErrInvalid.
func StoreCreate(ctx context.Context, tx pgx.Tx, st core.Step, p StoreCreateParams) (sql.UpstreamStore, error) {
	if err := ValidateBaseURL(p.BaseURL); err != nil {
		return sql.UpstreamStore{}, err
	}
	id := core.NewID()
	store, err := queries.UpstreamStoreCreate(ctx, tx, sql.UpstreamStoreCreateParams{
		ID: id, Kind: sql.UpstreamStoreKind(p.Kind), Name: p.Name, BaseURL: p.BaseURL,
		APIKeySealed: st.Box.Seal([]byte(p.APIKey), apiKeyLabel(p.TenantID, id)),
		Enabled:      p.Enabled, RevokeOnGone: p.RevokeOnGone, Now: st.Now, TenantID: p.TenantID, PolicyID: p.PolicyID,
	})
	if errors.Is(err, core.ErrNotFound) {
		return sql.UpstreamStore{}, fmt.Errorf("%w: policy %s not found (or archived)", core.ErrInvalid, p.PolicyID)
	} else if err != nil {
		return sql.UpstreamStore{}, fmt.Errorf("create upstream store: %w", err)
	}
	err = core.Audit(ctx, tx, st, core.Change{TenantID: p.TenantID,
		Action: "upstream_store.create", SubjectType: "upstream_store", SubjectID: id.String(),
		Details: map[string]any{"kind": p.Kind, "name": p.Name, "base_url": p.BaseURL, "policy_id": p.PolicyID,
			"enabled": p.Enabled, "revoke_on_gone": p.RevokeOnGone},
	})
	return store, err
}

// StoreUpdateParams changes store ID of TenantID; nil fields keep their value.
type StoreUpdateParams struct {
	TenantID     uuid.UUID
	ID           uuid.UUID
	Name         *string
	BaseURL      *string
	APIKey       *string
	Enabled      *bool
	RevokeOnGone *bool
}

// StoreUpdate changes a store and audits the change (without the key). An unknown store is
// core.ErrNotFound.
func StoreUpdate(ctx context.Context, tx pgx.Tx, st core.Step, p StoreUpdateParams) (sql.UpstreamStore, error) {
	if p.BaseURL != nil {
		if err := ValidateBaseURL(*p.BaseURL); err != nil {
			return sql.UpstreamStore{}, err
		}
	}
	update := sql.UpstreamStoreUpdateParams{Name: p.Name, BaseURL: p.BaseURL, Enabled: p.Enabled, RevokeOnGone: p.RevokeOnGone,
		Now: st.Now, TenantID: p.TenantID, ID: p.ID}
	if p.APIKey != nil {
		update.APIKeySealed = st.Box.Seal([]byte(*p.APIKey), apiKeyLabel(p.TenantID, p.ID))
	}
	store, err := queries.UpstreamStoreUpdate(ctx, tx, update)
	if errors.Is(err, core.ErrNotFound) {
		return sql.UpstreamStore{}, fmt.Errorf("%w: upstream store %s", core.ErrNotFound, p.ID)
	} else if err != nil {
		return sql.UpstreamStore{}, fmt.Errorf("update upstream store %s: %w", p.ID, err)
	}
	err = core.Audit(ctx, tx, st, core.Change{TenantID: p.TenantID,
		Action: "upstream_store.update", SubjectType: "upstream_store", SubjectID: p.ID.String(),
		Details: map[string]any{"name": p.Name, "base_url": p.BaseURL, "api_key_changed": p.APIKey != nil,
			"enabled": p.Enabled, "revoke_on_gone": p.RevokeOnGone},
	})
	return store, err
}

// UnsealAPIKey opens the sealed API key of target's store.
func UnsealAPIKey(box *secrets.Box, target Target) (string, error) {
	key, err := box.Open(target.APIKeySealed, apiKeyLabel(target.TenantID, target.StoreID))
	if err != nil {
		return "", fmt.Errorf("open API key of upstream store %s: %w", target.StoreID, err)
	}
	return string(key), nil
}

// ValidateBaseURL accepts an absolute http(s) URL of at most 2000 bytes.
func ValidateBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(raw) > 2000 {
		return fmt.Errorf("%w: base_url must be an absolute http(s) URL of at most 2000 characters", core.ErrInvalid)
	}
	return nil
}

// StoreKeysResealParams names the tenant a sandbox clone copied its stores from and the clone.
type StoreKeysResealParams struct {
	// SourceID is the tenant whose label the copied keys are sealed with.
	SourceID uuid.UUID
	// CloneID is the tenant that holds the copies (core.SandboxClone).
	CloneID uuid.UUID
}

// StoreKeysReseal reseals, in tx, the API key of every upstream store of a sandbox clone: a
// key is sealed for its tenant and store (apiKeyLabel), so the copy core.SandboxClone made of
// the source's sealed key opens only once sealed again for the clone. Nothing else of a store
// changes, its updated_at included.
func StoreKeysReseal(ctx context.Context, tx pgx.Tx, st core.Step, p StoreKeysResealParams) error {
	var after *uuid.UUID
	for {
		stores, err := queries.UpstreamStoreList(ctx, tx, sql.UpstreamStoreListParams{TenantID: p.CloneID, After: after, RowLimit: 100})
		if err != nil {
			return fmt.Errorf("list upstream stores of clone %s: %w", p.CloneID, err)
		}
		for _, s := range stores {
			key, err := st.Box.Open(s.APIKeySealed, apiKeyLabel(p.SourceID, s.ID))
			if err != nil {
				return fmt.Errorf("open API key of upstream store %s: %w", s.ID, err)
			}
			_, err = queries.UpstreamStoreUpdate(ctx, tx, sql.UpstreamStoreUpdateParams{
				TenantID: p.CloneID, ID: s.ID, APIKeySealed: st.Box.Seal(key, apiKeyLabel(p.CloneID, s.ID)), Now: s.UpdatedAt,
			})
			if err != nil {
				return fmt.Errorf("reseal API key of upstream store %s: %w", s.ID, err)
			}
		}
		if len(stores) < 100 {
			return nil
		}
		after = &stores[len(stores)-1].ID
	}
}
