package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

type policy struct {
	ID                    string   `json:"id"`
	ProductID             string   `json:"product_id"`
	Slug                  string   `json:"slug"`
	Name                  string   `json:"name"`
	TierRank              int32    `json:"tier_rank"`
	ListedCurrency        string   `json:"listed_currency"`
	ListedValue           int64    `json:"listed_value"`
	IsRecurring           bool     `json:"is_recurring"`
	PeriodDays            *int32   `json:"period_days"`
	GracePeriodDays       int32    `json:"grace_period_days"`
	MaxMachines           *int32   `json:"max_machines"`
	Entitlements          []string `json:"entitlements"`
	PerpetualAfterDays    *int32   `json:"perpetual_after_days"`
	QualifiesForReferrals bool     `json:"qualifies_for_referrals"`
	ArchivedAt            *string  `json:"archived_at"`
}

func ptr[T any](v T) *T { return &v }

func TestPolicies(t *testing.T) {
	t.Parallel()

	t.Run("CreateGetListUpdateArchive", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		productID := factory.Product(t, b.db, b.tenant.ID).ID.String()

		res := b.request(t, http.MethodPost, "/v1/admin/policies", fmt.Sprintf(`{
			"product_id": %q, "slug": "elite-yearly", "name": "Elite (yearly)", "tier_rank": 3,
			"listed_currency": "USD", "listed_value": 7500, "is_recurring": true, "period_days": 365,
			"grace_period_days": 14, "max_machines": 3, "entitlements": ["export", "R_Elite"],
			"perpetual_after_days": 1095, "qualifies_for_referrals": true}`, productID))
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		created := decode[policy](t, res)
		require.Equal(t, policy{
			ID: created.ID, ProductID: productID, Slug: "elite-yearly", Name: "Elite (yearly)", TierRank: 3,
			ListedCurrency: "USD", ListedValue: 7500, IsRecurring: true, PeriodDays: ptr[int32](365),
			GracePeriodDays: 14, MaxMachines: ptr[int32](3), Entitlements: []string{"export", "R_Elite"},
			PerpetualAfterDays: ptr[int32](1095), QualifiesForReferrals: true,
		}, created)
		require.Equal(t, created, decode[policy](t, b.request(t, http.MethodGet, "/v1/admin/policies/"+created.ID, "")))

		// A price change, clearing max_machines and perpetual_after_days; the rest is kept.
		res = b.request(t, http.MethodPatch, "/v1/admin/policies/"+created.ID,
			`{"listed_currency":"SAT","listed_value":150000,"max_machines":null,"perpetual_after_days":null,"entitlements":["export"]}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		updated := decode[policy](t, res)
		require.Equal(t, "SAT", updated.ListedCurrency)
		require.Equal(t, int64(150000), updated.ListedValue)
		require.Nil(t, updated.MaxMachines, "null means unlimited")
		require.Nil(t, updated.PerpetualAfterDays)
		require.Equal(t, []string{"export"}, updated.Entitlements)
		require.Equal(t, "Elite (yearly)", updated.Name)
		require.Equal(t, ptr[int32](365), updated.PeriodDays)
		require.Equal(t, int32(14), updated.GracePeriodDays)
		require.True(t, updated.QualifiesForReferrals)

		res = b.request(t, http.MethodPatch, "/v1/admin/policies/"+created.ID,
			`{"name":"Elite","tier_rank":4,"grace_period_days":0,"max_machines":5,"perpetual_after_days":730,"qualifies_for_referrals":false,"entitlements":[]}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		updated = decode[policy](t, res)
		require.Equal(t, "Elite", updated.Name)
		require.Equal(t, int32(4), updated.TierRank)
		require.Equal(t, int32(0), updated.GracePeriodDays)
		require.Equal(t, ptr[int32](5), updated.MaxMachines)
		require.Equal(t, ptr[int32](730), updated.PerpetualAfterDays)
		require.False(t, updated.QualifiesForReferrals)
		require.Empty(t, updated.Entitlements)
		require.Equal(t, "SAT", updated.ListedCurrency, "left-out fields keep their value")

		res = b.request(t, http.MethodPost, "/v1/admin/policies/"+created.ID+"/archive", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.NotNil(t, decode[policy](t, res).ArchivedAt)
		requireCode(t, b.request(t, http.MethodPost, "/v1/admin/policies/"+created.ID+"/archive", ""), http.StatusConflict, api.CodeAlreadyArchived)
		require.Empty(t, decode[page[policy]](t, b.request(t, http.MethodGet, "/v1/admin/policies", "")).Items)
		require.Len(t, decode[page[policy]](t, b.request(t, http.MethodGet, "/v1/admin/policies?include_archived=true", "")).Items, 1)

		require.Equal(t, []string{"policy.archive", "policy.update", "policy.update", "policy.create"}, auditActions(t, b)[:4])
		log := decode[page[auditEntry]](t, b.request(t, http.MethodGet, "/v1/admin/audit-log?limit=3", ""))
		require.Equal(t, map[string]any{
			"listed_currency": "SAT", "listed_value": float64(150000), "max_machines": nil, "perpetual_after_days": nil,
			"entitlements": []any{"export"},
		}, log.Items[2].Details, "an update records what was sent, nulls included")
	})

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		productID := factory.Product(t, b.db, b.tenant.ID).ID.String()
		res := b.request(t, http.MethodPost, "/v1/admin/policies", fmt.Sprintf(
			`{"product_id":%q,"slug":"standard","name":"Standard","listed_currency":"EUR","listed_value":2500,"is_recurring":false}`, productID))
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		created := decode[policy](t, res)
		require.Equal(t, int32(7), created.GracePeriodDays)
		require.Equal(t, int32(0), created.TierRank)
		require.Nil(t, created.PeriodDays)
		require.Nil(t, created.MaxMachines, "unlimited")
		require.Nil(t, created.PerpetualAfterDays)
		require.NotNil(t, created.Entitlements)
		require.Empty(t, created.Entitlements)
		require.False(t, created.QualifiesForReferrals)
		require.Contains(t, string(res.body), `"max_machines":null`, "unlimited is an explicit null")
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		type refusal struct{ name, method, path, body, detail string }
		// refusals makes a product, an archived one, another tenant's and a policy on b, and
		// returns the refused requests about them.
		refusals := func(t *testing.T, b *bundle) []refusal {
			t.Helper()
			productID := factory.Product(t, b.db, b.tenant.ID).ID
			archived := factory.Product(t, b.db, b.tenant.ID)
			b.request(t, http.MethodPost, "/v1/admin/products/"+archived.ID.String()+"/archive", "")
			theirs := factory.Product(t, b.db, factory.Tenant(t, b.db).ID).ID
			existing := factory.Policy(t, b.db, b.tenant.ID).ID.String()
			valid := func(product fmt.Stringer, extra string) string {
				return fmt.Sprintf(`{"product_id":%q,"slug":"tier","name":"Tier","listed_currency":"USD","listed_value":100%s}`, product, extra)
			}
			return []refusal{
				{"RecurringWithoutPeriod", http.MethodPost, "/v1/admin/policies", valid(productID, `,"is_recurring":true`), "period_days is required when is_recurring is true"},
				{"PerpetualWithPeriod", http.MethodPost, "/v1/admin/policies", valid(productID, `,"is_recurring":false,"period_days":30`), "period_days is only for recurring policies"},
				{"MissingIsRecurring", http.MethodPost, "/v1/admin/policies", valid(productID, ``), ""},
				{"NegativePrice", http.MethodPost, "/v1/admin/policies", fmt.Sprintf(`{"product_id":%q,"slug":"t","name":"T","listed_currency":"USD","listed_value":-1,"is_recurring":false}`, productID), ""},
				{"BadCurrency", http.MethodPost, "/v1/admin/policies", fmt.Sprintf(`{"product_id":%q,"slug":"t","name":"T","listed_currency":"GBP","listed_value":1,"is_recurring":false}`, productID), ""},
				{"BadSlug", http.MethodPost, "/v1/admin/policies", fmt.Sprintf(`{"product_id":%q,"slug":"-tier","name":"T","listed_currency":"USD","listed_value":1,"is_recurring":false}`, productID), ""},
				{"PeriodTooLong", http.MethodPost, "/v1/admin/policies", valid(productID, `,"is_recurring":true,"period_days":4000`), ""},
				{"NegativeMaxMachines", http.MethodPost, "/v1/admin/policies", valid(productID, `,"is_recurring":false,"max_machines":-1`), ""},
				{"ZeroPerpetualAfterDays", http.MethodPost, "/v1/admin/policies", valid(productID, `,"is_recurring":false,"perpetual_after_days":0`), ""},
				{"EmptyEntitlement", http.MethodPost, "/v1/admin/policies", valid(productID, `,"is_recurring":false,"entitlements":["a",""]`), "entitlements[1] must be 1 to 100 characters"},
				{"DuplicateEntitlement", http.MethodPost, "/v1/admin/policies", valid(productID, `,"is_recurring":false,"entitlements":["a","a"]`), ""},
				{"UnknownProduct", http.MethodPost, "/v1/admin/policies", valid(factory.Tenant(t, b.db).ID, `,"is_recurring":false`), "not found"},
				{"OtherTenantsProduct", http.MethodPost, "/v1/admin/policies", valid(theirs, `,"is_recurring":false`), "product_id " + theirs.String() + " not found"},
				{"ArchivedProduct", http.MethodPost, "/v1/admin/policies", valid(archived.ID, `,"is_recurring":false`), "is archived"},
				{"UpdateIsRecurring", http.MethodPatch, "/v1/admin/policies/" + existing, `{"is_recurring":true}`, ""},
				{"UpdatePeriodDays", http.MethodPatch, "/v1/admin/policies/" + existing, `{"period_days":30}`, ""},
				{"UpdateSlug", http.MethodPatch, "/v1/admin/policies/" + existing, `{"slug":"other"}`, ""},
				{"UpdateNegativePrice", http.MethodPatch, "/v1/admin/policies/" + existing, `{"listed_value":-5}`, ""},
				{"UpdateBadCurrency", http.MethodPatch, "/v1/admin/policies/" + existing, `{"listed_currency":"usd"}`, ""},
				{"UpdateMaxMachinesNotNumber", http.MethodPatch, "/v1/admin/policies/" + existing, `{"max_machines":"3"}`, ""},
				{"UpdateNegativeMaxMachines", http.MethodPatch, "/v1/admin/policies/" + existing, `{"max_machines":-3}`, ""},
			}
		}
		for i, tc := range refusals(t, setup(t)) {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				tc := refusals(t, b)[i]
				p := requireProblem(t, b.request(t, tc.method, tc.path, tc.body), http.StatusUnprocessableEntity)
				require.Contains(t, p.Detail, tc.detail)
				require.Equal(t, "product.archive", auditActions(t, b)[0], "no refused request was audited")
			})
		}
	})

	t.Run("DuplicateSlug", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		existing := factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug("pro"))
		p := requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/policies", fmt.Sprintf(
			`{"product_id":%q,"slug":"pro","name":"Pro","listed_currency":"USD","listed_value":1,"is_recurring":false}`, existing.ProductID)), http.StatusConflict)
		require.Contains(t, p.Detail, "a policy with this slug already exists")
	})

	t.Run("ListByProduct", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		one := factory.Product(t, b.db, b.tenant.ID)
		two := factory.Product(t, b.db, b.tenant.ID)
		for range 3 {
			factory.Policy(t, b.db, b.tenant.ID, factory.PolicyProduct(one.ID))
		}
		factory.Policy(t, b.db, b.tenant.ID, factory.PolicyProduct(two.ID), factory.PolicyRecurring(30))
		factory.Policy(t, b.db, factory.Tenant(t, b.db).ID)

		all := collect[policy](t, b, "/v1/admin/policies?limit=2")
		require.Len(t, all, 4)
		ofOne := collect[policy](t, b, "/v1/admin/policies?limit=2&product_id="+one.ID.String())
		require.Len(t, ofOne, 3)
		for _, p := range ofOne {
			require.Equal(t, one.ID.String(), p.ProductID)
		}
		ofTwo := decode[page[policy]](t, b.request(t, http.MethodGet, "/v1/admin/policies?product_id="+two.ID.String(), ""))
		require.Len(t, ofTwo.Items, 1)
		require.True(t, ofTwo.Items[0].IsRecurring)
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/policies?product_id=nope", ""), http.StatusUnprocessableEntity)
	})

	t.Run("OtherTenantIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		theirs := factory.Policy(t, b.db, factory.Tenant(t, b.db).ID).ID.String()
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/policies/"+theirs, ""), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodPatch, "/v1/admin/policies/"+theirs, `{"listed_value":1}`), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/policies/"+theirs+"/archive", ""), http.StatusNotFound)
		require.Empty(t, decode[page[policy]](t, b.request(t, http.MethodGet, "/v1/admin/policies?include_archived=true", "")).Items)
	})

	t.Run("Factory", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(365), factory.PolicyPrice(sql.CurrencySAT, 50_000),
			factory.PolicyMaxMachines(2), factory.PolicyEntitlements("R_Pro"), factory.PolicyPerpetualAfterDays(1095),
			factory.PolicyQualifiesForReferrals(), factory.PolicyTierRank(2), factory.PolicyGraceDays(3))
		got := decode[policy](t, b.request(t, http.MethodGet, "/v1/admin/policies/"+p.ID.String(), ""))
		require.True(t, got.IsRecurring)
		require.Equal(t, ptr[int32](365), got.PeriodDays)
		require.Equal(t, "SAT", got.ListedCurrency)
		require.Equal(t, int64(50_000), got.ListedValue)
		require.Equal(t, ptr[int32](2), got.MaxMachines)
		require.Equal(t, []string{"R_Pro"}, got.Entitlements)
		require.Equal(t, ptr[int32](1095), got.PerpetualAfterDays)
		require.True(t, got.QualifiesForReferrals)
		require.Equal(t, int32(2), got.TierRank)
		require.Equal(t, int32(3), got.GracePeriodDays)
	})
}
