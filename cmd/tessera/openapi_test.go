package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/stretchr/testify/require"
)

func TestOpenAPI(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		args     []string
		version  string // a pattern for the document's openapi field
		validate func(t *testing.T, document []byte)
	}{
		{name: "OpenAPI31", args: []string{"openapi"}, version: `^3\.1\.\d+$`, validate: validate31},
		{name: "OpenAPI30", args: []string{"openapi", "--3.0"}, version: `^3\.0\.\d+$`, validate: validate30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			document := []byte(mustExecute(t, tt.args...))

			t.Run("Valid", func(t *testing.T) {
				t.Parallel()
				tt.validate(t, document)
			})

			t.Run("Version", func(t *testing.T) {
				t.Parallel()
				require.Regexp(t, tt.version, parseDocument(t, document).OpenAPI)
			})

			t.Run("OperationIDsAreUnique", func(t *testing.T) {
				t.Parallel()
				seen := map[string]string{}
				for _, op := range parseDocument(t, document).operations(t) {
					require.NotEmpty(t, op.ID, "%s has no operationId", op)
					require.NotContains(t, seen, op.ID, "%s and %s share an operationId", seen[op.ID], op)
					seen[op.ID] = op.String()
				}
				require.NotEmpty(t, seen)
			})

			t.Run("AdminPathsRequireAdminKey", func(t *testing.T) {
				t.Parallel()
				doc := parseDocument(t, document)
				require.Contains(t, doc.Components.SecuritySchemes, "adminKey")
				admin := 0
				for _, op := range doc.operations(t) {
					if !strings.HasPrefix(op.path, "/v1/admin/") {
						continue
					}
					admin++
					// Each entry is an alternative: every one must include adminKey, or the
					// operation could be called without it.
					require.NotEmpty(t, op.Security, "%s has no security requirement", op)
					for _, requirement := range op.Security {
						require.Contains(t, requirement, "adminKey", "%s admits callers without adminKey", op)
					}
				}
				require.Positive(t, admin, "no /v1/admin/ operations")
			})
		})
	}
}

// TestOpenAPIWithoutDatabase proves openapi needs no database. It sets DATABASE_URL, so it
// cannot be parallel.
func TestOpenAPIWithoutDatabase(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	for _, args := range [][]string{{"openapi"}, {"openapi", "--3.0"}} {
		require.NotEmpty(t, parseDocument(t, []byte(mustExecute(t, args...))).Paths)
	}
}

// validate31 checks a document against the OpenAPI 3.1 specification's schema.
func validate31(t *testing.T, document []byte) {
	t.Helper()
	doc, err := libopenapi.NewDocument(document)
	require.NoError(t, err)
	v, errs := validator.NewValidator(doc)
	require.Empty(t, errs)
	valid, problems := v.ValidateDocument()
	for _, p := range problems {
		t.Errorf("invalid OpenAPI 3.1: %s: %s", p.Message, p.Reason)
		for _, f := range p.SchemaValidationErrors {
			t.Errorf("  %s", f.Error())
		}
	}
	require.True(t, valid)
}

// validate30 loads and validates a document as OpenAPI 3.0.
func validate30(t *testing.T, document []byte) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(document)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(t.Context()))
}

// document is the part of an OpenAPI document, 3.0 or 3.1, that the tests inspect.
type document struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
	} `json:"components"`
}

// operation is one operation of a document.
type operation struct {
	method, path string
	ID           string                `json:"operationId"`
	Security     []map[string][]string `json:"security"`
}

func (op operation) String() string { return op.method + " " + op.path }

func parseDocument(t *testing.T, b []byte) document {
	t.Helper()
	var doc document
	require.NoError(t, json.Unmarshal(b, &doc))
	return doc
}

// operations lists the document's operations: the path items' fields named after HTTP
// methods.
func (d document) operations(t *testing.T) []operation {
	t.Helper()
	methods := []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete,
		http.MethodOptions, http.MethodHead, http.MethodPatch, http.MethodTrace}
	var ops []operation
	for path, item := range d.Paths {
		for _, method := range methods {
			raw, ok := item[strings.ToLower(method)]
			if !ok {
				continue
			}
			op := operation{method: method, path: path}
			require.NoError(t, json.Unmarshal(raw, &op), "%s", op)
			ops = append(ops, op)
		}
	}
	return ops
}
