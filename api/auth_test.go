package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/pg"
)

func TestAuthentication(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name          string
		authorization func(b *bundle, revokedSecret string) string
	}{
		{"Missing", func(*bundle, string) string { return "" }},
		{"NotBearer", func(b *bundle, _ string) string { return "Basic " + b.key }},
		{"BearerWithoutKey", func(*bundle, string) string { return "Bearer " }},
		{"Malformed", func(*bundle, string) string { return "Bearer not-a-key" }},
		{"Unknown", func(*bundle, string) string {
			return "Bearer tsk_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		}},
		// A key with a real prefix but a wrong secret.
		{"ForgedSecret", func(b *bundle, _ string) string {
			return "Bearer " + b.key[:17] + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		}},
		{"Revoked", func(_ *bundle, revokedSecret string) string { return "Bearer " + revokedSecret }},
		{"Oversized", func(*bundle, string) string { return "Bearer " + strings.Repeat("A", 4096) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			revoked, revokedSecret := factory.APIKey(t, b.db, b.tenant.ID)
			err := pg.InTx(t.Context(), b.db, func(tx pgx.Tx) error {
				_, err := core.APIKeyRevoke(t.Context(), tx, factory.Step(), core.APIKeyRevokeParams{TenantID: b.tenant.ID, ID: revoked.ID})
				return err
			})
			require.NoError(t, err)
			res := b.request(t, http.MethodGet, "/v1/admin/tenant", "", "Authorization", tc.authorization(b, revokedSecret))
			p := requireCode(t, res, http.StatusUnauthorized, api.CodeUnauthenticated)
			require.Equal(t, "missing, unknown or revoked API key", p.Detail, "every failure reads the same")
			require.Contains(t, res.header.Get("WWW-Authenticate"), "Bearer")
		})
	}

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.request(t, http.MethodGet, "/v1/admin/tenant", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		got := decode[struct {
			ID   string `json:"id"`
			Slug string `json:"slug"`
		}](t, res)
		require.Equal(t, b.tenant.ID.String(), got.ID)
		require.Equal(t, b.tenant.Slug, got.Slug)
	})

	t.Run("LowerCaseScheme", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.request(t, http.MethodGet, "/v1/admin/tenant", "", "Authorization", "bearer "+b.key)
		require.Equal(t, http.StatusOK, res.status)
	})

	t.Run("PublicOperationsNeedNoKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.request(t, http.MethodGet, "/healthz", "", "Authorization", "")
		require.Equal(t, http.StatusOK, res.status)
	})
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	other := factory.Tenant(t, b.db)
	_, otherSecret := factory.APIKey(t, b.db, other.ID)

	res := b.request(t, http.MethodGet, "/v1/admin/tenant", "", "Authorization", "Bearer "+otherSecret)
	require.Equal(t, http.StatusOK, res.status)
	require.Contains(t, string(res.body), other.ID.String())
	require.NotContains(t, string(res.body), b.tenant.ID.String())

	log := decode[page[struct {
		SubjectID string `json:"subject_id"`
	}]](t, b.request(t, http.MethodGet, "/v1/admin/audit-log", "", "Authorization", "Bearer "+otherSecret))
	for _, e := range log.Items {
		require.NotEqual(t, b.tenant.ID.String(), e.SubjectID, "another tenant's audit log is invisible")
	}
}
