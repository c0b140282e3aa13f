package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/sql"
)

// queries is stateless generated code; every method takes the connection it runs on.
var queries = sql.New()

// APIKeyLabel binds a store's sealed API key to the store.
func APIKeyLabel(tenantID, storeID uuid.UUID) string {
	return "upstream-store/" + tenantID.String() + "/" + storeID.String()
}

// StoreParams describe a store to connect.
type StoreParams struct {
	Kind         string
	Name         string
	BaseURL      string
	APIKey       string
	PolicyID     uuid.UUID
	Enabled      bool
	RevokeOnGone bool
}

// StoreCreate connects a store of tenantID, sealing its API key, and audits it (without the
// key). A base URL that is not absolute http(s) and a policy the tenant does not have (live)
// are core.ErrInvalid.
func StoreCreate(ctx context.Context, tx sql.DBTX, st core.Step, tenantID uuid.UUID, p StoreParams) (sql.UpstreamStore, error) {
	if err := ValidateBaseURL(p.BaseURL); err != nil {
		return sql.UpstreamStore{}, err
	}
	id := core.NewID()
	store, err := queries.UpstreamStoreCreate(ctx, tx, sql.UpstreamStoreCreateParams{
		ID: id, Kind: sql.UpstreamStoreKind(p.Kind), Name: p.Name, BaseURL: p.BaseURL,
		APIKeySealed: st.Box.Seal([]byte(p.APIKey), APIKeyLabel(tenantID, id)),
		Enabled:      p.Enabled, RevokeOnGone: p.RevokeOnGone, Now: st.Now, TenantID: tenantID, PolicyID: p.PolicyID,
	})
	if err = core.DBError(err); errors.Is(err, core.ErrNotFound) {
		return sql.UpstreamStore{}, fmt.Errorf("%w: policy %s not found (or archived)", core.ErrInvalid, p.PolicyID)
	} else if err != nil {
		return sql.UpstreamStore{}, fmt.Errorf("create upstream store: %w", err)
	}
	err = core.Audit(ctx, tx, st, core.Change{TenantID: tenantID,
		Action: "upstream_store.create", SubjectType: "upstream_store", SubjectID: id.String(),
		Details: map[string]any{"kind": p.Kind, "name": p.Name, "base_url": p.BaseURL, "policy_id": p.PolicyID,
			"enabled": p.Enabled, "revoke_on_gone": p.RevokeOnGone},
	})
	return store, err
}

// StoreChange is what an update changes; nil fields keep their value.
type StoreChange struct {
	Name         *string
	BaseURL      *string
	APIKey       *string
	Enabled      *bool
	RevokeOnGone *bool
}

// StoreUpdate changes a store and audits the change (without the key). An unknown store is
// core.ErrNotFound.
func StoreUpdate(ctx context.Context, tx sql.DBTX, st core.Step, tenantID, id uuid.UUID, c StoreChange) (sql.UpstreamStore, error) {
	if c.BaseURL != nil {
		if err := ValidateBaseURL(*c.BaseURL); err != nil {
			return sql.UpstreamStore{}, err
		}
	}
	p := sql.UpstreamStoreUpdateParams{Name: c.Name, BaseURL: c.BaseURL, Enabled: c.Enabled, RevokeOnGone: c.RevokeOnGone,
		Now: st.Now, TenantID: tenantID, ID: id}
	if c.APIKey != nil {
		p.APIKeySealed = st.Box.Seal([]byte(*c.APIKey), APIKeyLabel(tenantID, id))
	}
	store, err := queries.UpstreamStoreUpdate(ctx, tx, p)
	if err = core.DBError(err); errors.Is(err, core.ErrNotFound) {
		return sql.UpstreamStore{}, fmt.Errorf("%w: upstream store %s", core.ErrNotFound, id)
	} else if err != nil {
		return sql.UpstreamStore{}, fmt.Errorf("update upstream store %s: %w", id, err)
	}
	err = core.Audit(ctx, tx, st, core.Change{TenantID: tenantID,
		Action: "upstream_store.update", SubjectType: "upstream_store", SubjectID: id.String(),
		Details: map[string]any{"name": c.Name, "base_url": c.BaseURL, "api_key_changed": c.APIKey != nil,
			"enabled": c.Enabled, "revoke_on_gone": c.RevokeOnGone},
	})
	return store, err
}

// OpenAPIKey opens a store's sealed API key.
func OpenAPIKey(box *secrets.Box, tenantID, storeID uuid.UUID, sealed []byte) (string, error) {
	key, err := box.Open(sealed, APIKeyLabel(tenantID, storeID))
	if err != nil {
		return "", fmt.Errorf("open API key of upstream store %s: %w", storeID, err)
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
