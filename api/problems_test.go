package api_test

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProblems sends each class of bad input and expects problem+json, never a 500.
func TestProblems(t *testing.T) {
	t.Parallel()
	b := setup(t)

	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		header []string
		status int
	}{
		{"UnknownRoute", http.MethodGet, "/v1/admin/nothing-here", "", nil, http.StatusNotFound},
		{"UnknownRouteOutsideV1", http.MethodGet, "/favicon.ico", "", nil, http.StatusNotFound},
		{"WrongMethod", http.MethodPut, "/v1/admin/api-keys", `{}`, nil, http.StatusMethodNotAllowed},
		{"MalformedJSON", http.MethodPost, "/v1/admin/api-keys", `{"name":`, nil, http.StatusBadRequest},
		{"NotJSONAtAll", http.MethodPost, "/v1/admin/api-keys", `name=x`, nil, http.StatusBadRequest},
		{"WrongType", http.MethodPost, "/v1/admin/api-keys", `{"name":5}`, nil, http.StatusUnprocessableEntity},
		{"ArrayInsteadOfObject", http.MethodPost, "/v1/admin/api-keys", `["name"]`, nil, http.StatusUnprocessableEntity},
		{"UnknownField", http.MethodPost, "/v1/admin/api-keys", `{"name":"x","admin":true}`, nil, http.StatusUnprocessableEntity},
		{"MissingField", http.MethodPost, "/v1/admin/api-keys", `{}`, nil, http.StatusUnprocessableEntity},
		{"MissingBody", http.MethodPost, "/v1/admin/api-keys", ``, nil, http.StatusBadRequest},
		{"TooLong", http.MethodPost, "/v1/admin/api-keys", `{"name":"` + strings.Repeat("x", 201) + `"}`, nil, http.StatusUnprocessableEntity},
		{"BodyOver1MiB", http.MethodPost, "/v1/admin/api-keys", `{"name":"` + strings.Repeat("x", 1<<20) + `"}`, nil, http.StatusRequestEntityTooLarge},
		{"PathNotUUID", http.MethodDelete, "/v1/admin/api-keys/not-a-uuid", "", nil, http.StatusUnprocessableEntity},
		{"CursorNotUUID", http.MethodGet, "/v1/admin/api-keys?after=zzz", "", nil, http.StatusUnprocessableEntity},
		{"LimitZero", http.MethodGet, "/v1/admin/api-keys?limit=0", "", nil, http.StatusUnprocessableEntity},
		{"LimitTooLarge", http.MethodGet, "/v1/admin/api-keys?limit=201", "", nil, http.StatusUnprocessableEntity},
		{"LimitNotNumber", http.MethodGet, "/v1/admin/audit-log?limit=ten", "", nil, http.StatusUnprocessableEntity},
		{"UnknownKeyID", http.MethodDelete, "/v1/admin/api-keys/01900000-0000-7000-8000-000000000000", "", nil, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := b.request(t, tc.method, tc.path, tc.body, tc.header...)
			requireProblem(t, res, tc.status)
		})
	}

	t.Run("WrongMethodNamesAllowed", func(t *testing.T) {
		res := b.request(t, http.MethodPatch, "/v1/admin/tenant", "")
		requireProblem(t, res, http.StatusMethodNotAllowed)
		require.Contains(t, res.header.Get("Allow"), http.MethodGet)
	})

	t.Run("RequestIDOnEveryAnswer", func(t *testing.T) {
		res := b.request(t, http.MethodGet, "/nowhere", "")
		require.NotEmpty(t, res.header.Get("X-Request-Id"))
		res = b.request(t, http.MethodGet, "/nowhere", "", "X-Request-Id", "abc-123")
		require.Equal(t, "abc-123", res.header.Get("X-Request-Id"))
		res = b.request(t, http.MethodGet, "/nowhere", "", "X-Request-Id", "bad id\x01")
		require.NotEqual(t, "bad id\x01", res.header.Get("X-Request-Id"), "unsafe ids are replaced")
	})
}

// TestHostileBodies throws random and mangled bodies at a write and requires that none of
// them produces a 500.
func TestHostileBodies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seeds := []string{`{"name":"x"}`, `{"name":null}`, `{"name":"\u0000"}`, `{"name":"x","name":"y"}`, `null`, `true`, `"x"`, `{"name":{"$ne":1}}`, `{"name":"'; DROP TABLE tenants; --"}`}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		body := []byte(seeds[i%len(seeds)])
		for range rng.IntN(4) {
			switch pos := rng.IntN(len(body) + 1); rng.IntN(3) {
			case 0:
				body = append(body[:pos:pos], append([]byte{byte(rng.IntN(256))}, body[pos:]...)...)
			case 1:
				body = body[:pos]
			default:
				if pos < len(body) {
					body[pos] ^= byte(1 << rng.IntN(8))
				}
			}
		}
		res := b.request(t, http.MethodPost, "/v1/admin/api-keys", string(body))
		require.Less(t, res.status, 500, "body %q gave %d: %s", body, res.status, res.body)
		if res.status >= 400 {
			requireProblem(t, res, res.status)
		}
	}
}
