package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
)

// TestProblems sends each class of bad input and expects problem+json, never a 500.
func TestProblems(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		header []string
		status int
		code   api.ProblemCode
	}{
		{"UnknownRoute", http.MethodGet, "/v1/admin/nothing-here", "", nil, http.StatusNotFound, api.CodeNotFound},
		{"UnknownRouteOutsideV1", http.MethodGet, "/favicon.ico", "", nil, http.StatusNotFound, api.CodeNotFound},
		{"WrongMethod", http.MethodPut, "/v1/admin/api-keys", `{}`, nil, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed},
		{"MalformedJSON", http.MethodPost, "/v1/admin/api-keys", `{"name":`, nil, http.StatusBadRequest, api.CodeBadRequest},
		{"NotJSONAtAll", http.MethodPost, "/v1/admin/api-keys", `name=x`, nil, http.StatusBadRequest, api.CodeBadRequest},
		{"WrongType", http.MethodPost, "/v1/admin/api-keys", `{"name":5}`, nil, http.StatusUnprocessableEntity, api.CodeInvalid},
		{"ArrayInsteadOfObject", http.MethodPost, "/v1/admin/api-keys", `["name"]`, nil, http.StatusUnprocessableEntity, api.CodeInvalid},
		{"UnknownField", http.MethodPost, "/v1/admin/api-keys", `{"name":"x","admin":true}`, nil, http.StatusUnprocessableEntity, api.CodeInvalid},
		{"MissingField", http.MethodPost, "/v1/admin/api-keys", `{}`, nil, http.StatusUnprocessableEntity, api.CodeInvalid},
		{"MissingBody", http.MethodPost, "/v1/admin/api-keys", ``, nil, http.StatusBadRequest, api.CodeBadRequest},
		{"TooLong", http.MethodPost, "/v1/admin/api-keys", `{"name":"` + strings.Repeat("x", 201) + `"}`, nil, http.StatusUnprocessableEntity, api.CodeInvalid},
		{"BodyOver1MiB", http.MethodPost, "/v1/admin/api-keys", `{"name":"` + strings.Repeat("x", 1<<20) + `"}`, nil, http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge},
		{"PathNotUUID", http.MethodDelete, "/v1/admin/api-keys/not-a-uuid", "", nil, http.StatusUnprocessableEntity, api.CodeInvalid},
		{"CursorNotUUID", http.MethodGet, "/v1/admin/api-keys?after=zzz", "", nil, http.StatusUnprocessableEntity, api.CodeInvalid},
		{"LimitZero", http.MethodGet, "/v1/admin/api-keys?limit=0", "", nil, http.StatusUnprocessableEntity, api.CodeInvalid},
		{"LimitTooLarge", http.MethodGet, "/v1/admin/api-keys?limit=201", "", nil, http.StatusUnprocessableEntity, api.CodeInvalid},
		{"LimitNotNumber", http.MethodGet, "/v1/admin/audit-log?limit=ten", "", nil, http.StatusUnprocessableEntity, api.CodeInvalid},
		{"UnknownKeyID", http.MethodDelete, "/v1/admin/api-keys/01900000-0000-7000-8000-000000000000", "", nil, http.StatusNotFound, api.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			res := b.request(t, tc.method, tc.path, tc.body, tc.header...)
			requireCode(t, res, tc.status, tc.code)
		})
	}

	t.Run("WrongMethodNamesAllowed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.request(t, http.MethodPatch, "/v1/admin/tenant", "")
		requireCode(t, res, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed)
		require.Contains(t, res.header.Get("Allow"), http.MethodGet)
	})

	t.Run("RequestIDOnEveryAnswer", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
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

// publishedSpec is the OpenAPI document, built once for the checks of every answer.
var publishedSpec = sync.OnceValue(api.Spec)

// codedProblems wraps a server's handler so that every problem+json answer of the API's
// tests is checked against the published Problem schema (its code one of the enum), with a
// type of /problems/<code> and the status of the answer: no error answer lacks a code.
// Handlers run outside the test's goroutine, where a test must not stop, so what is wrong is
// collected and required empty when the test ends.
func codedProblems(t *testing.T, next http.Handler) http.Handler {
	var (
		mu    sync.Mutex
		wrong []string
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		require.Empty(t, wrong, "problem answers off the published Problem schema")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tee := &teeWriter{ResponseWriter: w}
		next.ServeHTTP(tee, r)
		if tee.Header().Get("Content-Type") != "application/problem+json" {
			return
		}
		if why := problemOffSchema(tee.status, tee.body.Bytes()); why != "" {
			mu.Lock()
			defer mu.Unlock()
			wrong = append(wrong, fmt.Sprintf("%s %s: %s: %s", r.Method, r.URL.Path, why, tee.body.Bytes()))
		}
	})
}

// problemOffSchema says what is wrong with a problem+json answer of status, or "" when it is
// valid against the published Problem schema with a type of /problems/<code> and its status.
func problemOffSchema(status int, body []byte) string {
	var decoded any
	if err := json.Unmarshal(body, &decoded); err != nil {
		return err.Error()
	}
	result := &huma.ValidateResult{}
	schema := &huma.Schema{Ref: "#/components/schemas/Problem"}
	huma.Validate(publishedSpec().Components.Schemas, schema, huma.NewPathBuffer(nil, 0), huma.ModeReadFromServer, decoded, result)
	if len(result.Errors) > 0 {
		return fmt.Sprint("off its schema: ", result.Errors)
	}
	var p problem
	if err := json.Unmarshal(body, &p); err != nil {
		return err.Error()
	}
	if p.Type != "/problems/"+string(p.Code) {
		return fmt.Sprintf("type %s, not /problems/%s", p.Type, p.Code)
	}
	if p.Status != status {
		return fmt.Sprintf("status %d in the body, %d answered", p.Status, status)
	}
	return ""
}

// teeWriter keeps a copy of what a handler writes.
type teeWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *teeWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *teeWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
