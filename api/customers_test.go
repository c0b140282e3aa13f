package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

type customer struct {
	ID         string  `json:"id"`
	Email      string  `json:"email"`
	ExternalID *string `json:"external_id"`
	IsActive   bool    `json:"is_active"`
	IsVerified bool    `json:"is_verified"`
	InviteCode string  `json:"invite_code"`
	ReferredBy *string `json:"referred_by"`
}

func TestCustomers(t *testing.T) {
	t.Parallel()

	t.Run("CreateGetUpdate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		res := b.request(t, http.MethodPost, "/v1/admin/customers", `{"email":"Ada@Example.com"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		created := decode[customer](t, res)
		require.Equal(t, "Ada@Example.com", created.Email)
		require.True(t, created.IsActive, "active by default")
		require.False(t, created.IsVerified, "unverified by default")
		require.Regexp(t, `^[A-HJ-NP-Z2-9]{10}$`, created.InviteCode, "a generated invite code")
		require.Nil(t, created.ExternalID)
		require.Nil(t, created.ReferredBy)
		require.Contains(t, string(res.body), `"referred_by":null`)
		require.Equal(t, created, decode[customer](t, b.request(t, http.MethodGet, "/v1/admin/customers/"+created.ID, "")))

		res = b.request(t, http.MethodPatch, "/v1/admin/customers/"+created.ID,
			`{"email":"ada@example.org","external_id":"user-1","is_active":false,"is_verified":true}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		updated := decode[customer](t, res)
		require.Equal(t, "ada@example.org", updated.Email)
		require.Equal(t, ptr("user-1"), updated.ExternalID)
		require.False(t, updated.IsActive)
		require.True(t, updated.IsVerified)
		require.Equal(t, created.InviteCode, updated.InviteCode)

		res = b.request(t, http.MethodPatch, "/v1/admin/customers/"+created.ID, `{"is_active":true}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		updated = decode[customer](t, res)
		require.True(t, updated.IsActive)
		require.Equal(t, ptr("user-1"), updated.ExternalID, "left-out fields keep their value")
		require.True(t, updated.IsVerified)

		res = b.request(t, http.MethodPatch, "/v1/admin/customers/"+created.ID, `{"external_id":null}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.Nil(t, decode[customer](t, res).ExternalID, "null clears external_id")

		res = b.request(t, http.MethodPost, "/v1/admin/customers",
			`{"email":"bob@example.com","external_id":"user-2","is_active":false,"is_verified":true,"invite_code":"BOB-2026"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		bob := decode[customer](t, res)
		require.Equal(t, "BOB-2026", bob.InviteCode)
		require.False(t, bob.IsActive)
		require.True(t, bob.IsVerified)

		requireProblem(t, b.request(t, http.MethodDelete, "/v1/admin/customers/"+created.ID, ""), http.StatusMethodNotAllowed)

		log := decode[page[auditEntry]](t, b.request(t, http.MethodGet, "/v1/admin/audit-log?limit=5", ""))
		actions := []string{}
		for _, e := range log.Items {
			actions = append(actions, e.Action)
		}
		require.Equal(t, []string{"customer.create", "customer.update", "customer.update", "customer.update", "customer.create"}, actions)
		require.Equal(t, bob.ID, log.Items[0].SubjectID)
		require.Equal(t, "bob@example.com", log.Items[0].Details["email"])
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ada := factory.Customer(t, b.db, b.tenant.ID, factory.CustomerEmail("Ada@Example.com"), func(p *sql.CustomerCreateParams) { p.ExternalID = ptr("ext-ada") })
		for range 3 {
			factory.Customer(t, b.db, b.tenant.ID, factory.CustomerReferredBy(ada.ID))
		}
		factory.Customer(t, b.db, b.tenant.ID)
		factory.Customer(t, b.db, factory.Tenant(t, b.db).ID, factory.CustomerEmail("ada@example.com"))

		require.Len(t, collect[customer](t, b, "/v1/admin/customers?limit=2"), 5)

		byEmail := decode[page[customer]](t, b.request(t, http.MethodGet, "/v1/admin/customers?email=ADA@example.COM", ""))
		require.Len(t, byEmail.Items, 1, "emails compare case-insensitively; other tenants' customers are not seen")
		require.Equal(t, ada.ID.String(), byEmail.Items[0].ID)

		byExternal := decode[page[customer]](t, b.request(t, http.MethodGet, "/v1/admin/customers?external_id=ext-ada", ""))
		require.Len(t, byExternal.Items, 1)
		require.Equal(t, ada.ID.String(), byExternal.Items[0].ID)

		referred := collect[customer](t, b, "/v1/admin/customers?limit=2&referred_by="+ada.ID.String())
		require.Len(t, referred, 3)
		for _, c := range referred {
			require.Equal(t, ada.ID.String(), *c.ReferredBy)
		}
		require.Empty(t, decode[page[customer]](t, b.request(t, http.MethodGet, "/v1/admin/customers?email=nobody@example.com", "")).Items)
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/customers?referred_by=nope", ""), http.StatusUnprocessableEntity)
	})

	t.Run("Duplicates", func(t *testing.T) {
		t.Parallel()
		// ada is a customer; other's updates try to take her email or external id.
		setupAda := func(t *testing.T) (b *bundle, ada, other sql.Customer) {
			t.Helper()
			b = setup(t)
			ada = factory.Customer(t, b.db, b.tenant.ID, factory.CustomerEmail("ada@example.com"),
				func(p *sql.CustomerCreateParams) { p.ExternalID = ptr("ext-1"); p.InviteCode = "ADA-CODE" })
			return b, ada, factory.Customer(t, b.db, b.tenant.ID)
		}
		b, existing, _ := setupAda(t)

		for _, tc := range []struct{ name, method, path, body, detail string }{
			{"Email", http.MethodPost, "/v1/admin/customers", `{"email":"ada@example.com"}`, "a customer with this email already exists"},
			{"EmailOtherCase", http.MethodPost, "/v1/admin/customers", `{"email":"ADA@EXAMPLE.COM"}`, "a customer with this email already exists"},
			{"ExternalID", http.MethodPost, "/v1/admin/customers", `{"email":"x@example.com","external_id":"ext-1"}`, "external_id already exists"},
			{"InviteCode", http.MethodPost, "/v1/admin/customers", `{"email":"x@example.com","invite_code":"ADA-CODE"}`, "invite_code already exists"},
			{"UpdateEmail", http.MethodPatch, "/v1/admin/customers/{other}", `{"email":"Ada@example.com"}`, "a customer with this email already exists"},
			{"UpdateExternalID", http.MethodPatch, "/v1/admin/customers/{other}", `{"external_id":"ext-1"}`, "external_id already exists"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				b, _, other := setupAda(t)
				path := strings.Replace(tc.path, "{other}", other.ID.String(), 1)
				p := requireCode(t, b.request(t, tc.method, path, tc.body), http.StatusConflict, api.CodeDuplicate)
				require.Contains(t, p.Detail, tc.detail)
			})
		}
		// Re-saving one's own email in another case is not a duplicate.
		res := b.request(t, http.MethodPatch, "/v1/admin/customers/"+existing.ID.String(), `{"email":"ADA@example.com"}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)

		// Another tenant may have the same email, external id and invite code.
		theirs := factory.Tenant(t, b.db)
		factory.Customer(t, b.db, theirs.ID, factory.CustomerEmail("ada@example.com"),
			func(p *sql.CustomerCreateParams) { p.ExternalID = ptr("ext-1"); p.InviteCode = "ADA-CODE" })
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct{ name, method, path, body string }{
			{"EmailWithoutAt", http.MethodPost, "/v1/admin/customers", `{"email":"ada.example.com"}`},
			{"EmailWithDisplayName", http.MethodPost, "/v1/admin/customers", `{"email":"Ada <ada@example.com>"}`},
			{"EmailWithSpace", http.MethodPost, "/v1/admin/customers", `{"email":"ada @example.com"}`},
			{"EmptyEmail", http.MethodPost, "/v1/admin/customers", `{"email":""}`},
			{"EmailTooLong", http.MethodPost, "/v1/admin/customers", `{"email":"` + strings.Repeat("a", 320) + `@example.com"}`},
			{"MissingEmail", http.MethodPost, "/v1/admin/customers", `{}`},
			{"ShortInviteCode", http.MethodPost, "/v1/admin/customers", `{"email":"a@example.com","invite_code":"abc"}`},
			{"InviteCodeWithSpace", http.MethodPost, "/v1/admin/customers", `{"email":"a@example.com","invite_code":"abc def"}`},
			{"EmptyExternalID", http.MethodPost, "/v1/admin/customers", `{"email":"a@example.com","external_id":""}`},
			{"ReferredByNotUUID", http.MethodPost, "/v1/admin/customers", `{"email":"a@example.com","referred_by":"ada"}`},
			{"UpdateBadEmail", http.MethodPatch, "/v1/admin/customers/{id}", `{"email":"nope"}`},
			{"UpdateInviteCode", http.MethodPatch, "/v1/admin/customers/{id}", `{"invite_code":"NEWCODE"}`},
			{"UpdateEmptyExternalID", http.MethodPatch, "/v1/admin/customers/{id}", `{"external_id":""}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				id := factory.Customer(t, b.db, b.tenant.ID).ID.String()
				requireProblem(t, b.request(t, tc.method, strings.Replace(tc.path, "{id}", id, 1), tc.body), http.StatusUnprocessableEntity)
				require.Len(t, decode[page[customer]](t, b.request(t, http.MethodGet, "/v1/admin/customers", "")).Items, 1, "nothing created")
			})
		}
	})

	t.Run("ReferredBy", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		referrer := factory.Customer(t, b.db, b.tenant.ID)

		res := b.request(t, http.MethodPost, "/v1/admin/customers", fmt.Sprintf(`{"email":"a@example.com","referred_by":%q}`, referrer.ID))
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		referred := decode[customer](t, res)
		require.Equal(t, referrer.ID.String(), *referred.ReferredBy)

		for _, tc := range []struct {
			name     string
			referrer func(t *testing.T, b *bundle) string
		}{
			{"OtherTenantsCustomer", func(t *testing.T, b *bundle) string {
				return factory.Customer(t, b.db, factory.Tenant(t, b.db).ID).ID.String()
			}},
			{"Unknown", func(t *testing.T, b *bundle) string { return factory.Tenant(t, b.db).ID.String() }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				referrer := factory.Customer(t, b.db, b.tenant.ID)
				tc := struct{ name, referrer string }{tc.name, tc.referrer(t, b)}
				p := requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/customers",
					fmt.Sprintf(`{"email":"b@example.com","referred_by":%q}`, tc.referrer)), http.StatusUnprocessableEntity)
				require.Contains(t, p.Detail, "referred_by "+tc.referrer+" not found")
				p = requireProblem(t, b.request(t, http.MethodPatch, "/v1/admin/customers/"+referrer.ID.String(),
					fmt.Sprintf(`{"referred_by":%q}`, tc.referrer)), http.StatusUnprocessableEntity)
				require.Contains(t, p.Detail, "referred_by "+tc.referrer+" not found")
			})
		}

		p := requireProblem(t, b.request(t, http.MethodPatch, "/v1/admin/customers/"+referrer.ID.String(),
			fmt.Sprintf(`{"referred_by":%q}`, referrer.ID)), http.StatusUnprocessableEntity)
		require.Contains(t, p.Detail, "cannot refer themselves")

		// referrer referred "referred"; making "referred" the referrer's referrer closes a cycle,
		// and so does a longer chain.
		p = requireProblem(t, b.request(t, http.MethodPatch, "/v1/admin/customers/"+referrer.ID.String(),
			fmt.Sprintf(`{"referred_by":%q}`, referred.ID)), http.StatusUnprocessableEntity)
		require.Contains(t, p.Detail, "referral cycle")
		third := factory.Customer(t, b.db, b.tenant.ID, factory.CustomerReferredBy(uuidOf(t, referred.ID)))
		p = requireProblem(t, b.request(t, http.MethodPatch, "/v1/admin/customers/"+referrer.ID.String(),
			fmt.Sprintf(`{"referred_by":%q}`, third.ID)), http.StatusUnprocessableEntity)
		require.Contains(t, p.Detail, "referral cycle")

		// Set while empty; then fixed.
		lonely := factory.Customer(t, b.db, b.tenant.ID)
		res = b.request(t, http.MethodPatch, "/v1/admin/customers/"+lonely.ID.String(), fmt.Sprintf(`{"referred_by":%q}`, referrer.ID))
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.Equal(t, referrer.ID.String(), *decode[customer](t, res).ReferredBy)
		res = b.request(t, http.MethodPatch, "/v1/admin/customers/"+lonely.ID.String(), fmt.Sprintf(`{"referred_by":%q}`, referrer.ID))
		require.Equal(t, http.StatusOK, res.status, "the same referrer again is no change: %s", res.body)
		p = requireCode(t, b.request(t, http.MethodPatch, "/v1/admin/customers/"+lonely.ID.String(),
			fmt.Sprintf(`{"referred_by":%q}`, third.ID)), http.StatusConflict, api.CodeReferrerSet)
		require.Contains(t, p.Detail, "cannot change once set")
	})

	t.Run("ConcurrentReferralsCannotCloseACycle", func(t *testing.T) {
		t.Parallel()
		b, srv := setupServer(t)
		for range 5 {
			one := factory.Customer(t, b.db, b.tenant.ID)
			two := factory.Customer(t, b.db, b.tenant.ID)
			statuses := make(chan int, 2)
			var wg sync.WaitGroup
			for _, pair := range [][2]uuid.UUID{{one.ID, two.ID}, {two.ID, one.ID}} {
				wg.Go(func() {
					res := b.send(t, srv, http.MethodPatch, "/v1/admin/customers/"+pair[0].String(), fmt.Sprintf(`{"referred_by":%q}`, pair[1]))
					statuses <- res.status
				})
			}
			wg.Wait()
			close(statuses)
			var got []int
			for status := range statuses {
				got = append(got, status)
			}
			require.ElementsMatch(t, []int{http.StatusOK, http.StatusUnprocessableEntity}, got)
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 5 {
			factory.Customer(t, b.db, b.tenant.ID)
		}
		all := collect[customer](t, b, "/v1/admin/customers?limit=2")
		require.Len(t, all, 5)
		ids := make([]string, len(all))
		for i, c := range all {
			ids[i] = c.ID
		}
		require.IsIncreasing(t, ids)
	})

	t.Run("OtherTenantIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		theirs := factory.Customer(t, b.db, factory.Tenant(t, b.db).ID).ID.String()
		for _, tc := range []struct{ method, path, body string }{
			{http.MethodGet, "/v1/admin/customers/" + theirs, ""},
			{http.MethodPatch, "/v1/admin/customers/" + theirs, `{"is_active":false}`},
			{http.MethodGet, "/v1/admin/customers/" + theirs + "/balances", ""},
			{http.MethodGet, "/v1/admin/customers/" + theirs + "/events", ""},
			{http.MethodPost, "/v1/admin/customers/" + theirs + "/events", `{"type":"login"}`},
		} {
			requireProblem(t, b.request(t, tc.method, tc.path, tc.body), http.StatusNotFound)
		}
		require.Empty(t, decode[page[customer]](t, b.request(t, http.MethodGet, "/v1/admin/customers", "")).Items)
	})

	t.Run("Balances", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := factory.Customer(t, b.db, b.tenant.ID)
		type balances struct {
			Items []struct {
				Asset  string `json:"asset"`
				Amount int64  `json:"amount"`
			} `json:"items"`
		}
		got := decode[balances](t, b.request(t, http.MethodGet, "/v1/admin/customers/"+c.ID.String()+"/balances", ""))
		require.Len(t, got.Items, 2)
		require.Equal(t, "credits", got.Items[0].Asset)
		require.Equal(t, int64(0), got.Items[0].Amount)
		require.Equal(t, "reward_sats", got.Items[1].Asset)
		require.Equal(t, int64(0), got.Items[1].Amount)

		_, err := b.db.Exec(context.Background(),
			`INSERT INTO balances (tenant_id, customer_id, asset, amount, updated_at) VALUES ($1, $2, 'reward_sats', 1500, $3)`,
			b.tenant.ID, c.ID, factory.Now)
		require.NoError(t, err)
		got = decode[balances](t, b.request(t, http.MethodGet, "/v1/admin/customers/"+c.ID.String()+"/balances", ""))
		require.Equal(t, int64(0), got.Items[0].Amount)
		require.Equal(t, int64(1500), got.Items[1].Amount)

		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/customers/"+b.tenant.ID.String()+"/balances", ""), http.StatusNotFound)
	})
}

// uuidOf parses an id from a response.
func uuidOf(t *testing.T, id string) uuid.UUID {
	t.Helper()
	u, err := uuid.Parse(id)
	require.NoError(t, err)
	return u
}
