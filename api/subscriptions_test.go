package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
)

type subscriptionWithLicense struct {
	Subscription struct {
		ID          string     `json:"id"`
		Status      string     `json:"status"`
		CancelledAt *time.Time `json:"cancelled_at"`
		Price       struct {
			Currency string `json:"currency"`
			Value    int64  `json:"value"`
		} `json:"price"`
		CurrentPeriodEnd time.Time `json:"current_period_end"`
	} `json:"subscription"`
	License license `json:"license"`
}

const (
	day           = 24 * time.Hour
	renewMessage  = "Your subscription has expired; please renew to access newer product releases."
	addonMessage  = "This licence includes the perpetual add-on and is valid for product releases up to %s."
	eliteYearly   = "elite-yearly"
	threeYearDays = 1095
)

// TestPerpetualFallback is SPEC 2.4 as a table: what a cancellation leaves of the licence.
func TestPerpetualFallback(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name             string
		addonAllowed     string // the perpetual add-on's allowed_ids; "" for no add-on
		unmatchAddon     bool   // the tenant edits the add-on's allowed_ids before the cancel
		cancelAfter      time.Duration
		wantPerpetual    bool
		wantMessage      string
		wantExpiryBefore bool // the licence has no expiry while the subscription runs
	}{
		{name: "TwoYears364DaysExpires", cancelAfter: (threeYearDays - 1) * day},
		{name: "ThreeYearsIsPerpetual", cancelAfter: threeYearDays * day, wantPerpetual: true, wantMessage: renewMessage},
		{name: "LongAfterThreeYears", cancelAfter: 2000 * day, wantPerpetual: true, wantMessage: renewMessage},
		{name: "AddonMatching", addonAllowed: eliteYearly, cancelAfter: 30 * day, wantPerpetual: true, wantMessage: addonMessage, wantExpiryBefore: true},
		{name: "AddonAndThreeYears", addonAllowed: eliteYearly, cancelAfter: threeYearDays * day, wantPerpetual: true, wantMessage: addonMessage, wantExpiryBefore: true},
		{name: "AddonNoLongerMatching", addonAllowed: eliteYearly, unmatchAddon: true, cancelAfter: 30 * day, wantExpiryBefore: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug(eliteYearly), factory.PolicyRecurring(365),
				factory.PolicyPerpetualAfterDays(threeYearDays))
			customer := factory.Customer(t, b.db, b.tenant.ID)
			body := fmt.Sprintf(`{"customer_id":%q,"policy_id":%q}`, customer.ID, policy.ID)
			var addonID string
			if tc.addonAllowed != "" {
				addonID = factory.Addon(t, b.db, b.tenant.ID, factory.AddonPerpetual([]string{"R_Elite"}, tc.addonAllowed)).ID.String()
				body = fmt.Sprintf(`{"customer_id":%q,"policy_id":%q,"addon_ids":[%q]}`, customer.ID, policy.ID, addonID)
			}
			res := b.request(t, http.MethodPost, "/v1/admin/subscriptions", body)
			require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
			if tc.unmatchAddon {
				_, err := b.db.Exec(context.Background(), `UPDATE addons SET metadata = jsonb_set(metadata, '{allowed_ids}', '["other"]') WHERE id = $1`, addonID)
				require.NoError(t, err)
			}
			created := decode[subscriptionWithLicense](t, res)
			require.Equal(t, tc.wantExpiryBefore, created.License.ExpiresAt == nil)
			require.Nil(t, created.License.SubscriptionExpirationDate, "never set before the cancel")
			require.Nil(t, created.License.Message, "never set before the cancel")

			b.clock.Advance(tc.cancelAfter)
			cancelledAt := b.clock.Now()
			res = b.request(t, http.MethodPost, "/v1/admin/subscriptions/"+created.Subscription.ID+"/cancel", "")
			require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
			cancelled := decode[subscriptionWithLicense](t, res)
			require.Equal(t, "cancelled", cancelled.Subscription.Status)
			require.Equal(t, cancelledAt, cancelled.Subscription.CancelledAt.UTC())

			l := cancelled.License
			if !tc.wantPerpetual {
				require.Equal(t, created.Subscription.CurrentPeriodEnd, *l.ExpiresAt, "expires at the end of the paid period")
				require.Nil(t, l.SubscriptionExpirationDate)
				require.Nil(t, l.Message)
				return
			}
			require.Nil(t, l.ExpiresAt)
			require.Equal(t, cancelledAt, l.SubscriptionExpirationDate.UTC())
			want := tc.wantMessage
			if want == addonMessage {
				want = fmt.Sprintf(addonMessage, cancelledAt.Format("2006-01-02"))
			}
			require.Equal(t, want, *l.Message)
		})
	}

	t.Run("FieldsStayUnsetWithoutCancel", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug(eliteYearly), factory.PolicyRecurring(365), factory.PolicyPerpetualAfterDays(threeYearDays))
		addon := factory.Addon(t, b.db, b.tenant.ID, factory.AddonPerpetual([]string{"R_Elite"}, eliteYearly))
		customer := factory.Customer(t, b.db, b.tenant.ID)
		_, l := factory.Subscription(t, b.db, b.tenant.ID, policy.ID, customer.ID, addon.ID)
		b.clock.Advance(4 * 365 * day)
		got := decode[license](t, b.request(t, http.MethodGet, "/v1/admin/licenses/"+l.ID.String(), ""))
		require.Nil(t, got.SubscriptionExpirationDate)
		require.Nil(t, got.Message)
	})
}

func TestSubscriptions(t *testing.T) {
	t.Parallel()

	t.Run("CreateSnapshotsPrice", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30))
		customer := factory.Customer(t, b.db, b.tenant.ID)
		created := decode[subscriptionWithLicense](t, b.request(t, http.MethodPost, "/v1/admin/subscriptions",
			fmt.Sprintf(`{"customer_id":%q,"policy_id":%q}`, customer.ID, policy.ID)))
		require.Equal(t, "active", created.Subscription.Status)
		require.Equal(t, int64(2500), created.Subscription.Price.Value)
		require.Equal(t, factory.Now.Add(30*day), created.Subscription.CurrentPeriodEnd.UTC())
		require.Equal(t, 1, b.eventCount(t, "subscription.created"))
		require.Equal(t, 1, b.eventCount(t, "license.issued"))

		_, err := b.db.Exec(context.Background(), "UPDATE policies SET listed_value = 9900 WHERE id = $1", policy.ID)
		require.NoError(t, err)
		res := b.request(t, http.MethodGet, "/v1/admin/subscriptions/"+created.Subscription.ID, "")
		require.Contains(t, string(res.body), `"value":2500`, "a price change applies to new purchases only")
	})

	t.Run("OneOffPolicyIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		policy := factory.Policy(t, b.db, b.tenant.ID)
		customer := factory.Customer(t, b.db, b.tenant.ID)
		p := requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/subscriptions",
			fmt.Sprintf(`{"customer_id":%q,"policy_id":%q}`, customer.ID, policy.ID)), http.StatusUnprocessableEntity)
		require.Contains(t, p.Detail, "not recurring")
		require.Equal(t, 0, b.eventCount(t, "license.issued"), "the licence was rolled back with the subscription")
	})

	t.Run("CancelTwiceIs409", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sub, _ := factory.Subscription(t, b.db, b.tenant.ID, factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30)).ID, factory.Customer(t, b.db, b.tenant.ID).ID)
		require.Equal(t, http.StatusOK, b.request(t, http.MethodPost, "/v1/admin/subscriptions/"+sub.ID.String()+"/cancel", "").status)
		requireCode(t, b.request(t, http.MethodPost, "/v1/admin/subscriptions/"+sub.ID.String()+"/cancel", ""), http.StatusConflict, api.CodeSubscriptionCancelled)
		require.Equal(t, 1, b.eventCount(t, "subscription.cancelled"))
	})

	t.Run("BuyerCancelsWithKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, l := factory.Subscription(t, b.db, b.tenant.ID, factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30)).ID, factory.Customer(t, b.db, b.tenant.ID).ID)
		res := b.request(t, http.MethodPost, "/v1/subscriptions/cancel", fmt.Sprintf(`{"key":%q}`, l.Key), "Authorization", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.Equal(t, "cancelled", decode[subscriptionWithLicense](t, res).Subscription.Status)

		forged := []byte(l.Key)
		forged[10] ^= 'A' ^ 'B' // a different letter of the same alphabet: well formed, wrong
		for _, key := range []string{"garbage", string(forged), ""} {
			requireProblem(t, b.request(t, http.MethodPost, "/v1/subscriptions/cancel", fmt.Sprintf(`{"key":%q}`, key), "Authorization", ""), http.StatusUnauthorized)
		}
		plain := factory.License(t, b.db, b.tenant.ID, factory.Policy(t, b.db, b.tenant.ID).ID, factory.Customer(t, b.db, b.tenant.ID).ID)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/subscriptions/cancel", fmt.Sprintf(`{"key":%q}`, plain.Key), "Authorization", ""), http.StatusNotFound)
	})

	t.Run("TenantIsolation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		other := factory.Tenant(t, b.db)
		sub, _ := factory.Subscription(t, b.db, other.ID, factory.Policy(t, b.db, other.ID, factory.PolicyRecurring(30)).ID, factory.Customer(t, b.db, other.ID).ID)
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/subscriptions/"+sub.ID.String(), ""), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/subscriptions/"+sub.ID.String()+"/cancel", ""), http.StatusNotFound)
		require.Contains(t, string(b.request(t, http.MethodGet, "/v1/admin/subscriptions", "").body), `"items":[]`)
	})
}

// TestConcurrentCancels cancels one subscription from many connections at once: exactly one
// cancel happens.
func TestConcurrentCancels(t *testing.T) {
	t.Parallel()
	b, srv := setupServer(t)
	sub, _ := factory.Subscription(t, b.db, b.tenant.ID, factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30)).ID, factory.Customer(t, b.db, b.tenant.ID).ID)

	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses[i] = b.send(t, srv, http.MethodPost, "/v1/admin/subscriptions/"+sub.ID.String()+"/cancel", "").status
		})
	}
	wg.Wait()
	ok := 0
	for _, status := range statuses {
		require.Contains(t, []int{http.StatusOK, http.StatusConflict}, status)
		if status == http.StatusOK {
			ok++
		}
	}
	require.Equal(t, 1, ok)
	require.Equal(t, 1, b.eventCount(t, "subscription.cancelled"))
}

// TestSubscriptionCancelTransitions cancels from every status: every status but cancelled
// may be cancelled.
func TestSubscriptionCancelTransitions(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		from   string
		status int
	}{
		{"active", http.StatusOK},
		{"past_due", http.StatusOK},
		{"lapsed", http.StatusOK},
		{"cancelled", http.StatusConflict},
	} {
		t.Run(tc.from, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyRecurring(30))
			sub, _ := factory.Subscription(t, b.db, b.tenant.ID, policy.ID, factory.Customer(t, b.db, b.tenant.ID).ID)
			_, err := b.db.Exec(context.Background(),
				"UPDATE subscriptions SET status = $2::subscription_status, cancelled_at = CASE WHEN $2::text = 'cancelled' THEN $3::timestamptz END WHERE id = $1",
				sub.ID, tc.from, factory.Now)
			require.NoError(t, err)
			res := b.request(t, http.MethodPost, "/v1/admin/subscriptions/"+sub.ID.String()+"/cancel", "")
			if tc.status != http.StatusOK {
				requireProblem(t, res, tc.status)
				return
			}
			require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
			got := decode[subscriptionWithLicense](t, res)
			require.Equal(t, "cancelled", got.Subscription.Status)
			require.Equal(t, got.Subscription.CurrentPeriodEnd, *got.License.ExpiresAt)
		})
	}
}
