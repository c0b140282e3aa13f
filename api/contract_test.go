package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
)

// requireDocumented asserts that the operation at method and path documents res's status
// and that res's body is valid against the schema it documents for that status.
func requireDocumented(t *testing.T, spec *huma.OpenAPI, method, path string, res response) {
	t.Helper()
	item := spec.Paths[path]
	require.NotNil(t, item, "no path %s", path)
	op := map[string]*huma.Operation{http.MethodGet: item.Get, http.MethodPost: item.Post, http.MethodPatch: item.Patch}[method]
	require.NotNil(t, op, "no operation %s %s", method, path)
	documented := op.Responses[strconv.Itoa(res.status)]
	require.NotNil(t, documented, "%s %s answered %d, which it does not document; body: %s", method, path, res.status, res.body)
	schema := documented.Content["application/json"].Schema
	var body any
	require.NoError(t, json.Unmarshal(res.body, &body))
	result := &huma.ValidateResult{}
	huma.Validate(spec.Components.Schemas, schema, huma.NewPathBuffer(nil, 0), huma.ModeReadFromServer, body, result)
	require.Empty(t, result.Errors, "%s %s %d: body %s", method, path, res.status, res.body)
}

// TestResponsesMatchTheDocument checks answers that broke the published contract: a
// customer's null referred_by documented as a non-null string, a null referral badge
// outside its enum, and machine activation's 201 documented as 200 only (a generated client
// treated a successful activation as a failure).
func TestResponsesMatchTheDocument(t *testing.T) {
	t.Parallel()
	b := setup(t)
	spec := api.Spec()

	t.Run("CustomerWithoutReferrer", func(t *testing.T) {
		res := b.request(t, http.MethodPost, "/v1/admin/customers", `{"email":"alone@example.com"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		require.Contains(t, string(res.body), `"referred_by":null`)
		requireDocumented(t, spec, http.MethodPost, "/v1/admin/customers", res)
		id := decode[struct{ ID string }](t, res).ID
		requireDocumented(t, spec, http.MethodGet, "/v1/admin/customers/{id}", b.request(t, http.MethodGet, "/v1/admin/customers/"+id, ""))
		requireDocumented(t, spec, http.MethodGet, "/v1/admin/customers", b.request(t, http.MethodGet, "/v1/admin/customers", ""))
	})

	t.Run("ReferrerWithoutBadge", func(t *testing.T) {
		referrer := factory.Customer(t, b.db, b.tenant.ID)
		factory.Customer(t, b.db, b.tenant.ID, factory.CustomerReferredBy(referrer.ID))
		res := b.request(t, http.MethodGet, "/v1/admin/customers/"+referrer.ID.String()+"/referrals", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.Contains(t, string(res.body), `"badge":null`)
		requireDocumented(t, spec, http.MethodGet, "/v1/admin/customers/{id}/referrals", res)
		res = b.request(t, http.MethodGet, "/v1/admin/referrals/leaderboard", "")
		requireDocumented(t, spec, http.MethodGet, "/v1/admin/referrals/leaderboard", res)
	})

	t.Run("MachineActivation", func(t *testing.T) {
		policy := factory.Policy(t, b.db, b.tenant.ID)
		l := factory.License(t, b.db, b.tenant.ID, policy.ID, factory.Customer(t, b.db, b.tenant.ID).ID)
		for _, want := range []int{http.StatusCreated, http.StatusOK} {
			res := b.request(t, http.MethodPost, "/v1/machines/activate", fmt.Sprintf(`{"key":%q,"fingerprint":"fp-1"}`, l.Key), "Authorization", "")
			require.Equal(t, want, res.status, "body: %s", res.body)
			requireDocumented(t, spec, http.MethodPost, "/v1/machines/activate", res)
			res = b.request(t, http.MethodPost, "/v1/admin/licenses/"+l.ID.String()+"/machines", `{"fingerprint":"fp-2"}`)
			require.Equal(t, want, res.status, "body: %s", res.body)
			requireDocumented(t, spec, http.MethodPost, "/v1/admin/licenses/{id}/machines", res)
		}
	})

	t.Run("BothDocumentsPublishThem", func(t *testing.T) {
		for _, path := range []string{"/openapi.json", "/openapi-3.0.json"} {
			res := b.request(t, http.MethodGet, path, "")
			require.Equal(t, http.StatusOK, res.status)
			doc := string(res.body)
			require.Contains(t, doc, `"uniqueItems":true`, path)
			require.True(t, strings.Contains(doc, `"enum":["verified_referrer","elite_referrer",null]`), "%s: badge enum with null", path)
		}
	})

	t.Run("WebhooksIn31Only", func(t *testing.T) {
		var doc struct {
			Webhooks map[string]any `json:"webhooks"`
		}
		require.NoError(t, json.Unmarshal(b.request(t, http.MethodGet, "/openapi.json", "").body, &doc))
		require.Len(t, doc.Webhooks, len(core.EventCatalog()), "3.1 publishes every event type")
		res := b.request(t, http.MethodGet, "/openapi-3.0.json", "")
		require.Equal(t, "application/openapi+json", res.header.Get("Content-Type"))
		require.NotContains(t, string(res.body), `"webhooks"`, "OpenAPI 3.0 has no webhooks section")
		require.Contains(t, string(res.body), `"openapi":"3.0.3"`)
		res = b.request(t, http.MethodGet, "/openapi-3.0.yaml", "")
		require.Contains(t, string(res.body), "openapi: 3.0.3")
		require.NotContains(t, string(res.body), "\nwebhooks:")
	})
}
