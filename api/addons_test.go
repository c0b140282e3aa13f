package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

type addon struct {
	ID         string         `json:"id"`
	Slug       string         `json:"slug"`
	Name       string         `json:"name"`
	Metadata   map[string]any `json:"metadata"`
	ArchivedAt *string        `json:"archived_at"`
}

func TestAddons(t *testing.T) {
	t.Parallel()

	t.Run("CreateGetListUpdateArchive", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		res := b.request(t, http.MethodPost, "/v1/admin/addons",
			`{"slug":"perpetual-elite","name":"Perpetual Elite","metadata":{"perpetual":true,"features":["R_Elite"],"allowed_ids":["elite-yearly"]}}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		created := decode[addon](t, res)
		require.Equal(t, "perpetual-elite", created.Slug)
		require.Equal(t, map[string]any{"perpetual": true, "features": []any{"R_Elite"}, "allowed_ids": []any{"elite-yearly"}}, created.Metadata)
		require.Equal(t, created, decode[addon](t, b.request(t, http.MethodGet, "/v1/admin/addons/"+created.ID, "")))

		res = b.request(t, http.MethodPatch, "/v1/admin/addons/"+created.ID,
			`{"metadata":{"perpetual":true,"features":["R_Elite"],"allowed_ids":["elite-yearly","elite-monthly"],"note":"kept"}}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		updated := decode[addon](t, res)
		require.Equal(t, []any{"elite-yearly", "elite-monthly"}, updated.Metadata["allowed_ids"])
		require.Equal(t, "kept", updated.Metadata["note"], "other keys are free")
		require.Equal(t, "Perpetual Elite", updated.Name)

		res = b.request(t, http.MethodPatch, "/v1/admin/addons/"+created.ID, `{"name":"Elite forever"}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.Equal(t, "Elite forever", decode[addon](t, res).Name)
		require.Equal(t, updated.Metadata, decode[addon](t, res).Metadata, "left-out metadata is kept")

		res = b.request(t, http.MethodPost, "/v1/admin/addons/"+created.ID+"/archive", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.NotNil(t, decode[addon](t, res).ArchivedAt)
		requireCode(t, b.request(t, http.MethodPost, "/v1/admin/addons/"+created.ID+"/archive", ""), http.StatusConflict, api.CodeAlreadyArchived)
		require.Empty(t, decode[page[addon]](t, b.request(t, http.MethodGet, "/v1/admin/addons", "")).Items)
		require.Len(t, decode[page[addon]](t, b.request(t, http.MethodGet, "/v1/admin/addons?include_archived=true", "")).Items, 1)

		require.Equal(t, []string{"addon.archive", "addon.update", "addon.update", "addon.create"}, auditActions(t, b)[:4])
	})

	t.Run("FreeMetadata", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, body := range []string{
			`{"slug":"plain","name":"Plain"}`,
			`{"slug":"colour","name":"Colour","metadata":{"colour":"red","seats":3}}`,
			`{"slug":"not-perpetual","name":"Not perpetual","metadata":{"perpetual":false}}`,
			`{"slug":"perpetual-empty","name":"Nothing allowed yet","metadata":{"perpetual":true,"features":[],"allowed_ids":[]}}`,
		} {
			res := b.request(t, http.MethodPost, "/v1/admin/addons", body)
			require.Equal(t, http.StatusCreated, res.status, "body %s: %s", body, res.body)
			require.NotNil(t, decode[addon](t, res).Metadata)
		}
	})

	t.Run("BadPerpetualShape", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		factory.Addon(t, b.db, b.tenant.ID)
		for _, tc := range []struct{ name, metadata, detail string }{
			{"PerpetualNotBoolean", `{"perpetual":"yes","features":[],"allowed_ids":[]}`, "metadata.perpetual must be a boolean"},
			{"FeaturesMissing", `{"perpetual":true,"allowed_ids":["elite"]}`, "metadata.features is required when metadata.perpetual is true"},
			{"AllowedIDsMissing", `{"perpetual":true,"features":["R_Elite"]}`, "metadata.allowed_ids is required"},
			{"FeaturesNotArray", `{"perpetual":true,"features":"R_Elite","allowed_ids":[]}`, "metadata.features must be an array"},
			{"FeatureNotString", `{"perpetual":true,"features":[1],"allowed_ids":[]}`, "metadata.features[0]"},
			{"EmptyFeature", `{"perpetual":false,"features":[""]}`, "metadata.features[0]"},
			{"AllowedIDNotSlug", `{"perpetual":true,"features":[],"allowed_ids":["ok","Not A Slug"]}`, "metadata.allowed_ids[1] must be one of the policy slugs"},
			{"AllowedIDsObject", `{"perpetual":true,"features":[],"allowed_ids":{"a":1}}`, "metadata.allowed_ids must be an array"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				existing := factory.Addon(t, b.db, b.tenant.ID).ID.String()
				p := requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/addons",
					`{"slug":"bad","name":"Bad","metadata":`+tc.metadata+`}`), http.StatusUnprocessableEntity)
				require.Contains(t, p.Detail, tc.detail)
				p = requireProblem(t, b.request(t, http.MethodPatch, "/v1/admin/addons/"+existing,
					`{"metadata":`+tc.metadata+`}`), http.StatusUnprocessableEntity)
				require.Contains(t, p.Detail, tc.detail)
				require.Len(t, decode[page[addon]](t, b.request(t, http.MethodGet, "/v1/admin/addons", "")).Items, 1, "nothing created")
			})
		}
		for _, metadata := range []string{`[]`, `"x"`, `1`} {
			requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/addons", `{"slug":"bad","name":"Bad","metadata":`+metadata+`}`),
				http.StatusUnprocessableEntity)
		}
		require.Len(t, decode[page[addon]](t, b.request(t, http.MethodGet, "/v1/admin/addons", "")).Items, 1, "nothing created")
	})

	t.Run("DatabaseCheckIsTheLastLine", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		for _, metadata := range []string{
			`{"perpetual":"yes"}`,
			`{"perpetual":true,"features":"R_Elite"}`,
			`{"perpetual":true,"allowed_ids":{"a":1}}`,
			`[1,2]`,
		} {
			tx, err := b.db.Begin(ctx)
			require.NoError(t, err)
			_, err = sql.New().AddonCreate(ctx, tx, sql.AddonCreateParams{
				TenantID: b.tenant.ID, ID: core.NewID(), Slug: "raw", Name: "Raw", Metadata: []byte(metadata), Now: factory.Now,
			})
			require.ErrorIs(t, err, core.ErrInvalid, "metadata %s", metadata)
			require.NoError(t, tx.Rollback(ctx))
		}
	})

	t.Run("DuplicateSlug", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		factory.Addon(t, b.db, b.tenant.ID, factory.AddonSlug("taken"))
		p := requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/addons", `{"slug":"taken","name":"x"}`), http.StatusConflict)
		require.Contains(t, p.Detail, "an add-on with this slug already exists")
	})

	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 5 {
			factory.Addon(t, b.db, b.tenant.ID, factory.AddonPerpetual([]string{"R_Elite"}, "elite-yearly"))
		}
		all := collect[addon](t, b, "/v1/admin/addons?limit=2")
		require.Len(t, all, 5)
		require.Equal(t, true, all[0].Metadata["perpetual"])
	})

	t.Run("OtherTenantIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		theirs := factory.Addon(t, b.db, factory.Tenant(t, b.db).ID).ID.String()
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/addons/"+theirs, ""), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodPatch, "/v1/admin/addons/"+theirs, `{"name":"mine"}`), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/addons/"+theirs+"/archive", ""), http.StatusNotFound)
		require.Empty(t, decode[page[addon]](t, b.request(t, http.MethodGet, "/v1/admin/addons?include_archived=true", "")).Items)
	})
}
