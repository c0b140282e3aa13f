package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/webhook"
)

// requireEventsDocumented asserts that every event in db is valid, as the webhook body
// Tessera delivers for it, against the schema the OpenAPI document publishes for its type.
// Every API test's bundle runs it when the test ends: whatever event a test made emit, its
// payload matches the document.
func requireEventsDocumented(t *testing.T, db pg.DB) {
	t.Helper()
	spec := publishedSpec()
	rows, err := db.Query(context.Background(), "SELECT type, occurred_at, data FROM events")
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var p webhook.Payload
		require.NoError(t, rows.Scan(&p.Type, &p.Timestamp, &p.Data))
		hook := spec.Webhooks[p.Type]
		require.NotNil(t, hook, "event type %s has no webhook in the document", p.Type)
		body, err := json.Marshal(p)
		require.NoError(t, err)
		var decoded any
		require.NoError(t, json.Unmarshal(body, &decoded))
		result := &huma.ValidateResult{}
		huma.Validate(spec.Components.Schemas, hook.Post.RequestBody.Content["application/json"].Schema,
			huma.NewPathBuffer(nil, 0), huma.ModeWriteToServer, decoded, result)
		require.Empty(t, result.Errors, "%s webhook off its schema: %s", p.Type, body)
	}
	require.NoError(t, rows.Err())
}

// TestEventsPublished checks the document's webhooks against core.EventCatalog: one per
// event type Emit accepts, each payload type naming its own event type, and each webhook's
// body an envelope of that type only, with the payload type's schema as data.
func TestEventsPublished(t *testing.T) {
	t.Parallel()
	spec := publishedSpec()
	catalog := core.EventCatalog()
	require.Len(t, spec.Webhooks, len(catalog))
	for _, kind := range catalog {
		require.Equal(t, kind.Type, kind.Data.EventType(), "the catalog's payload type of %s", kind.Type)
		hook := spec.Webhooks[kind.Type]
		require.NotNil(t, hook, kind.Type)
		envelope := spec.Components.Schemas.SchemaFromRef(hook.Post.RequestBody.Content["application/json"].Schema.Ref)
		require.Equal(t, []any{kind.Type}, envelope.Properties["type"].Enum)
		require.Equal(t, "#/components/schemas/"+reflect.TypeOf(kind.Data).Name(), envelope.Properties["data"].Ref)
		require.Equal(t, []string{"webhook-id", "webhook-timestamp", "webhook-signature"},
			[]string{hook.Post.Parameters[0].Name, hook.Post.Parameters[1].Name, hook.Post.Parameters[2].Name})
	}
}

// TestReadmeEvents keeps the README's list of event types equal to core.EventCatalog.
func TestReadmeEvents(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("| Event type | Payload (`data`) schema | When |\n|---|---|---|\n")
	for _, kind := range core.EventCatalog() {
		fmt.Fprintf(&b, "| `%s` | `%T` | %s |\n", kind.Type, kind.Data, kind.Description)
	}
	requireReadmeSection(t, "events", strings.ReplaceAll(b.String(), "core.", ""))
}
