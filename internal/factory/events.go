package factory

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/webhook"
	"github.com/tessera/tessera/sql"
)

// spec is the published OpenAPI document, built once for every test that checks against it.
var spec = sync.OnceValue(api.Spec)

// RequireEventsDocumented asserts that every event in db is valid, as the webhook body
// Tessera delivers for it (webhook.Payload of the stored type, time and data), against the
// schema the OpenAPI document publishes for its type in its webhooks. Test bundles run it
// when their test ends, so that whatever events a test made emit, their payloads are checked
// against the published contract.
func RequireEventsDocumented(tb testing.TB, db sql.DBTX) {
	tb.Helper()
	doc := spec()
	rows, err := db.Query(context.Background(), "SELECT type, occurred_at, data FROM events")
	require.NoError(tb, err)
	defer rows.Close()
	for rows.Next() {
		var p webhook.Payload
		require.NoError(tb, rows.Scan(&p.Type, &p.Timestamp, &p.Data))
		hook := doc.Webhooks[p.Type]
		require.NotNil(tb, hook, "event type %s has no webhook in the OpenAPI document", p.Type)
		body, err := json.Marshal(p)
		require.NoError(tb, err)
		var decoded any
		require.NoError(tb, json.Unmarshal(body, &decoded))
		result := &huma.ValidateResult{}
		huma.Validate(doc.Components.Schemas, hook.Post.RequestBody.Content["application/json"].Schema,
			huma.NewPathBuffer(nil, 0), huma.ModeWriteToServer, decoded, result)
		require.Empty(tb, result.Errors, "%s webhook off its published schema: %s", p.Type, body)
	}
	require.NoError(tb, rows.Err())
}
