package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

// errorsOf is a problem's list of errors.
type errorsOf struct {
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
		Value    any    `json:"value"`
	} `json:"errors"`
}

// TestUniqueItems sends repeated, object, array and mixed items to every array whose items
// must be unique. Huma's own check answered N repeats with N-1 errors that each echoed the
// array (a 25 KB purchase got a 101 MB answer) and panicked on unhashable items (500).
func TestUniqueItems(t *testing.T) {
	t.Parallel()
	type request struct {
		name, method, path string
		body               func(string) string
	}
	// setupRequests returns a bundle with a product and a policy, and the requests that take
	// a list on it.
	setupRequests := func(t *testing.T) (*bundle, []request) {
		t.Helper()
		b := setup(t)
		productID := factory.Product(t, b.db, b.tenant.ID).ID
		policyID := factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug("pro"), factory.PolicyPrice(sql.CurrencySAT, 100)).ID
		purchase := func(assets string) string {
			return fmt.Sprintf(`{"tenant":%q,"policy":"pro","customer_email":"buyer@example.com","assets":%s}`, b.tenant.Slug, assets)
		}
		policyCreate := func(entitlements string) string {
			return fmt.Sprintf(`{"product_id":%q,"slug":"p2","name":"P","listed_currency":"SAT","listed_value":1,"is_recurring":false,"entitlements":%s}`, productID, entitlements)
		}
		retry := "/v1/payins/01900000-0000-7000-8000-000000000000/retry"
		return b, []request{
			{"Purchase", http.MethodPost, "/v1/purchase", purchase},
			{"PayInRetry", http.MethodPost, retry, func(a string) string { return `{"assets":` + a + `}` }},
			{"PolicyCreate", http.MethodPost, "/v1/admin/policies", policyCreate},
			{"PolicyUpdate", http.MethodPatch, "/v1/admin/policies/" + policyID.String(), func(e string) string { return `{"entitlements":` + e + `}` }},
		}
	}

	_, requests := setupRequests(t)
	for i, r := range requests {
		t.Run(r.name+"Repeated", func(t *testing.T) {
			t.Parallel()
			b, requests := setupRequests(t)
			r := requests[i]
			item := `"credits"`
			if strings.HasPrefix(r.name, "Policy") {
				item = `"export"`
			}
			res := b.request(t, r.method, r.path, r.body("["+item+","+item+"]"))
			requireProblem(t, res, http.StatusUnprocessableEntity)
			errs := decode[errorsOf](t, res).Errors
			require.Len(t, errs, 1, "body: %s", res.body)
			require.Equal(t, "items must be unique: item 1 repeats item 0", errs[0].Message)
			require.Regexp(t, `^body\.(assets|entitlements)$`, errs[0].Location)

			many := "[" + item + strings.Repeat(","+item, 5000) + "]" // ~50 KB
			res = b.request(t, r.method, r.path, r.body(many))
			requireProblem(t, res, http.StatusUnprocessableEntity)
			require.Less(t, len(res.body), 2048, "one error for the repeats and one for maxItems, without the array")
		})
		for _, items := range []string{`[{}]`, `[["x"]]`, `[1,true,{}]`, `[null]`, `[{"a":[{}]},"credits","credits"]`} {
			t.Run(r.name+"Items"+items, func(t *testing.T) {
				t.Parallel()
				b, requests := setupRequests(t)
				r := requests[i]
				requireProblem(t, b.request(t, r.method, r.path, r.body(items)), http.StatusUnprocessableEntity)
			})
		}
	}

	t.Run("PublishedButNotHumas", func(t *testing.T) {
		t.Parallel()
		doc, err := json.Marshal(api.Spec())
		require.NoError(t, err)
		var spec struct {
			Components struct {
				Schemas map[string]struct {
					Properties map[string]map[string]any `json:"properties"`
				} `json:"schemas"`
			} `json:"components"`
		}
		require.NoError(t, json.Unmarshal(doc, &spec))
		for schema, property := range map[string]string{
			"PurchaseInputBody": "assets", "PayInRetryInputBody": "assets",
			"PolicyCreateInputBody": "entitlements", "PolicyUpdateInputBody": "entitlements",
		} {
			require.Equal(t, true, spec.Components.Schemas[schema].Properties[property]["uniqueItems"], "%s.%s", schema, property)
		}
		// No schema asks Huma's validator to check uniqueItems: use api.UniqueStrings.
		var walk func(where string, s *huma.Schema)
		walk = func(where string, s *huma.Schema) {
			if s == nil {
				return
			}
			require.False(t, s.UniqueItems, "%s uses Huma's uniqueItems; declare it as api.UniqueStrings", where)
			walk(where+"[]", s.Items)
			for name, p := range s.Properties {
				walk(where+"."+name, p)
			}
		}
		for name, s := range api.Spec().Components.Schemas.Map() {
			walk(name, s)
		}
	})
}

// TestErrorsBounded sends requests that produce thousands of errors or echo large values and
// expects every answer to list at most 20 errors, say how many there were, and stay under
// 64 KB.
func TestErrorsBounded(t *testing.T) {
	t.Parallel()
	const maxBody = 64 << 10
	huge := strings.Repeat("x", 900_000)

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		many                     bool // more than 20 errors
	}{
		{"ThousandsOfBadItems", http.MethodPost, "/v1/purchase",
			`{"tenant":"t","policy":"p","assets":[1` + strings.Repeat(`,1`, 4999) + `]}`, http.StatusUnprocessableEntity, true},
		{"ThousandsOfBadObjects", http.MethodPost, "/v1/purchase",
			`{"tenant":"t","policy":"p","addon_ids":[{}` + strings.Repeat(`,{"a":[1,2,3]}`, 40) + `]}`, http.StatusUnprocessableEntity, true},
		{"TooManyObjectsEchoed", http.MethodPost, "/v1/purchase",
			`{"tenant":"t","policy":"p","addon_ids":[` + strings.Repeat(`{"a":"b"},`, 60) + `{}]}`, http.StatusUnprocessableEntity, true},
		{"ManyUnknownFields", http.MethodPost, "/v1/admin/api-keys", `{"name":"x"` + strings.Repeat(`,"`+strings.Repeat("k", 200)+`":1`, 1000) + `}`, http.StatusUnprocessableEntity, false},
		{"HugeStringEchoed", http.MethodPost, "/v1/admin/api-keys", `{"name":"` + huge + `"}`, http.StatusUnprocessableEntity, false},
		{"HugeKeyEchoed", http.MethodPost, "/v1/admin/api-keys", `{"name":"x","` + huge + `":1}`, http.StatusUnprocessableEntity, false},
		{"MalformedHugeBody", http.MethodPost, "/v1/admin/api-keys", `{"name":"` + huge, http.StatusBadRequest, false},
		{"HugeInvalidEmail", http.MethodPost, "/v1/admin/customers", `{"email":"` + strings.Repeat("<", 300) + `"}`, http.StatusUnprocessableEntity, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			res := b.request(t, tc.method, tc.path, tc.body)
			requireProblem(t, res, tc.status)
			require.LessOrEqual(t, len(res.body), maxBody)
			p := decode[errorsOf](t, res)
			require.LessOrEqual(t, len(p.Errors), 20)
			if tc.many {
				require.Len(t, p.Errors, 20)
				require.Regexp(t, `^validation failed \(\d{2,} errors; the first 20 are listed\)$`, p.Detail)
			}
		})
	}
}
