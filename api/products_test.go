package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

type product struct {
	ID         string     `json:"id"`
	Slug       string     `json:"slug"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	ArchivedAt *time.Time `json:"archived_at"`
}

type release struct {
	ID         string    `json:"id"`
	ProductID  string    `json:"product_id"`
	Version    string    `json:"version"`
	ReleasedAt time.Time `json:"released_at"`
}

// auditEntry is an audit-log entry as listed.
type auditEntry struct {
	Action    string         `json:"action"`
	SubjectID string         `json:"subject_id"`
	Details   map[string]any `json:"details"`
}

// auditActions returns the actions of the tenant's audit log, newest first, up to 200.
func auditActions(t *testing.T, b *bundle) []string {
	t.Helper()
	log := decode[page[auditEntry]](t, b.request(t, http.MethodGet, "/v1/admin/audit-log?limit=200", ""))
	actions := make([]string, len(log.Items))
	for i, e := range log.Items {
		actions[i] = e.Action
	}
	return actions
}

// collect follows next_cursor from path (which has a query string) and returns every item.
func collect[T any](t *testing.T, b *bundle, path string) []T {
	t.Helper()
	var all []T
	cursor := ""
	for range 100 {
		p := decode[page[T]](t, b.request(t, http.MethodGet, path+"&after="+cursor, ""))
		all = append(all, p.Items...)
		if p.NextCursor == "" {
			return all
		}
		cursor = p.NextCursor
	}
	t.Fatal("pagination did not end")
	return nil
}

func TestProducts(t *testing.T) {
	t.Parallel()

	t.Run("CreateGetListUpdateArchive", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		res := b.request(t, http.MethodPost, "/v1/admin/products", `{"slug":"photo-editor","name":"Photo Editor"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		created := decode[product](t, res)
		require.Equal(t, "photo-editor", created.Slug)
		require.Equal(t, "Photo Editor", created.Name)
		require.True(t, created.CreatedAt.Equal(factory.Now), "time comes from the clock")
		require.Nil(t, created.ArchivedAt)

		got := decode[product](t, b.request(t, http.MethodGet, "/v1/admin/products/"+created.ID, ""))
		require.Equal(t, created, got)

		b.clock.Advance(time.Hour)
		res = b.request(t, http.MethodPatch, "/v1/admin/products/"+created.ID, `{"name":"Photo Editor Pro"}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		updated := decode[product](t, res)
		require.Equal(t, "Photo Editor Pro", updated.Name)
		require.Equal(t, "photo-editor", updated.Slug)
		require.True(t, updated.UpdatedAt.Equal(factory.Now.Add(time.Hour)))

		res = b.request(t, http.MethodPatch, "/v1/admin/products/"+created.ID, `{}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.Equal(t, "Photo Editor Pro", decode[product](t, res).Name, "left-out fields keep their value")

		list := decode[page[product]](t, b.request(t, http.MethodGet, "/v1/admin/products", ""))
		require.Len(t, list.Items, 1)

		res = b.request(t, http.MethodPost, "/v1/admin/products/"+created.ID+"/archive", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.NotNil(t, decode[product](t, res).ArchivedAt)
		p := requireCode(t, b.request(t, http.MethodPost, "/v1/admin/products/"+created.ID+"/archive", ""), http.StatusConflict, api.CodeAlreadyArchived)
		require.Contains(t, p.Detail, "already archived")

		require.Empty(t, decode[page[product]](t, b.request(t, http.MethodGet, "/v1/admin/products", "")).Items, "archived products are left out")
		list = decode[page[product]](t, b.request(t, http.MethodGet, "/v1/admin/products?include_archived=true", ""))
		require.Len(t, list.Items, 1)
		require.NotNil(t, decode[product](t, b.request(t, http.MethodGet, "/v1/admin/products/"+created.ID, "")).ArchivedAt,
			"an archived product can still be read")

		require.Equal(t, []string{"product.archive", "product.update", "product.update", "product.create"}, auditActions(t, b)[:4])
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name, method, path, body string
		}{
			{"UppercaseSlug", http.MethodPost, "/v1/admin/products", `{"slug":"Photo","name":"x"}`},
			{"SlugWithSpace", http.MethodPost, "/v1/admin/products", `{"slug":"photo editor","name":"x"}`},
			{"EmptyName", http.MethodPost, "/v1/admin/products", `{"slug":"photo","name":""}`},
			{"MissingName", http.MethodPost, "/v1/admin/products", `{"slug":"photo"}`},
			{"SlugCannotChange", http.MethodPatch, "/v1/admin/products/{id}", `{"slug":"other"}`},
			{"EmptyVersion", http.MethodPost, "/v1/admin/products/{id}/releases", `{"version":""}`},
			{"BadReleasedAt", http.MethodPost, "/v1/admin/products/{id}/releases", `{"version":"1.0","released_at":"yesterday"}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				id := factory.Product(t, b.db, b.tenant.ID).ID.String()
				requireProblem(t, b.request(t, tc.method, strings.Replace(tc.path, "{id}", id, 1), tc.body), http.StatusUnprocessableEntity)
			})
		}
	})

	t.Run("DuplicateSlug", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		factory.Product(t, b.db, b.tenant.ID, func(p *sql.ProductCreateParams) { p.Slug = "taken" })
		p := requireCode(t, b.request(t, http.MethodPost, "/v1/admin/products", `{"slug":"taken","name":"x"}`), http.StatusConflict, api.CodeDuplicate)
		require.Contains(t, p.Detail, "a product with this slug already exists")

		// Another tenant may use the same slug.
		other := factory.Tenant(t, b.db)
		factory.Product(t, b.db, other.ID, func(p *sql.ProductCreateParams) { p.Slug = "mine" })
		res := b.request(t, http.MethodPost, "/v1/admin/products", `{"slug":"mine","name":"x"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	})

	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 5 {
			factory.Product(t, b.db, b.tenant.ID)
		}
		all := collect[product](t, b, "/v1/admin/products?limit=2")
		require.Len(t, all, 5)
		ids := make([]string, len(all))
		for i, p := range all {
			ids[i] = p.ID
		}
		require.IsIncreasing(t, ids)
	})

	t.Run("OtherTenantIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		other := factory.Tenant(t, b.db)
		theirs := factory.Product(t, b.db, other.ID).ID.String()
		for _, tc := range []struct{ method, path, body string }{
			{http.MethodGet, "/v1/admin/products/" + theirs, ""},
			{http.MethodPatch, "/v1/admin/products/" + theirs, `{"name":"mine now"}`},
			{http.MethodPost, "/v1/admin/products/" + theirs + "/archive", ""},
			{http.MethodPost, "/v1/admin/products/" + theirs + "/releases", `{"version":"1.0"}`},
			{http.MethodGet, "/v1/admin/products/" + theirs + "/releases", ""},
		} {
			requireProblem(t, b.request(t, tc.method, tc.path, tc.body), http.StatusNotFound)
		}
		require.Empty(t, decode[page[product]](t, b.request(t, http.MethodGet, "/v1/admin/products?include_archived=true", "")).Items)
	})

	t.Run("Releases", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := factory.Product(t, b.db, b.tenant.ID).ID.String()

		res := b.request(t, http.MethodPost, "/v1/admin/products/"+id+"/releases", `{"version":"1.0.0","released_at":"2025-01-01T00:00:00Z"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		first := decode[release](t, res)
		require.Equal(t, "1.0.0", first.Version)
		require.Equal(t, id, first.ProductID)

		res = b.request(t, http.MethodPost, "/v1/admin/products/"+id+"/releases", `{"version":"2.0.0"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		require.True(t, decode[release](t, res).ReleasedAt.Equal(factory.Now), "released_at defaults to now")

		b.request(t, http.MethodPost, "/v1/admin/products/"+id+"/releases", `{"version":"1.5.0","released_at":"2025-06-01T00:00:00Z"}`)
		b.request(t, http.MethodPost, "/v1/admin/products/"+id+"/releases", `{"version":"1.5.1","released_at":"2025-06-01T00:00:00Z"}`)

		p := requireCode(t, b.request(t, http.MethodPost, "/v1/admin/products/"+id+"/releases", `{"version":"1.0.0"}`), http.StatusConflict, api.CodeDuplicate)
		require.Contains(t, p.Detail, "already has a release with this version")

		all := collect[release](t, b, "/v1/admin/products/"+id+"/releases?limit=1")
		versions := make([]string, len(all))
		for i, r := range all {
			versions[i] = r.Version
		}
		require.Equal(t, []string{"2.0.0", "1.5.1", "1.5.0", "1.0.0"}, versions, "latest released first, ties newest first")
		require.Contains(t, auditActions(t, b), "product_release.create")

		// Another product's releases are its own.
		otherID := factory.Product(t, b.db, b.tenant.ID).ID.String()
		require.Empty(t, decode[page[release]](t, b.request(t, http.MethodGet, "/v1/admin/products/"+otherID+"/releases", "")).Items)
		res = b.request(t, http.MethodPost, "/v1/admin/products/"+otherID+"/releases", `{"version":"1.0.0"}`)
		require.Equal(t, http.StatusCreated, res.status, "versions are unique per product: %s", res.body)
	})
}
