package api

import (
	"reflect"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
)

// uuidSchema is how the OpenAPI document describes every uuid.UUID, in requests and
// responses: a string with format uuid (Huma alone publishes a plain string, so generated
// clients could not type ids, and a malformed id was refused only when decoded).
type uuidSchema string

// Schema is a string in UUID format.
func (uuidSchema) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeString, Format: "uuid"}
}

// describeUUIDs makes r describe uuid.UUID as uuidSchema.
func describeUUIDs(r huma.Registry) {
	r.RegisterTypeAlias(reflect.TypeFor[uuid.UUID](), reflect.TypeFor[uuidSchema]())
}
