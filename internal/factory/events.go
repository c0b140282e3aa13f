package factory

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// eventSchemas holds the data schema of every event type of core.EventCatalog, built once as
// the OpenAPI document builds them (Huma's default registry of the Go payload type), keyed by
// event type.
var eventSchemas = sync.OnceValues(func() (huma.Registry, map[string]*huma.Schema) {
	registry := huma.NewMapRegistry("#/components/schemas/", huma.DefaultSchemaNamer)
	schemas := map[string]*huma.Schema{}
	for _, kind := range core.EventCatalog() {
		schemas[kind.Type] = registry.Schema(reflect.TypeOf(kind.Data), true, "")
	}
	return registry, schemas
})

// RequireEventsDocumented asserts that every event in db is of a type of core.EventCatalog and
// that its data, as Tessera delivers it in the webhook body, is valid against the schema of
// that type's Go payload — the schema the OpenAPI document publishes as the webhook's data
// (api's TestEventsPublished holds the document to it). Test bundles run it when their test
// ends, so that whatever events a test made emit, their payloads are checked against the
// published contract.
func RequireEventsDocumented(tb testing.TB, db sql.DBTX) {
	tb.Helper()
	registry, schemas := eventSchemas()
	rows, err := db.Query(context.Background(), "SELECT type, data FROM events")
	require.NoError(tb, err)
	defer rows.Close()
	for rows.Next() {
		var (
			eventType string
			data      json.RawMessage
		)
		require.NoError(tb, rows.Scan(&eventType, &data))
		schema := schemas[eventType]
		require.NotNil(tb, schema, "event type %s is not in core.EventCatalog, so has no webhook in the OpenAPI document", eventType)
		var decoded any
		require.NoError(tb, json.Unmarshal(data, &decoded))
		result := &huma.ValidateResult{}
		huma.Validate(registry, schema, huma.NewPathBuffer(nil, 0), huma.ModeWriteToServer, decoded, result)
		require.Empty(tb, result.Errors, "%s webhook data off its published schema: %s", eventType, data)
	}
	require.NoError(tb, rows.Err())
}
