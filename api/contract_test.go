package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	op := operationsOf(item)[method]
	require.NotNil(t, op, "no operation %s %s", method, path)
	documented := op.Responses[strconv.Itoa(res.status)]
	require.NotNil(t, documented, "%s %s answered %d, which it does not document; body: %s", method, path, res.status, res.body)
	contentType := res.header.Get("Content-Type")
	require.Contains(t, documented.Content, contentType, "%s %s %d: undocumented Content-Type", method, path, res.status)
	for name, header := range documented.Headers {
		if header.Ref == "#/components/headers/"+name && spec.Components.Headers[name].Required {
			require.NotEmpty(t, res.header.Get(name), "%s %s %d: documented header %s missing", method, path, res.status, name)
		}
	}
	schema := documented.Content[contentType].Schema
	var body any
	require.NoError(t, json.Unmarshal(res.body, &body))
	result := &huma.ValidateResult{}
	huma.Validate(spec.Components.Schemas, schema, huma.NewPathBuffer(nil, 0), huma.ModeReadFromServer, body, result)
	require.Empty(t, result.Errors, "%s %s %d: body %s", method, path, res.status, res.body)
}

// operationsOf returns a path's operations by method.
func operationsOf(item *huma.PathItem) map[string]*huma.Operation {
	ops := map[string]*huma.Operation{}
	for method, op := range map[string]*huma.Operation{
		http.MethodGet: item.Get, http.MethodPost: item.Post, http.MethodPut: item.Put,
		http.MethodPatch: item.Patch, http.MethodDelete: item.Delete,
	} {
		if op != nil {
			ops[method] = op
		}
	}
	return ops
}

// TestResponsesMatchTheDocument checks answers that broke the published contract: a
// customer's null referred_by documented as a non-null string, a null referral badge
// outside its enum, and machine activation's 201 documented as 200 only (a generated client
// treated a successful activation as a failure).
func TestResponsesMatchTheDocument(t *testing.T) {
	t.Parallel()
	spec := api.Spec()

	t.Run("CustomerWithoutReferrer", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.request(t, http.MethodPost, "/v1/admin/customers", `{"email":"alone@example.com"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		require.Contains(t, string(res.body), `"referred_by":null`)
		requireDocumented(t, spec, http.MethodPost, "/v1/admin/customers", res)
		id := decode[struct{ ID string }](t, res).ID
		requireDocumented(t, spec, http.MethodGet, "/v1/admin/customers/{id}", b.request(t, http.MethodGet, "/v1/admin/customers/"+id, ""))
		requireDocumented(t, spec, http.MethodGet, "/v1/admin/customers", b.request(t, http.MethodGet, "/v1/admin/customers", ""))
	})

	t.Run("ReferrerWithoutBadge", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
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
		t.Parallel()
		b := setup(t)
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
		t.Parallel()
		b := setup(t)
		for _, path := range []string{"/openapi.json", "/openapi-3.0.json"} {
			res := b.request(t, http.MethodGet, path, "")
			require.Equal(t, http.StatusOK, res.status)
			doc := string(res.body)
			require.Contains(t, doc, `"uniqueItems":true`, path)
			require.True(t, strings.Contains(doc, `"enum":["verified_referrer","elite_referrer",null]`), "%s: badge enum with null", path)
		}
	})

	t.Run("WebhooksIn31Only", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
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

// TestContractIsComplete checks what the document promises of every operation, so that a new
// operation cannot leave it out: its servers and tags, explicit security, the headers a
// client sends and gets, the answers middleware gives, consistent cursors and typed import
// rows.
func TestContractIsComplete(t *testing.T) {
	t.Parallel()
	spec := api.Spec()
	raw, err := json.Marshal(spec)
	require.NoError(t, err)
	var doc struct {
		Paths map[string]map[string]map[string]any `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))

	// POSTs that take no Idempotency-Key: a provider's webhook is deduplicated by its
	// delivery id; validation and quotes write nothing.
	notIdempotent := []string{"provider-webhook-btcpay", "license-validate", "tier-upgrade-quote"}
	// Operations that do not read the database, so never answer 503.
	noDatabase := []string{"healthz"}

	require.NotEmpty(t, spec.Servers)
	declared := map[string]bool{}
	for _, tag := range spec.Tags {
		require.NotEmpty(t, tag.Description, "tag %s", tag.Name)
		declared[tag.Name] = true
	}
	used := map[string]bool{}
	var (
		afterMu     sync.Mutex
		afterSchema string
	)
	for path, item := range spec.Paths {
		for method, op := range operationsOf(item) {
			name := op.OperationID
			for _, tag := range op.Tags {
				used[tag] = true
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				require.Len(t, op.Tags, 1)
				require.True(t, declared[op.Tags[0]], "tag %q is not declared", op.Tags[0])

				security, ok := doc.Paths[path][strings.ToLower(method)]["security"]
				require.True(t, ok, "security is not declared")
				if len(op.Security) == 0 {
					require.Equal(t, []any{}, security, "a public operation declares security: []")
				}

				params := map[string]bool{}
				for _, p := range op.Parameters {
					params[p.Ref] = true
					// Every list of Tessera's rows takes a uuid cursor; the jobs list pages
					// River's jobs, whose ids are bigints (its cursor is one, as a string).
					if p.In == "query" && p.Name == "after" && name != "job-list" {
						s, err := json.Marshal(p.Schema)
						require.NoError(t, err)
						afterMu.Lock()
						if afterSchema == "" {
							afterSchema = string(s)
						}
						first := afterSchema
						afterMu.Unlock()
						require.JSONEq(t, first, string(s), "every list operation takes the same cursor")
						page := spec.Components.Schemas.SchemaFromRef(op.Responses["200"].Content["application/json"].Schema.Ref)
						require.Equal(t, p.Schema.Format, page.Properties["next_cursor"].Format, "next_cursor is an after")
					}
				}
				require.True(t, params["#/components/parameters/RequestId"], "X-Request-Id is not declared")
				write := method != http.MethodGet
				idempotent := write && !slices.Contains(notIdempotent, name)
				require.Equal(t, idempotent, params["#/components/parameters/IdempotencyKey"], "Idempotency-Key")

				for code, res := range op.Responses {
					require.NotNil(t, res.Headers["X-Request-Id"], "%s: X-Request-Id", code)
					status, _ := strconv.Atoi(code)
					if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
						require.NotNil(t, res.Headers["Retry-After"], "%s: Retry-After", code)
					}
					if idempotent && status >= 200 && status < 300 {
						require.NotNil(t, res.Headers["Idempotent-Replayed"], "%s: Idempotent-Replayed", code)
					}
				}
				documents := func(status int) bool { return op.Responses[strconv.Itoa(status)] != nil }
				if idempotent {
					require.True(t, documents(http.StatusConflict), "the in-flight 409")
					require.Contains(t, op.Responses["409"].Description, "Idempotency-Key")
				}
				if idempotent {
					require.True(t, documents(http.StatusBadRequest), "400 (an invalid Idempotency-Key)")
				}
				if op.RequestBody != nil {
					require.True(t, documents(http.StatusRequestEntityTooLarge), "413")
					if media := op.RequestBody.Content["application/json"]; media != nil && media.Schema.Ref != "" {
						require.True(t, documents(http.StatusUnsupportedMediaType), "415")
					}
				}
				require.Equal(t, !slices.Contains(noDatabase, name), documents(http.StatusServiceUnavailable), "503")
			})
		}
	}
	for name := range declared {
		require.True(t, used[name], "tag %q is declared but no operation uses it", name)
	}

	t.Run("ImportRowsAreTyped", func(t *testing.T) {
		t.Parallel()
		body := spec.Paths["/v1/admin/upstream-stores/{id}/imports"].Post.RequestBody.Content["application/json"].Schema
		row := spec.Components.Schemas.SchemaFromRef(body.Items.Ref)
		require.NotNil(t, row, "rows are a named schema")
		require.ElementsMatch(t, []string{"external_license_id", "owner", "acquired_at"}, row.Required)
		require.Contains(t, row.Properties, "activations")
		require.NotNil(t, spec.Components.Schemas.SchemaFromRef(row.Properties["activations"].Items.Ref))
	})

	t.Run("MainTypesHaveExamples", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"PurchaseInputBody", "ValidateInputBody", "MachineActivateInputBody", "CustomerCreateInputBody", "License", "Machine", "UpstreamImportRow"} {
			schema := spec.Components.Schemas.Map()[name]
			require.NotNil(t, schema, name)
			examples := 0
			for _, p := range schema.Properties {
				if len(p.Examples) > 0 {
					examples++
				}
			}
			require.Positive(t, examples, "%s has no example", name)
		}
	})
}

// TestMiddlewareAnswersAreDocumented sends what middleware answers (a malformed body, a
// body of another type, a body too large, a bad Idempotency-Key, a replay) and checks that
// each answer is documented, headers included.
func TestMiddlewareAnswersAreDocumented(t *testing.T) {
	t.Parallel()
	spec := api.Spec()
	const path = "/v1/admin/customers"

	for _, c := range []struct {
		name   string
		body   string
		header []string
		status int
	}{
		{"MalformedJSON", `{"email":`, nil, http.StatusBadRequest},
		{"NotJSON", `email=a@example.com`, []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"TooLarge", `{"email":"` + strings.Repeat("a", 1<<20) + `"}`, nil, http.StatusRequestEntityTooLarge},
		{"BadIdempotencyKey", `{"email":"key@example.com"}`, []string{"Idempotency-Key", "has space"}, http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			res := b.request(t, http.MethodPost, path, c.body, c.header...)
			requireProblem(t, res, c.status)
			requireDocumented(t, spec, http.MethodPost, path, res)
		})
	}

	t.Run("Replay", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 2 {
			res := b.request(t, http.MethodPost, path, `{"email":"replay@example.com"}`, "Idempotency-Key", "contract-1", "X-Request-Id", "contract-req")
			require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
			require.Equal(t, "contract-req", res.header.Get("X-Request-Id"))
			requireDocumented(t, spec, http.MethodPost, path, res)
		}
	})
}

// TestDocument30 checks that the served 3.0 document keeps nothing beside a $ref (3.0 ignores
// such keys and its linters refuse them) and has no webhooks section nor the event schemas
// only it used, while the 3.1 document keeps all three; and that every form is served.
func TestDocument30(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var siblings func(v any) int
	siblings = func(v any) int {
		n := 0
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["$ref"]; ok && len(v) > 1 {
				n++
			}
			for _, child := range v {
				n += siblings(child)
			}
		case []any:
			for _, child := range v {
				n += siblings(child)
			}
		}
		return n
	}
	for path, want := range map[string]bool{"/openapi.json": true, "/openapi-3.0.json": false} {
		res := b.request(t, http.MethodGet, path, "", "Authorization", "")
		require.Equal(t, http.StatusOK, res.status, path)
		require.Equal(t, "application/openapi+json", res.header.Get("Content-Type"), path)
		var doc any
		require.NoError(t, json.Unmarshal(res.body, &doc), path)
		require.Equal(t, want, siblings(doc) > 0, path)
		// 3.0 has no webhooks section, nor the event schemas only it used.
		root := doc.(map[string]any)
		_, webhooks := root["webhooks"]
		_, envelope := root["components"].(map[string]any)["schemas"].(map[string]any)["LicenseIssuedWebhook"]
		require.Equal(t, want, webhooks, path)
		require.Equal(t, want, envelope, path)
	}
	for _, path := range []string{"/openapi.yaml", "/openapi-3.0.yaml"} {
		res := b.request(t, http.MethodGet, path, "", "Authorization", "")
		require.Equal(t, http.StatusOK, res.status, path)
		require.Equal(t, "application/openapi+yaml", res.header.Get("Content-Type"), path)
		require.Contains(t, string(res.body), "openapi: 3.", path)
	}
}
