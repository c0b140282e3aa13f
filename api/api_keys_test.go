package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
)

type apiKey struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Prefix    string  `json:"prefix"`
	Key       string  `json:"key"`
	RevokedAt *string `json:"revoked_at"`
}

type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()

	t.Run("CreateListRevoke", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		res := b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"deploy bot"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		created := decode[apiKey](t, res)
		require.Equal(t, "deploy bot", created.Name)
		require.Regexp(t, `^tsk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$`, created.Key)
		require.Equal(t, created.Prefix, created.Key[:16])

		// The new key authenticates as the same tenant.
		res = b.request(t, http.MethodGet, "/v1/admin/tenant", "", "Authorization", "Bearer "+created.Key)
		require.Equal(t, http.StatusOK, res.status)

		list := decode[page[apiKey]](t, b.request(t, http.MethodGet, "/v1/admin/api-keys", ""))
		require.Len(t, list.Items, 2)
		for _, k := range list.Items {
			require.Empty(t, k.Key, "a listed key never shows the secret")
		}

		res = b.request(t, http.MethodDelete, "/v1/admin/api-keys/"+created.ID, "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.NotNil(t, decode[apiKey](t, res).RevokedAt)

		requireCode(t, b.request(t, http.MethodDelete, "/v1/admin/api-keys/"+created.ID, ""), http.StatusConflict, api.CodeAPIKeyRevoked)
		requireCode(t, b.request(t, http.MethodGet, "/v1/admin/tenant", "", "Authorization", "Bearer "+created.Key), http.StatusUnauthorized, api.CodeUnauthenticated)
	})

	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 4 {
			factory.APIKey(t, b.db, b.tenant.ID)
		}
		var seen []string
		cursor := ""
		for {
			p := decode[page[apiKey]](t, b.request(t, http.MethodGet, "/v1/admin/api-keys?limit=2&after="+cursor, ""))
			require.LessOrEqual(t, len(p.Items), 2)
			for _, k := range p.Items {
				seen = append(seen, k.ID)
			}
			if p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
		require.Len(t, seen, 5)
		require.IsIncreasing(t, seen)
	})

	t.Run("OtherTenantsKeyIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		other := factory.Tenant(t, b.db)
		otherKey, _ := factory.APIKey(t, b.db, other.ID)

		requireProblem(t, b.request(t, http.MethodDelete, "/v1/admin/api-keys/"+otherKey.ID.String(), ""), http.StatusNotFound)
		list := decode[page[apiKey]](t, b.request(t, http.MethodGet, "/v1/admin/api-keys", ""))
		require.Len(t, list.Items, 1)
		require.NotEqual(t, otherKey.ID.String(), list.Items[0].ID)
	})

	t.Run("AuditLog", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := decode[apiKey](t, b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":"audited"}`, "X-Request-Id", "req-42"))
		b.request(t, http.MethodDelete, "/v1/admin/api-keys/"+created.ID, "")

		type entry struct {
			Action    string         `json:"action"`
			ActorType string         `json:"actor_type"`
			SubjectID string         `json:"subject_id"`
			Details   map[string]any `json:"details"`
			RequestID string         `json:"request_id"`
		}
		log := decode[page[entry]](t, b.request(t, http.MethodGet, "/v1/admin/audit-log?limit=2", ""))
		require.Len(t, log.Items, 2)
		require.Equal(t, "api_key.revoke", log.Items[0].Action, "newest first")
		require.Equal(t, "api_key.create", log.Items[1].Action)
		require.Equal(t, "api_key", log.Items[1].ActorType)
		require.Equal(t, created.ID, log.Items[1].SubjectID)
		require.Equal(t, "audited", log.Items[1].Details["name"])
		require.Equal(t, "req-42", log.Items[1].RequestID)
		require.NotEmpty(t, log.NextCursor)

		rest := decode[page[entry]](t, b.request(t, http.MethodGet, "/v1/admin/audit-log?after="+log.NextCursor, ""))
		require.Equal(t, []string{"api_key.create", "tenant.create"}, []string{rest.Items[0].Action, rest.Items[1].Action},
			"the fixture's key and tenant come next")
	})

	t.Run("FailedWriteIsNotAudited", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/api-keys", `{"name":""}`), http.StatusUnprocessableEntity)
		log := decode[page[struct {
			Action string `json:"action"`
		}]](t, b.request(t, http.MethodGet, "/v1/admin/audit-log", ""))
		require.Len(t, log.Items, 2, "only the fixture's tenant and key")
	})
}
