package api_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
)

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
