package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/licensekey"
	"github.com/tessera/tessera/sql"
)

type validation struct {
	Valid   bool   `json:"valid"`
	Code    string `json:"code"`
	Message string `json:"message"`
	License *struct {
		ID                 string   `json:"id"`
		PolicySlug         string   `json:"policy_slug"`
		SubscriptionStatus string   `json:"subscription_status"`
		Entitlements       []string `json:"entitlements"`
		ActiveMachines     int      `json:"active_machines"`
	} `json:"license"`
}

// validate sends a validation with the given fields, without an API key.
func (b *bundle) validate(t *testing.T, fields map[string]any) (validation, response) {
	t.Helper()
	body, err := json.Marshal(fields)
	require.NoError(t, err)
	res := b.request(t, http.MethodPost, "/v1/licenses/validate", string(body), "Authorization", "")
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	return decode[validation](t, res), res
}

func TestValidation(t *testing.T) {
	t.Parallel()
	// setupValidation returns a bundle with a product and its recurring policy, a function
	// that subscribes a new customer to it and returns the licence, and one that runs SQL.
	setupValidation := func(t *testing.T) (*bundle, sql.Product, func(*testing.T) sql.License, func(*testing.T, string, ...any)) {
		t.Helper()
		b := setup(t)
		product := factory.Product(t, b.db, b.tenant.ID)
		policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyProduct(product.ID), factory.PolicyEntitlements("export"),
			factory.PolicyMaxMachines(2), factory.PolicyRecurring(30), factory.PolicySlug("pro-monthly"))
		newLicense := func(t *testing.T) sql.License {
			_, l := factory.Subscription(t, b.db, b.tenant.ID, policy.ID, factory.Customer(t, b.db, b.tenant.ID).ID)
			return l
		}
		exec := func(t *testing.T, query string, args ...any) {
			_, err := b.db.Exec(context.Background(), query, args...)
			require.NoError(t, err)
		}
		return b, product, newLicense, exec
	}

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		b, _, newLicense, _ := setupValidation(t)
		l := newLicense(t)
		v, _ := b.validate(t, map[string]any{"key": l.Key, "entitlement": "export"})
		require.True(t, v.Valid)
		require.Equal(t, "VALID", v.Code)
		require.Equal(t, l.ID.String(), v.License.ID)
		require.Equal(t, "pro-monthly", v.License.PolicySlug)
		require.Equal(t, "active", v.License.SubscriptionStatus)
	})

	t.Run("NotFoundAlike", func(t *testing.T) {
		t.Parallel()
		b, _, newLicense, _ := setupValidation(t)
		l := newLicense(t)
		_, foreign, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		parsed, err := licensekey.Parse(l.Key)
		require.NoError(t, err)
		other := factory.Tenant(t, b.db)
		otherLicense := factory.License(t, b.db, other.ID, factory.Policy(t, b.db, other.ID).ID, factory.Customer(t, b.db, other.ID).ID)
		otherParsed, err := licensekey.Parse(otherLicense.Key)
		require.NoError(t, err)

		var bodies []string
		for name, key := range map[string]string{
			"Garbage":        "hello",
			"Empty":          "",
			"Truncated":      l.Key[:len(l.Key)-5],
			"ForgedSigner":   licensekey.Sign(foreign, parsed.Claims),
			"UnknownLicence": licensekey.Sign(foreign, licensekey.Claims{TenantID: b.tenant.ID, LicenseID: factory.Tenant(t, b.db).ID}),
			"OtherTenantsIDsUnderThisTenant": licensekey.Sign(foreign,
				licensekey.Claims{TenantID: b.tenant.ID, LicenseID: otherParsed.LicenseID}),
		} {
			v, res := b.validate(t, map[string]any{"key": key})
			require.False(t, v.Valid, name)
			require.Equal(t, "NOT_FOUND", v.Code, name)
			require.Nil(t, v.License, name)
			bodies = append(bodies, string(res.body))
		}
		for _, body := range bodies {
			require.Equal(t, bodies[0], body, "no answer tells whether anything exists")
		}
	})

	for _, tc := range []struct {
		name   string
		mutate string // SQL on the licence ($1 = licence id)
		code   string
	}{
		{"Suspended", "UPDATE licenses SET status = 'suspended' WHERE id = $1", "SUSPENDED"},
		{"Revoked", "UPDATE licenses SET status = 'revoked' WHERE id = $1", "REVOKED"},
		{"ExpiredStatus", "UPDATE licenses SET status = 'expired' WHERE id = $1", "EXPIRED"},
		{"ExpiryPassed", "UPDATE licenses SET expires_at = '2020-01-01' WHERE id = $1", "EXPIRED"},
		{"SubscriptionLapsed", "UPDATE subscriptions SET status = 'lapsed' WHERE license_id = $1", "EXPIRED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, _, newLicense, exec := setupValidation(t)
			l := newLicense(t)
			exec(t, tc.mutate, l.ID)
			v, _ := b.validate(t, map[string]any{"key": l.Key})
			require.False(t, v.Valid)
			require.Equal(t, tc.code, v.Code)
		})
	}

	t.Run("Machines", func(t *testing.T) {
		t.Parallel()
		b, _, newLicense, exec := setupValidation(t)
		l := newLicense(t)
		v, _ := b.validate(t, map[string]any{"key": l.Key, "fingerprint": "fp-1"})
		require.Equal(t, "FINGERPRINT_MISMATCH", v.Code)

		for _, fp := range []string{"fp-1", "fp-2"} {
			res := b.request(t, http.MethodPost, "/v1/machines/activate", fmt.Sprintf(`{"key":%q,"fingerprint":%q}`, l.Key, fp), "Authorization", "")
			require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		}
		v, _ = b.validate(t, map[string]any{"key": l.Key, "fingerprint": "fp-1"})
		require.Equal(t, "VALID", v.Code)
		require.Equal(t, 2, v.License.ActiveMachines)

		exec(t, "UPDATE licenses SET max_machines = 1 WHERE id = $1", l.ID)
		v, _ = b.validate(t, map[string]any{"key": l.Key, "fingerprint": "fp-1"})
		require.Equal(t, "TOO_MANY_MACHINES", v.Code)
	})

	t.Run("EntitlementMissing", func(t *testing.T) {
		t.Parallel()
		b, _, newLicense, _ := setupValidation(t)
		v, _ := b.validate(t, map[string]any{"key": newLicense(t).Key, "entitlement": "sso"})
		require.Equal(t, "ENTITLEMENT_MISSING", v.Code)
	})

	t.Run("PerpetualFallbackBuilds", func(t *testing.T) {
		t.Parallel()
		b, product, newLicense, exec := setupValidation(t)
		l := newLicense(t)
		cancelledAt := factory.Now.Add(10 * day)
		exec(t, `UPDATE licenses SET expires_at = NULL, subscription_expiration_date = $2, message = 'renew please' WHERE id = $1`, l.ID, cancelledAt)
		exec(t, `UPDATE subscriptions SET status = 'cancelled', cancelled_at = $2 WHERE license_id = $1`, l.ID, cancelledAt)
		factory.ProductRelease(t, b.db, b.tenant.ID, product.ID, "1.0-"+l.ID.String(), cancelledAt.Add(-time.Second))
		factory.ProductRelease(t, b.db, b.tenant.ID, product.ID, "1.1-"+l.ID.String(), cancelledAt)
		factory.ProductRelease(t, b.db, b.tenant.ID, product.ID, "2.0-"+l.ID.String(), cancelledAt.Add(time.Second))
		b.clock.Advance(0)

		for _, tc := range []struct {
			fields map[string]any
			code   string
		}{
			{map[string]any{}, "VALID"},
			{map[string]any{"version": "1.0-" + l.ID.String()}, "VALID"},
			{map[string]any{"version": "1.1-" + l.ID.String()}, "VALID"},
			{map[string]any{"version": "2.0-" + l.ID.String()}, "BUILD_NOT_COVERED"},
			{map[string]any{"version": "9.9-unknown"}, "UNKNOWN_RELEASE"},
			{map[string]any{"build_date": cancelledAt.Add(-day)}, "VALID"},
			{map[string]any{"build_date": cancelledAt}, "VALID"},
			{map[string]any{"build_date": cancelledAt.Add(time.Second)}, "BUILD_NOT_COVERED"},
		} {
			tc.fields["key"] = l.Key
			v, _ := b.validate(t, tc.fields)
			require.Equal(t, tc.code, v.Code, "%v", tc.fields)
			if tc.code != "UNKNOWN_RELEASE" {
				require.Equal(t, "renew please", v.Message, "the licence's message goes with VALID and BUILD_NOT_COVERED")
			}
		}
	})

	t.Run("VersionIgnoredWithoutFallback", func(t *testing.T) {
		t.Parallel()
		b, _, newLicense, _ := setupValidation(t)
		v, _ := b.validate(t, map[string]any{"key": newLicense(t).Key, "version": "9.9-unknown", "build_date": b.clock.Now().Add(1000 * day)})
		require.Equal(t, "VALID", v.Code, "a running subscription covers every build")
	})

	t.Run("BadInput", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, body := range []string{`{}`, `{"key":5}`, `{"key":"x","build_date":"yesterday"}`, `{"key":"x","fingerprint":""}`, `{"key":"x","extra":1}`} {
			res := b.request(t, http.MethodPost, "/v1/licenses/validate", body, "Authorization", "")
			requireProblem(t, res, http.StatusUnprocessableEntity)
		}
	})
}

func TestValidationRateLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	l := factory.License(t, b.db, b.tenant.ID, factory.Policy(t, b.db, b.tenant.ID).ID, factory.Customer(t, b.db, b.tenant.ID).ID)

	// The default per-key burst is 20.
	for range 20 {
		v, _ := b.validate(t, map[string]any{"key": l.Key})
		require.Equal(t, "VALID", v.Code)
	}
	res := b.request(t, http.MethodPost, "/v1/licenses/validate", fmt.Sprintf(`{"key":%q}`, l.Key), "Authorization", "")
	p := requireCode(t, res, http.StatusTooManyRequests, api.CodeRateLimited)
	require.Contains(t, p.Detail, "licence key")
	require.Equal(t, "1", res.header.Get("Retry-After"))

	v, _ := b.validate(t, map[string]any{"key": "another key"})
	require.Equal(t, "NOT_FOUND", v.Code, "other keys are not limited by this one")

	b.clock.Advance(time.Second)
	v, _ = b.validate(t, map[string]any{"key": l.Key})
	require.Equal(t, "VALID", v.Code, "tokens refill with time")
}
