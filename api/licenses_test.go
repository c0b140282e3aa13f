package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

type license struct {
	ID                         string     `json:"id"`
	Key                        string     `json:"key"`
	Status                     string     `json:"status"`
	PolicyID                   string     `json:"policy_id"`
	CustomerID                 string     `json:"customer_id"`
	ExpiresAt                  *time.Time `json:"expires_at"`
	SubscriptionExpirationDate *time.Time `json:"subscription_expiration_date"`
	Message                    *string    `json:"message"`
	Entitlements               []string   `json:"entitlements"`
	MaxMachines                *int32     `json:"max_machines"`
}

// eventCount counts the tenant's outbox events of a type.
func (b *bundle) eventCount(t *testing.T, eventType string) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.QueryRow(context.Background(),
		"SELECT count(*) FROM events WHERE tenant_id = $1 AND type = $2", b.tenant.ID, eventType).Scan(&n))
	return n
}

func TestLicenseIssue(t *testing.T) {
	t.Parallel()

	t.Run("EntitlementsAndExpiry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug("pro"), factory.PolicyEntitlements("export", "api"),
			factory.PolicyMaxMachines(3))
		addon := factory.Addon(t, b.db, b.tenant.ID, factory.AddonMetadata(map[string]any{"features": []string{"api", "sso"}}))
		customer := factory.Customer(t, b.db, b.tenant.ID)

		res := b.request(t, http.MethodPost, "/v1/admin/licenses",
			fmt.Sprintf(`{"policy_id":%q,"customer_id":%q,"addon_ids":[%q,%q]}`, policy.ID, customer.ID, addon.ID, addon.ID))
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		l := decode[license](t, res)
		require.Equal(t, "active", l.Status)
		require.Equal(t, []string{"api", "export", "sso"}, l.Entitlements, "policy's plus add-on's, once each, sorted")
		require.Equal(t, int32(3), *l.MaxMachines)
		require.Nil(t, l.ExpiresAt, "a one-off policy's licence does not expire")
		require.Nil(t, l.SubscriptionExpirationDate)
		require.Nil(t, l.Message)
		require.Regexp(t, `^TSR1\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{86}$`, l.Key)
		require.Equal(t, 1, b.eventCount(t, "license.issued"))

		got := decode[license](t, b.request(t, http.MethodGet, "/v1/admin/licenses/"+l.ID, ""))
		require.Equal(t, l.Key, got.Key)
	})

	t.Run("RecurringExpiresAfterPeriodAndGrace", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30), factory.PolicyGraceDays(7))
		customer := factory.Customer(t, b.db, b.tenant.ID)
		l := decode[license](t, b.request(t, http.MethodPost, "/v1/admin/licenses", fmt.Sprintf(`{"policy_id":%q,"customer_id":%q}`, policy.ID, customer.ID)))
		require.Equal(t, factory.Now.Add(37*24*time.Hour), l.ExpiresAt.UTC())

		override := factory.Now.Add(time.Hour)
		l = decode[license](t, b.request(t, http.MethodPost, "/v1/admin/licenses",
			fmt.Sprintf(`{"policy_id":%q,"customer_id":%q,"expires_at":%q}`, policy.ID, customer.ID, override.Format(time.RFC3339))))
		require.Equal(t, override, l.ExpiresAt.UTC())
	})

	t.Run("PerpetualAddonLiftsExpiry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug("elite-yearly"), factory.PolicyRecurring(365))
		addon := factory.Addon(t, b.db, b.tenant.ID, factory.AddonPerpetual([]string{"R_Elite"}, "elite-yearly"))
		customer := factory.Customer(t, b.db, b.tenant.ID)
		l := decode[license](t, b.request(t, http.MethodPost, "/v1/admin/licenses",
			fmt.Sprintf(`{"policy_id":%q,"customer_id":%q,"addon_ids":[%q]}`, policy.ID, customer.ID, addon.ID)))
		require.Nil(t, l.ExpiresAt)
		require.Nil(t, l.SubscriptionExpirationDate, "set only on cancellation")
		require.Nil(t, l.Message, "set only on cancellation")
		require.Equal(t, []string{"R_Elite"}, l.Entitlements)
	})

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		// bodies makes a tenant's policy and customer, another tenant's, and add-ons that do
		// not fit, on b, and returns the refused bodies by name.
		bodies := func(t *testing.T, b *bundle) map[string]string {
			t.Helper()
			other := factory.Tenant(t, b.db)
			policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug("standard"))
			customer := factory.Customer(t, b.db, b.tenant.ID)
			otherPolicy := factory.Policy(t, b.db, other.ID)
			otherCustomer := factory.Customer(t, b.db, other.ID)
			foreignAddon := factory.Addon(t, b.db, b.tenant.ID, factory.AddonPerpetual([]string{"X"}, "elite-yearly"))
			otherAddon := factory.Addon(t, b.db, other.ID)
			return map[string]string{
				"OtherTenantsPolicy":     fmt.Sprintf(`{"policy_id":%q,"customer_id":%q}`, otherPolicy.ID, customer.ID),
				"OtherTenantsCustomer":   fmt.Sprintf(`{"policy_id":%q,"customer_id":%q}`, policy.ID, otherCustomer.ID),
				"AddonNotForThisPolicy":  fmt.Sprintf(`{"policy_id":%q,"customer_id":%q,"addon_ids":[%q]}`, policy.ID, customer.ID, foreignAddon.ID),
				"OtherTenantsAddon":      fmt.Sprintf(`{"policy_id":%q,"customer_id":%q,"addon_ids":[%q]}`, policy.ID, customer.ID, otherAddon.ID),
				"UnknownPolicy":          fmt.Sprintf(`{"policy_id":"01900000-0000-7000-8000-000000000000","customer_id":%q}`, customer.ID),
				"MalformedPolicyID":      fmt.Sprintf(`{"policy_id":"nope","customer_id":%q}`, customer.ID),
				"MalformedExpiry":        fmt.Sprintf(`{"policy_id":%q,"customer_id":%q,"expires_at":"tomorrow"}`, policy.ID, customer.ID),
				"UnknownField":           fmt.Sprintf(`{"policy_id":%q,"customer_id":%q,"status":"revoked"}`, policy.ID, customer.ID),
				"MissingCustomer":        fmt.Sprintf(`{"policy_id":%q}`, policy.ID),
				"NullAddonList":          fmt.Sprintf(`{"policy_id":%q,"customer_id":%q,"addon_ids":[null]}`, policy.ID, customer.ID),
				"AddonIDsNotAList":       fmt.Sprintf(`{"policy_id":%q,"customer_id":%q,"addon_ids":"x"}`, policy.ID, customer.ID),
				"ExpiryYear10000":        fmt.Sprintf(`{"policy_id":%q,"customer_id":%q,"expires_at":"10000-01-01T00:00:00Z"}`, policy.ID, customer.ID),
				"ExpiryBeforeChristOnly": fmt.Sprintf(`{"policy_id":%q,"customer_id":%q,"expires_at":"-0001-01-01T00:00:00Z"}`, policy.ID, customer.ID),
			}
		}
		for name := range bodies(t, setup(t)) {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				res := b.request(t, http.MethodPost, "/v1/admin/licenses", bodies(t, b)[name])
				require.Less(t, res.status, 500, "body: %s", res.body)
				requireProblem(t, res, res.status)
				require.Equal(t, 0, b.eventCount(t, "license.issued"), "nothing was issued")
			})
		}
	})
}

func TestLicenseTransitions(t *testing.T) {
	t.Parallel()
	// setupLicense returns a bundle with a licence of its tenant.
	setupLicense := func(t *testing.T) (*bundle, sql.License) {
		t.Helper()
		b := setup(t)
		policy := factory.Policy(t, b.db, b.tenant.ID)
		return b, factory.License(t, b.db, b.tenant.ID, policy.ID, factory.Customer(t, b.db, b.tenant.ID).ID)
	}

	// action → the statuses it is allowed from, and where it leads.
	allowed := map[string]struct {
		from []sql.LicenseStatus
		to   string
	}{
		"suspend":   {[]sql.LicenseStatus{sql.LicenseStatusActive}, "suspended"},
		"reinstate": {[]sql.LicenseStatus{sql.LicenseStatusSuspended}, "active"},
		"revoke":    {[]sql.LicenseStatus{sql.LicenseStatusActive, sql.LicenseStatusSuspended, sql.LicenseStatusExpired}, "revoked"},
	}
	statuses := []sql.LicenseStatus{sql.LicenseStatusActive, sql.LicenseStatusSuspended, sql.LicenseStatusRevoked, sql.LicenseStatusExpired}
	for action, rule := range allowed {
		for _, from := range statuses {
			t.Run(fmt.Sprintf("%sFrom%s", action, from), func(t *testing.T) {
				t.Parallel()
				b, l := setupLicense(t)
				_, err := b.db.Exec(context.Background(), "UPDATE licenses SET status = $1 WHERE tenant_id = $2 AND id = $3", from, b.tenant.ID, l.ID)
				require.NoError(t, err)

				res := b.request(t, http.MethodPost, "/v1/admin/licenses/"+l.ID.String()+"/"+action, "")
				if !contains(rule.from, from) {
					p := requireCode(t, res, http.StatusConflict, api.CodeLicenseStatus)
					require.Contains(t, p.Detail, "is "+string(from))
					return
				}
				require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
				require.Equal(t, rule.to, decode[license](t, res).Status)
			})
		}
	}

	t.Run("EventsAndAudit", func(t *testing.T) {
		t.Parallel()
		b, l := setupLicense(t)
		before := b.eventCount(t, "license.suspended")
		require.Equal(t, http.StatusOK, b.request(t, http.MethodPost, "/v1/admin/licenses/"+l.ID.String()+"/suspend", "").status)
		require.Equal(t, before+1, b.eventCount(t, "license.suspended"))
		var audited int
		require.NoError(t, b.db.QueryRow(context.Background(),
			"SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'license.suspend' AND subject_id = $2", b.tenant.ID, l.ID.String()).Scan(&audited))
		require.Equal(t, 1, audited)
	})

	t.Run("UnknownLicenceIs404", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/licenses/01900000-0000-7000-8000-000000000000/revoke", ""), http.StatusNotFound)
	})
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func TestLicenseList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	policyA := factory.Policy(t, b.db, b.tenant.ID)
	policyB := factory.Policy(t, b.db, b.tenant.ID)
	alice := factory.Customer(t, b.db, b.tenant.ID)
	bob := factory.Customer(t, b.db, b.tenant.ID)
	a1 := factory.License(t, b.db, b.tenant.ID, policyA.ID, alice.ID)
	factory.License(t, b.db, b.tenant.ID, policyB.ID, alice.ID)
	b1 := factory.License(t, b.db, b.tenant.ID, policyA.ID, bob.ID)
	b.request(t, http.MethodPost, "/v1/admin/licenses/"+b1.ID.String()+"/suspend", "")

	ids := func(query string) []string {
		var out []string
		for _, l := range decode[page[license]](t, b.request(t, http.MethodGet, "/v1/admin/licenses"+query, "")).Items {
			out = append(out, l.ID)
		}
		return out
	}
	require.Len(t, ids(""), 3)
	require.Equal(t, []string{b1.ID.String(), a1.ID.String()}, ids("?policy_id="+policyA.ID.String()), "newest first")
	require.Len(t, ids("?customer_id="+alice.ID.String()), 2)
	require.Equal(t, []string{b1.ID.String()}, ids("?status=suspended"))
	require.Equal(t, []string{b1.ID.String()}, ids("?status=suspended&customer_id="+bob.ID.String()))
	requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/licenses?status=lost", ""), http.StatusUnprocessableEntity)
}

func TestLicenseTenantIsolation(t *testing.T) {
	t.Parallel()
	for _, r := range []struct{ method, path, body string }{
		{http.MethodGet, "", ""},
		{http.MethodPost, "/suspend", ""},
		{http.MethodPost, "/reinstate", ""},
		{http.MethodPost, "/revoke", ""},
		{http.MethodGet, "/machines", ""},
		{http.MethodPost, "/machines", `{"fingerprint":"fp"}`},
		{http.MethodDelete, "/machines/01900000-0000-7000-8000-000000000000", ""},
	} {
		t.Run(r.method+"/v1/admin/licenses/{other}"+r.path, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			other := factory.Tenant(t, b.db)
			theirs := factory.License(t, b.db, other.ID, factory.Policy(t, b.db, other.ID).ID, factory.Customer(t, b.db, other.ID).ID)
			requireProblem(t, b.request(t, r.method, "/v1/admin/licenses/"+theirs.ID.String()+r.path, r.body), http.StatusNotFound)
			require.Empty(t, decode[page[license]](t, b.request(t, http.MethodGet, "/v1/admin/licenses", "")).Items)
		})
	}
}
