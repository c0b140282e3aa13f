package api_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/licensekey"
)

// sandboxResetView is the sandbox-reset answer.
type sandboxResetView struct {
	Tenant  tenantView       `json:"tenant"`
	Deleted map[string]int64 `json:"deleted"`
	Total   int64            `json:"deleted_total"`
}

func TestSandboxResetAPI(t *testing.T) {
	t.Parallel()

	t.Run("Sandbox", func(t *testing.T) {
		t.Parallel()
		b := setupSandbox(t)
		factory.TenantData(t, b.db, b.tenant.ID)
		var customers int64
		require.NoError(t, b.db.QueryRow(context.Background(), "SELECT count(*) FROM customers WHERE tenant_id = $1", b.tenant.ID).Scan(&customers))
		restart := sandboxClock.AddDate(0, -1, 0)
		res := b.request(t, http.MethodPost, "/v1/admin/sandbox/reset", `{"clock":"`+restart.Format(time.RFC3339)+`"}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		got := decode[sandboxResetView](t, res)
		require.True(t, got.Tenant.Sandbox)
		require.True(t, restart.Equal(*got.Tenant.Clock), "the clock restarts where asked, before the old one")
		require.Equal(t, customers, got.Deleted["customers"])
		var total int64
		for _, n := range got.Deleted {
			total += n
		}
		require.Equal(t, total, got.Total)

		left := decode[struct {
			Items []any `json:"items"`
		}](t, b.request(t, http.MethodGet, "/v1/admin/customers", ""))
		require.Empty(t, left.Items)
		tenant := decode[tenantView](t, b.request(t, http.MethodGet, "/v1/admin/tenant", ""))
		require.True(t, restart.Equal(*tenant.Clock), "the key still works, at the restarted clock")

		res = b.request(t, http.MethodPost, "/v1/admin/sandbox/reset", "")
		require.Equal(t, http.StatusOK, res.status, "no body: the clock stays; body: %s", res.body)
		again := decode[sandboxResetView](t, res)
		require.True(t, restart.Equal(*again.Tenant.Clock))
		require.Equal(t, map[string]int64{"audit_log": 1}, again.Deleted, "only the first reset's audit entry was left")
	})

	t.Run("Live", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		customer := factory.Customer(t, b.db, b.tenant.ID)
		res := b.request(t, http.MethodPost, "/v1/admin/sandbox/reset", `{}`)
		requireCode(t, res, http.StatusConflict, api.CodeSandboxOnly)
		var n int
		require.NoError(t, b.db.QueryRow(context.Background(), "SELECT count(*) FROM customers WHERE tenant_id = $1 AND id = $2", b.tenant.ID, customer.ID).Scan(&n))
		require.Equal(t, 1, n, "nothing deleted")
	})

	t.Run("BadClock", func(t *testing.T) {
		t.Parallel()
		b := setupSandbox(t)
		requireCode(t, b.request(t, http.MethodPost, "/v1/admin/sandbox/reset", `{"clock":"yesterday"}`), http.StatusUnprocessableEntity, api.CodeInvalid)
	})
}

// sandboxCloneView is the sandbox-clone answer.
type sandboxCloneView struct {
	Tenant struct {
		ID      uuid.UUID  `json:"id"`
		Slug    string     `json:"slug"`
		Sandbox bool       `json:"sandbox"`
		Clock   *time.Time `json:"clock"`
	} `json:"tenant"`
	APIKey struct {
		Key string `json:"key"`
	} `json:"api_key"`
	Copied map[string]int64 `json:"copied"`
}

// idsAndKeys are what differs between a tenant and its clone by design: ids (PayIns', also
// in a sandbox invoice's id, and those of rows written after the clone) and licence keys; cloneSuffix is what a clone adds
// to a provider invoice's id, "~" and its tenant id.
var (
	idsAndKeys  = regexp.MustCompile(`TST1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}`)
	cloneSuffix = regexp.MustCompile(`~[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
)

// sandboxState is what a tenant's admin API shows of its data, ids and licence keys blanked.
func (b *bundle) sandboxState(t *testing.T, key string) string {
	t.Helper()
	var state strings.Builder
	for _, path := range []string{"/v1/admin/customers", "/v1/admin/licenses", "/v1/admin/subscriptions", "/v1/admin/payins",
		"/v1/admin/products", "/v1/admin/policies", "/v1/admin/webhook-endpoints", "/v1/admin/upstream-stores"} {
		res := b.request(t, http.MethodGet, path+"?limit=100", "", "Authorization", "Bearer "+key)
		require.Equal(t, http.StatusOK, res.status, "%s: %s", path, res.body)
		state.WriteString(path + " " + idsAndKeys.ReplaceAllString(cloneSuffix.ReplaceAllString(string(res.body), ""), "<id>") + "\n")
	}
	return state.String()
}

// TestSandboxCloneAPI clones a filled sandbox: both show the same state (ids and keys
// aside), the same writes on both give the same state, a write on the clone leaves the
// source as it was, and the clone's licence keys validate online and verify offline with the
// clone's own public key.
func TestSandboxCloneAPI(t *testing.T) {
	t.Parallel()

	t.Run("Sandbox", func(t *testing.T) {
		t.Parallel()
		b := setupSandbox(t)
		// Restart the sandbox at factory.Now, when TenantData's rows happen, so that the
		// upgrade's sandbox invoice is still open.
		res := b.request(t, http.MethodPost, "/v1/admin/sandbox/reset", `{"clock":"`+factory.Now.Format(time.RFC3339)+`"}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		factory.TenantData(t, b.db, b.tenant.ID)
		res = b.request(t, http.MethodPost, "/v1/admin/sandbox/clone", `{"slug":"`+b.tenant.Slug+`-copy","name":"Copy"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		clone := decode[sandboxCloneView](t, res)
		require.True(t, clone.Tenant.Sandbox)
		require.True(t, factory.Now.Equal(*clone.Tenant.Clock), "the clone stands at the source's clock")
		require.Regexp(t, `^tsk_test_`, clone.APIKey.Key)
		require.Positive(t, clone.Copied["licenses"])
		require.Equal(t, b.sandboxState(t, b.key), b.sandboxState(t, clone.APIKey.Key))

		var policyID uuid.UUID
		require.NoError(t, b.db.QueryRow(context.Background(), "SELECT id FROM policies WHERE tenant_id = $1 ORDER BY id LIMIT 1", b.tenant.ID).Scan(&policyID))
		for _, key := range []string{b.key, clone.APIKey.Key} {
			res := b.request(t, http.MethodPost, "/v1/admin/customers", `{"email":"same@example.com","invite_code":"SAME-1"}`, "Authorization", "Bearer "+key)
			require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
			customer := decode[struct {
				ID uuid.UUID `json:"id"`
			}](t, res)
			res = b.request(t, http.MethodPost, "/v1/admin/licenses", fmt.Sprintf(`{"policy_id":%q,"customer_id":%q}`, policyID, customer.ID), "Authorization", "Bearer "+key)
			require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
			res = b.request(t, http.MethodPost, "/v1/admin/customers/"+customer.ID.String()+"/credits", `{"amount":700}`, "Authorization", "Bearer "+key)
			require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		}
		for _, key := range []string{b.key, clone.APIKey.Key} {
			payins := decode[struct {
				Items []struct {
					Invoice *struct {
						Provider    string `json:"provider"`
						InvoiceID   string `json:"invoice_id"`
						CheckoutURL string `json:"checkout_url"`
					} `json:"invoice"`
				} `json:"items"`
			}](t, b.request(t, http.MethodGet, "/v1/admin/payins?limit=100", "", "Authorization", "Bearer "+key))
			paid := 0
			for _, p := range payins.Items {
				if p.Invoice == nil || p.Invoice.Provider != "sandbox" {
					continue
				}
				require.Equal(t, "/v1/sandbox/invoices/"+p.Invoice.InvoiceID, p.Invoice.CheckoutURL)
				res := b.request(t, http.MethodPost, p.Invoice.CheckoutURL+"/pay", "", "Authorization", "")
				require.Equal(t, http.StatusOK, res.status, "each pays its own sandbox invoice: %s", res.body)
				paid++
			}
			require.Equal(t, 1, paid, "the upgrade's sandbox invoice")
		}
		source := b.sandboxState(t, b.key)
		require.Equal(t, source, b.sandboxState(t, clone.APIKey.Key), "the same writes give the same state")

		res = b.request(t, http.MethodPost, "/v1/admin/customers", `{"email":"clone-only@example.com"}`, "Authorization", "Bearer "+clone.APIKey.Key)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		require.Equal(t, source, b.sandboxState(t, b.key), "a write on the clone leaves the source as it was")

		public := decode[struct {
			PublicKey []byte `json:"public_key"`
		}](t, b.request(t, http.MethodGet, "/v1/tenants/"+clone.Tenant.Slug+"/public-key", ""))
		licenses := decode[struct {
			Items []struct {
				ID  string `json:"id"`
				Key string `json:"key"`
			} `json:"items"`
		}](t, b.request(t, http.MethodGet, "/v1/admin/licenses?limit=100", "", "Authorization", "Bearer "+clone.APIKey.Key))
		require.NotEmpty(t, licenses.Items)
		for _, l := range licenses.Items {
			parsed, err := licensekey.Parse(l.Key)
			require.NoError(t, err)
			require.Equal(t, clone.Tenant.ID, parsed.TenantID)
			require.NoError(t, parsed.Verify(public.PublicKey), "the clone's key verifies with the clone's public key")
			v, _ := b.validate(t, map[string]any{"key": l.Key})
			require.Equal(t, l.ID, v.License.ID, "validation finds the clone's licence: %+v", v)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireCode(t, b.request(t, http.MethodPost, "/v1/admin/sandbox/clone", `{"slug":"live-copy","name":"Copy"}`), http.StatusConflict, api.CodeSandboxOnly)
		sandbox := setupSandbox(t)
		requireCode(t, sandbox.request(t, http.MethodPost, "/v1/admin/sandbox/clone", `{"slug":"`+sandbox.tenant.Slug+`","name":"Copy"}`), http.StatusConflict, api.CodeDuplicate)
		requireCode(t, sandbox.request(t, http.MethodPost, "/v1/admin/sandbox/clone", `{"slug":"Not A Slug","name":"Copy"}`), http.StatusUnprocessableEntity, api.CodeInvalid)
	})
}
