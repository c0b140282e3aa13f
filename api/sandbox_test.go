package api_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/licensekey"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// sandboxClock is where the sandbox tenants of these tests stand: years after the server's
// (manual) clock, so that whichever clock a request used shows.
var sandboxClock = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// setupSandbox returns a bundle whose tenant and key are a sandbox tenant's, its clock at
// sandboxClock, inside a rolled-back transaction.
func setupSandbox(t *testing.T) *bundle {
	t.Helper()
	b := newBundle(t, testdb.Tx(t))
	b.tenant = factory.SandboxTenant(t, b.db, sandboxClock)
	key, secret := factory.APIKey(t, b.db, b.tenant.ID)
	b.key, b.keyID = secret, key.ID
	return b
}

// tenantView is the tenant-get answer.
type tenantView struct {
	Slug    string     `json:"slug"`
	Sandbox bool       `json:"sandbox"`
	Clock   *time.Time `json:"clock"`
}

func TestTenantGetSandbox(t *testing.T) {
	t.Parallel()

	t.Run("Live", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.request(t, http.MethodGet, "/v1/admin/tenant", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.NotContains(t, string(res.body), `"clock"`, "a live tenant has no clock")
		got := decode[tenantView](t, res)
		require.False(t, got.Sandbox)
		require.Nil(t, got.Clock)
	})

	t.Run("Sandbox", func(t *testing.T) {
		t.Parallel()
		b := setupSandbox(t)
		got := decode[tenantView](t, b.request(t, http.MethodGet, "/v1/admin/tenant", ""))
		require.Equal(t, b.tenant.Slug, got.Slug)
		require.True(t, got.Sandbox)
		require.NotNil(t, got.Clock)
		require.True(t, sandboxClock.Equal(*got.Clock))
	})
}

// TestSandboxKeys proves a sandbox tenant's keys say so: its admin keys read tsk_test_ and
// authenticate only as a sandbox's, and its licence keys read TST1. with the marker covered
// by the signature, so that no swap of markers passes for the other kind.
func TestSandboxKeys(t *testing.T) {
	t.Parallel()

	t.Run("AdminKey", func(t *testing.T) {
		t.Parallel()
		b := setupSandbox(t)
		require.Regexp(t, `^tsk_test_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$`, b.key)
		res := b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"ci"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		created := decode[apiKey](t, res)
		require.Regexp(t, `^tsk_test_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$`, created.Key)
		require.Equal(t, created.Prefix, created.Key[:21])
		got := decode[tenantView](t, b.request(t, http.MethodGet, "/v1/admin/tenant", "", "Authorization", "Bearer "+created.Key))
		require.True(t, got.Sandbox)

		live := setup(t)
		require.Regexp(t, `^tsk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$`, live.key, "live keys are as they were")
	})

	t.Run("AdminKeyOfTheOtherKind", func(t *testing.T) {
		t.Parallel()
		b := setupSandbox(t)
		// The sandbox key without its marker is a well-formed live key that names nothing.
		unmarked := "tsk_" + strings.TrimPrefix(b.key, "tsk_test_")
		requireCode(t, b.request(t, http.MethodGet, "/v1/admin/tenant", "", "Authorization", "Bearer "+unmarked), http.StatusUnauthorized, api.CodeUnauthenticated)
		// A key stored under the other kind's scheme (never issued so) is not found either:
		// a live-looking key of a sandbox tenant, a sandbox-looking key of a live tenant.
		live := factory.Tenant(t, b.db)
		for _, tc := range []struct {
			name, scheme string
			tenantID     uuid.UUID
		}{
			{"LiveSchemeOfSandbox", "tsk_", b.tenant.ID},
			{"SandboxSchemeOfLive", "tsk_test_", live.ID},
		} {
			secret := tc.scheme + "0123456789ab_" + strings.Repeat("A", 43)
			hash := sha256.Sum256([]byte(secret))
			_, err := b.db.Exec(t.Context(), "INSERT INTO api_keys (tenant_id, id, name, prefix, key_hash) VALUES ($1, $2, 'forged', $3, $4)",
				tc.tenantID, uuid.New(), secret[:len(secret)-44], hash[:])
			require.NoError(t, err, tc.name)
			requireCode(t, b.request(t, http.MethodGet, "/v1/admin/tenant", "", "Authorization", "Bearer "+secret), http.StatusUnauthorized, api.CodeUnauthenticated)
		}
	})

	t.Run("LicenceKey", func(t *testing.T) {
		t.Parallel()
		b := setupSandbox(t)
		policy := factory.Policy(t, b.db, b.tenant.ID)
		l := factory.License(t, b.db, b.tenant.ID, policy.ID, factory.Customer(t, b.db, b.tenant.ID).ID)
		require.True(t, strings.HasPrefix(l.Key, "TST1."), l.Key)
		v, _ := b.validate(t, map[string]any{"key": l.Key})
		require.Equal(t, "VALID", v.Code)

		// The same claims signed by the tenant's own key as a live key: a valid signature,
		// the wrong marker for the tenant, refused as a forged key is.
		var sealed []byte
		require.NoError(t, b.db.QueryRow(t.Context(), "SELECT private_key_sealed FROM tenant_signing_keys WHERE tenant_id = $1", b.tenant.ID).Scan(&sealed))
		seed, err := factory.Box.Open(sealed, "signing-key/"+b.tenant.ID.String())
		require.NoError(t, err)
		parsed, err := licensekey.Parse(l.Key)
		require.NoError(t, err)
		require.True(t, parsed.Sandbox)
		live := parsed.Claims
		live.Sandbox = false
		for name, key := range map[string]string{
			"MarkerSwapped":  "TSR1." + strings.TrimPrefix(l.Key, "TST1."),
			"ResignedAsLive": licensekey.Sign(ed25519.NewKeyFromSeed(seed), live),
		} {
			v, _ := b.validate(t, map[string]any{"key": key})
			require.Equal(t, "NOT_FOUND", v.Code, name)
			require.Nil(t, v.License, name)
		}

		other := setup(t)
		liveLicense := factory.License(t, other.db, other.tenant.ID, factory.Policy(t, other.db, other.tenant.ID).ID, factory.Customer(t, other.db, other.tenant.ID).ID)
		require.True(t, strings.HasPrefix(liveLicense.Key, "TSR1."), "live licence keys are as they were")
		v, _ = other.validate(t, map[string]any{"key": "TST1." + strings.TrimPrefix(liveLicense.Key, "TSR1.")})
		require.Equal(t, "NOT_FOUND", v.Code)
	})
}

// TestSandboxClock proves a sandbox tenant's requests happen at its clock: what it buys is
// created and issued then, by an admin key and by a buyer alike, and validation of its keys
// answers by its clock, whichever side of real time it stands; live tenants keep real time.
func TestSandboxClock(t *testing.T) {
	t.Parallel()

	t.Run("PurchaseAtTheSandboxClock", func(t *testing.T) {
		t.Parallel()
		b := setupSandbox(t)
		customer := factory.Customer(t, b.db, b.tenant.ID, factory.CustomerEmail("buyer@example.com"))
		factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug("pro"), factory.PolicyPrice(sql.CurrencySAT, 100))
		_, err := sql.New().BalanceCredit(t.Context(), b.db, sql.BalanceCreditParams{
			TenantID: b.tenant.ID, CustomerID: customer.ID, Asset: sql.AssetCredits, Amount: 100, Now: sandboxClock,
		})
		require.NoError(t, err)
		body := fmt.Sprintf(`{"tenant":%q,"policy":"pro","customer_email":"buyer@example.com","assets":[%s]}`, b.tenant.Slug, `"credits"`)

		res := b.request(t, http.MethodPost, "/v1/purchase", body)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		paid := decode[payin](t, res)
		require.Equal(t, "PAID", paid.State)
		require.True(t, strings.HasPrefix(paid.LicenseKey, "TST1."))
		parsed, err := licensekey.Parse(paid.LicenseKey)
		require.NoError(t, err)
		l := decode[struct {
			IssuedAt time.Time `json:"issued_at"`
		}](t, b.request(t, http.MethodGet, "/v1/admin/licenses/"+parsed.LicenseID.String(), ""))
		require.True(t, sandboxClock.Equal(l.IssuedAt), "issued at %s", l.IssuedAt)
		requirePayInCreatedAt(t, b, paid.ID, sandboxClock)

		// A buyer, without the admin key, is found the tenant's clock by the tenant it names.
		res = b.request(t, http.MethodPost, "/v1/purchase", strings.Replace(body, `"credits"`, "", 1), "Authorization", "")
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		requirePayInCreatedAt(t, b, decode[payin](t, res).ID, sandboxClock)
	})

	t.Run("LiveTenantOnRealTime", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		factory.Customer(t, b.db, b.tenant.ID, factory.CustomerEmail("buyer@example.com"))
		factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug("pro"), factory.PolicyPrice(sql.CurrencySAT, 100))
		body := fmt.Sprintf(`{"tenant":%q,"policy":"pro","customer_email":"buyer@example.com","assets":[]}`, b.tenant.Slug)
		res := b.request(t, http.MethodPost, "/v1/purchase", body, "Authorization", "")
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		requirePayInCreatedAt(t, b, decode[payin](t, res).ID, factory.Now)
	})

	// Each licence expires between real time (factory.Now, the server's clock) and its
	// tenant's clock: a sandbox ahead of real time sees it expired, one behind sees it valid,
	// and a live tenant sees it as real time says.
	expiresBetween := func(a, b time.Time) func(*core.LicenseIssueParams) {
		at := a.Add(b.Sub(a) / 2)
		return func(p *core.LicenseIssueParams) { p.ExpiresAt = &at }
	}
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		clock   *time.Time
		expires func(*core.LicenseIssueParams)
		code    string
	}{
		{"SandboxAheadSeesExpired", &sandboxClock, expiresBetween(factory.Now, sandboxClock), "EXPIRED"},
		{"SandboxBehindSeesValid", &past, expiresBetween(past, factory.Now), "VALID"},
		{"LiveSeesValid", nil, expiresBetween(factory.Now, sandboxClock), "VALID"},
		{"LiveSeesExpired", nil, expiresBetween(past, factory.Now), "EXPIRED"},
	} {
		t.Run("Validation"+tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			tenant := b.tenant
			if tc.clock != nil {
				tenant = factory.SandboxTenant(t, b.db, *tc.clock)
			}
			l := factory.License(t, b.db, tenant.ID, factory.Policy(t, b.db, tenant.ID).ID, factory.Customer(t, b.db, tenant.ID).ID, tc.expires)
			v, _ := b.validate(t, map[string]any{"key": l.Key})
			require.Equal(t, tc.code, v.Code)
		})
	}
}

// requirePayInCreatedAt requires that the PayIn was created at want.
func requirePayInCreatedAt(t *testing.T, b *bundle, id string, want time.Time) {
	t.Helper()
	var createdAt time.Time
	require.NoError(t, b.db.QueryRow(t.Context(), "SELECT created_at FROM payins WHERE id = $1", id).Scan(&createdAt))
	require.True(t, want.Equal(createdAt), "PayIn created at %s, want %s", createdAt, want)
}
