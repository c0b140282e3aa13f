package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

type tierQuote struct {
	Direction     string    `json:"direction"`
	Charge        money     `json:"charge"`
	Effective     string    `json:"effective"`
	EffectiveAt   time.Time `json:"effective_at"`
	RemainingDays *int32    `json:"remaining_days"`
	NextRenewal   *money    `json:"next_renewal"`
	NextPeriod    *int32    `json:"next_renewal_period_days"`
}

type money struct {
	Currency string `json:"currency"`
	Value    int64  `json:"value"`
}

type tierChange struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Status      string    `json:"status"`
	ToPolicyID  string    `json:"to_policy_id"`
	Charge      money     `json:"charge"`
	PayInID     string    `json:"payin_id"`
	EffectiveAt time.Time `json:"effective_at"`
}

type tierUpgrade struct {
	TierChange tierChange `json:"tier_change"`
	PayIn      payin      `json:"payin"`
}

// tiers is a product sold in tiers to one customer of a bundle's tenant: Standard (2500)
// and Pro (7500) perpetual, Basic (1000) and Plus (4000) every 30 days, Plus yearly
// (36500 every 365 days).
type tiers struct {
	customer                               sql.Customer
	standard, pro, basic, plus, plusYearly sql.Policy
}

// setupTierBundle returns a bundle whose tenant sells the tiers, to a customer of its own.
func setupTierBundle(t *testing.T) (*bundle, tiers) {
	t.Helper()
	b := setup(t)
	return b, setupTiers(t, b, factory.Customer(t, b.db, b.tenant.ID))
}

func setupTiers(t *testing.T, b *bundle, customer sql.Customer) tiers {
	t.Helper()
	product := factory.Product(t, b.db, b.tenant.ID)
	policy := func(slug string, rank int32, value int64, opts ...func(*sql.PolicyCreateParams)) sql.Policy {
		return factory.Policy(t, b.db, b.tenant.ID, append([]func(*sql.PolicyCreateParams){
			factory.PolicyProduct(product.ID), factory.PolicySlug(slug), factory.PolicyTierRank(rank),
			factory.PolicyPrice(sql.CurrencyUSD, value),
		}, opts...)...)
	}
	return tiers{
		customer: customer,
		standard: policy("standard", 1, 2500, factory.PolicyEntitlements("basic"), factory.PolicyMaxMachines(1)),
		pro:      policy("pro-tier", 2, 7500, factory.PolicyEntitlements("basic", "export"), factory.PolicyMaxMachines(5)),
		basic:    policy("basic-monthly", 1, 1000, factory.PolicyRecurring(30), factory.PolicyGraceDays(3), factory.PolicyEntitlements("basic")),
		plus: policy("plus-monthly", 2, 4000, factory.PolicyRecurring(30), factory.PolicyGraceDays(10),
			factory.PolicyEntitlements("basic", "export"), factory.PolicyMaxMachines(4)),
		plusYearly: policy("plus-yearly", 3, 36500, factory.PolicyRecurring(365), factory.PolicyEntitlements("basic", "export")),
	}
}

// tier sends a buyer's tier request (no API key) for the licence key and target slug.
func (b *bundle) tier(t *testing.T, path, key, slug string) response {
	t.Helper()
	return b.request(t, http.MethodPost, path, fmt.Sprintf(`{"key":%q,"policy":%q}`, key, slug), "Authorization", "")
}

func (b *bundle) quote(t *testing.T, key, slug string) tierQuote {
	t.Helper()
	res := b.tier(t, "/v1/upgrade-quote", key, slug)
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	return decode[tierQuote](t, res)
}

func TestTierUpgradeQuote(t *testing.T) {
	t.Parallel()

	t.Run("PerpetualFlatDifferenceEffectiveImmediately", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		tr := setupTiers(t, b, factory.Customer(t, b.db, b.tenant.ID))
		l := factory.License(t, b.db, b.tenant.ID, tr.standard.ID, tr.customer.ID)

		q := b.quote(t, l.Key, "pro-tier")
		require.Equal(t, "upgrade", q.Direction)
		require.Equal(t, money{"USD", 5000}, q.Charge, "Standard 25.00 -> Pro 75.00 = 5000 cents")
		require.Equal(t, "immediate", q.Effective)
		require.Equal(t, factory.Now, q.EffectiveAt.UTC())
		require.Nil(t, q.RemainingDays, "no period for a perpetual licence")
		require.Nil(t, q.NextRenewal)
	})

	t.Run("GarbageKeyIs401WhetherOrNotTheTargetExists", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		tr := setupTiers(t, b, factory.Customer(t, b.db, b.tenant.ID))
		l := factory.License(t, b.db, b.tenant.ID, tr.standard.ID, tr.customer.ID)
		forged := []byte(l.Key)
		forged[len(forged)-20] ^= 'A' ^ 'B' // a different letter in the signature: well formed, wrong
		var details []string
		for _, key := range []string{"garbage", "", string(forged), "TSR1.x.y"} {
			for _, target := range []string{"pro-tier", "no-such-tier"} {
				for _, path := range []string{"/v1/upgrade-quote", "/v1/upgrade", "/v1/downgrade"} {
					p := requireProblem(t, b.tier(t, path, key, target), http.StatusUnauthorized)
					details = append(details, p.Detail)
				}
			}
		}
		for _, d := range details {
			require.Equal(t, details[0], d, "the answer never depends on the target")
		}
	})

	t.Run("UnknownTargetIs404", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		tr := setupTiers(t, b, factory.Customer(t, b.db, b.tenant.ID))
		l := factory.License(t, b.db, b.tenant.ID, tr.standard.ID, tr.customer.ID)
		requireProblem(t, b.tier(t, "/v1/upgrade-quote", l.Key, "no-such-tier"), http.StatusNotFound)
		requireProblem(t, b.tier(t, "/v1/upgrade", l.Key, "no-such-tier"), http.StatusNotFound)

		other := factory.Tenant(t, b.db)
		factory.Policy(t, b.db, other.ID, factory.PolicySlug("elite"), factory.PolicyTierRank(9))
		requireProblem(t, b.tier(t, "/v1/upgrade-quote", l.Key, "elite"), http.StatusNotFound) // another tenant's tier
	})

	t.Run("RecurringProratedByRemainingDays", func(t *testing.T) {
		t.Parallel()
		b, tr := setupTierBundle(t)
		_, l := factory.Subscription(t, b.db, b.tenant.ID, tr.basic.ID, tr.customer.ID)

		for _, c := range []struct {
			name      string
			after     time.Duration
			target    string
			remaining int32
			charge    int64
		}{
			// (4000 - 1000) over 30 days: 100 a day.
			{"FullPeriod", 0, "plus-monthly", 30, 3000},
			{"TwentyDaysLeft", 10 * day, "plus-monthly", 20, 2000},
			{"AStartedDayCounts", 10*day + time.Hour, "plus-monthly", 20, 2000},
			{"LastHour", 30*day - time.Hour, "plus-monthly", 1, 100},
			// 36500/365 = 100 a day against 1000/30 = 33.33 a day: 20 * 66.67 = 1333.33, rounded down.
			{"YearlyTarget", 10 * day, "plus-yearly", 20, 1333},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				b, tr := setupTierBundle(t)
				_, l := factory.Subscription(t, b.db, b.tenant.ID, tr.basic.ID, tr.customer.ID)
				b.clock.Set(factory.Now.Add(c.after))
				q := b.quote(t, l.Key, c.target)
				require.Equal(t, "upgrade", q.Direction)
				require.Equal(t, c.remaining, *q.RemainingDays)
				require.Equal(t, money{"USD", c.charge}, q.Charge)
				require.Equal(t, "immediate", q.Effective)
			})
		}

		b.clock.Set(factory.Now.Add(10 * day))
		q := b.quote(t, l.Key, "plus-yearly")
		require.Equal(t, money{"USD", 36500}, *q.NextRenewal, "the next renewal charges the new tier")
		require.Equal(t, int32(365), *q.NextPeriod)

		t.Run("RecurringDowngradeIsFreeAtTheNextRenewal", func(t *testing.T) {
			t.Parallel()
			b, tr := setupTierBundle(t)
			sub, plus := factory.Subscription(t, b.db, b.tenant.ID, tr.plus.ID, tr.customer.ID)
			q := b.quote(t, plus.Key, "basic-monthly")
			require.Equal(t, "downgrade", q.Direction)
			require.Equal(t, money{"USD", 0}, q.Charge)
			require.Equal(t, "next_renewal", q.Effective)
			require.Equal(t, sub.NextRenewalAt.UTC(), q.EffectiveAt.UTC())
		})
	})

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		// setupRefused returns a tier bundle with a Standard and a Pro licence, a monthly
		// Basic subscription's licence, and a policy of another product.
		setupRefused := func(t *testing.T) (b *bundle, tr tiers, standard, pro, monthly sql.License) {
			t.Helper()
			b, tr = setupTierBundle(t)
			standard = factory.License(t, b.db, b.tenant.ID, tr.standard.ID, tr.customer.ID)
			pro = factory.License(t, b.db, b.tenant.ID, tr.pro.ID, tr.customer.ID)
			_, monthly = factory.Subscription(t, b.db, b.tenant.ID, tr.basic.ID, tr.customer.ID)
			factory.Policy(t, b.db, b.tenant.ID, factory.PolicySlug("other-product"), factory.PolicyTierRank(5))
			return b, tr, standard, pro, monthly
		}
		for _, c := range []struct {
			name, key, target, detail string
			status                    int
		}{
			{"PerpetualDowngradeIsAdminOnly", "pro", "standard", "admin-only", http.StatusBadRequest},
			{"SamePolicy", "standard", "standard", "already on policy", http.StatusBadRequest},
			{"AnotherProduct", "standard", "other-product", "another product", http.StatusBadRequest},
			{"PerpetualToRecurring", "standard", "plus-monthly", "buy a subscription", http.StatusBadRequest},
			{"RecurringToPerpetual", "monthly", "pro-tier", "buy the perpetual licence", http.StatusBadRequest},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				b, _, standard, pro, monthly := setupRefused(t)
				key := map[string]string{"standard": standard.Key, "pro": pro.Key, "monthly": monthly.Key}[c.key]
				p := requireProblem(t, b.tier(t, "/v1/upgrade-quote", key, c.target), c.status)
				require.Contains(t, p.Detail, c.detail)
			})
		}

		t.Run("SuspendedLicence", func(t *testing.T) {
			t.Parallel()
			b, _, standard, _, _ := setupRefused(t)
			res := b.request(t, http.MethodPost, "/v1/admin/licenses/"+standard.ID.String()+"/suspend", "")
			require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
			p := requireCode(t, b.tier(t, "/v1/upgrade-quote", standard.Key, "pro-tier"), http.StatusConflict, api.CodeLicenseStatus)
			require.Contains(t, p.Detail, "suspended")
		})

		t.Run("SubscriptionNotActive", func(t *testing.T) {
			t.Parallel()
			b, tr, _, _, _ := setupRefused(t)
			sub, l := factory.Subscription(t, b.db, b.tenant.ID, tr.basic.ID, tr.customer.ID)
			_, err := b.db.Exec(context.Background(), "UPDATE subscriptions SET status = 'past_due' WHERE tenant_id = $1 AND id = $2", b.tenant.ID, sub.ID)
			require.NoError(t, err)
			p := requireCode(t, b.tier(t, "/v1/upgrade-quote", l.Key, "plus-monthly"), http.StatusConflict, api.CodeSubscriptionUnpaid)
			require.Contains(t, p.Detail, "pay its pending renewal first")

			res := b.request(t, http.MethodPost, "/v1/subscriptions/cancel", fmt.Sprintf(`{"key":%q}`, l.Key), "Authorization", "")
			require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
			p = requireCode(t, b.tier(t, "/v1/upgrade", l.Key, "plus-monthly"), http.StatusConflict, api.CodeSubscriptionCancelled)
			require.Contains(t, p.Detail, "cancelled")
		})

		t.Run("ArchivedTargetIsUnknownToBuyers", func(t *testing.T) {
			t.Parallel()
			b, tr, _, _, _ := setupRefused(t)
			res := b.request(t, http.MethodPost, "/v1/admin/policies/"+tr.pro.ID.String()+"/archive", "")
			require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
			l := factory.License(t, b.db, b.tenant.ID, tr.standard.ID, tr.customer.ID)
			requireProblem(t, b.tier(t, "/v1/upgrade-quote", l.Key, "pro-tier"), http.StatusNotFound)
		})
	})
}

// setupTierShop is a shop (workers and the fake BTCPay) selling tiers, with a Standard
// licence of its customer.
func setupTierShop(t *testing.T) (*shop, sql.License) {
	t.Helper()
	s := setupShop(t, 100, sql.CurrencySAT)
	tr := setupTiers(t, s.bundle, s.customer)
	return s, factory.License(t, s.db, s.tenant.ID, tr.standard.ID, s.customer.ID)
}

// upgrade starts the buyer's upgrade of the licence key to Pro.
func (s *shop) upgrade(t *testing.T, key string) response {
	t.Helper()
	return s.send(t, s.srv, http.MethodPost, "/v1/upgrade", fmt.Sprintf(`{"key":%q,"policy":"pro-tier"}`, key), "Authorization", "")
}

// TestTierUpgrade starts an upgrade and settles it through the fake BTCPay: SPEC 4.2 end to end.
func TestTierUpgrade(t *testing.T) {
	t.Parallel()
	s, l := setupTierShop(t)
	licenceCount := func() int {
		var n int
		require.NoError(t, s.db.QueryRow(context.Background(), "SELECT count(*) FROM licenses WHERE tenant_id = $1 AND customer_id = $2",
			s.tenant.ID, s.customer.ID).Scan(&n))
		return n
	}

	res := s.upgrade(t, l.Key)
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	up := decode[tierUpgrade](t, res)
	require.Equal(t, "upgrade", up.TierChange.Kind)
	require.Equal(t, "pending", up.TierChange.Status)
	require.Equal(t, money{"USD", 5000}, up.TierChange.Charge)
	require.Equal(t, up.PayIn.ID, up.TierChange.PayInID, "the tier change is tied to its PayIn")
	require.Equal(t, int64(100_000), up.PayIn.CostSats, "$50 at $50,000/BTC")

	// The steps below are phases of one payment, in order: not subtests, which would run
	// in parallel once this function returned.

	// Nothing changes until paid.
	v, _ := s.validate(t, map[string]any{"key": l.Key, "entitlement": "export"})
	require.Equal(t, "ENTITLEMENT_MISSING", v.Code, "still Standard")
	require.Equal(t, "standard", v.License.PolicySlug)

	// A second upgrade waits.
	pending := requireCode(t, s.upgrade(t, l.Key), http.StatusConflict, api.CodeUpgradePending)
	require.Contains(t, pending.Detail, "already waiting for its payment")
	require.Contains(t, pending.Detail, up.PayIn.ID, "the buyer can go on with the pending one")

	p := s.await(t, up.PayIn.ID, "PENDING")
	require.NotEmpty(t, p.Invoice.CheckoutURL)
	require.NoError(t, s.payments.Fake.Settle(p.Invoice.InvoiceID, p.Invoice.AmountSats))
	require.Equal(t, http.StatusOK, s.webhook(t, p.Invoice.InvoiceID, "InvoiceSettled").status)
	p = s.await(t, up.PayIn.ID, "PAID")

	// Settling applies the change to the same licence.
	require.Equal(t, l.Key, p.LicenseKey, "same key")
	v, _ = s.validate(t, map[string]any{"key": l.Key, "entitlement": "export"})
	require.Equal(t, "VALID", v.Code)
	require.Equal(t, "pro-tier", v.License.PolicySlug)
	require.Equal(t, l.ID.String(), v.License.ID, "same licence")
	require.ElementsMatch(t, []string{"basic", "export"}, v.License.Entitlements)
	require.Equal(t, 1, licenceCount(), "no new licence")
	require.Equal(t, 1, s.eventCount(t, "license.tier_changed"))
	changes := collect[tierChange](t, s.bundle, "/v1/admin/licenses/"+l.ID.String()+"/tier-changes?limit=50")
	require.Len(t, changes, 1)
	require.Equal(t, "applied", changes[0].Status)
	s.requireInvariants(t)

	// A redelivery is a no-op. The second delivery (a new delivery id) is recorded in the
	// inbox and settles again, in its request (or by a payin.settle job, had it been left to
	// one). Once no settle job is left to run, nothing may have changed.
	require.Equal(t, http.StatusOK, s.webhook(t, p.Invoice.InvoiceID, "InvoiceSettled").status)
	var deliveries int
	require.NoError(t, s.db.QueryRow(context.Background(), "SELECT count(*) FROM provider_webhook_deliveries WHERE invoice_id = $1",
		p.Invoice.InvoiceID).Scan(&deliveries))
	require.Equal(t, 2, deliveries, "the redelivery was accepted")
	require.Eventually(t, func() bool {
		var open int
		require.NoError(t, s.db.QueryRow(context.Background(),
			"SELECT count(*) FROM river_job WHERE kind = 'payin.settle' AND state NOT IN ('completed', 'discarded', 'cancelled')").Scan(&open))
		return open == 0
	}, 20*time.Second, 20*time.Millisecond, "the settle jobs ran")
	require.Equal(t, 1, s.eventCount(t, "license.tier_changed"))
	require.Equal(t, 1, licenceCount())
	s.requireInvariants(t)
}

func TestTierUpgradeFailed(t *testing.T) {
	t.Parallel()
	s, l := setupTierShop(t)
	start := func() tierUpgrade {
		res := s.upgrade(t, l.Key)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		return decode[tierUpgrade](t, res)
	}
	up := start()
	res := s.send(t, s.srv, http.MethodPost, "/v1/payins/"+up.PayIn.ID+"/cancel", "", "Authorization", "")
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)

	changes := collect[tierChange](t, s.bundle, "/v1/admin/licenses/"+l.ID.String()+"/tier-changes?limit=50")
	require.Equal(t, "failed", changes[0].Status, "the upgrade fails with its PayIn")

	p := requireCode(t, s.send(t, s.srv, http.MethodPost, "/v1/payins/"+up.PayIn.ID+"/retry", "", "Authorization", ""), http.StatusConflict, api.CodeUpgradeNotRetryable)
	require.Contains(t, p.Detail, "start a new one", "a prorated price is not retried")

	again := start()
	require.NotEqual(t, up.PayIn.ID, again.PayIn.ID, "a failed upgrade no longer blocks a new one")
}

// TestTierUpgradeRace: concurrent upgrades of one licence start one PayIn.
func TestTierUpgradeRace(t *testing.T) {
	t.Parallel()
	b, srv := setupServer(t)
	tr := setupTiers(t, b, factory.Customer(t, b.db, b.tenant.ID))
	l := factory.License(t, b.db, b.tenant.ID, tr.standard.ID, tr.customer.ID)

	const n = 6
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses[i] = b.send(t, srv, http.MethodPost, "/v1/upgrade", fmt.Sprintf(`{"key":%q,"policy":"pro-tier"}`, l.Key), "Authorization", "").status
		})
	}
	wg.Wait()
	counts := map[int]int{}
	for _, s := range statuses {
		counts[s]++
	}
	require.Equal(t, map[int]int{http.StatusCreated: 1, http.StatusConflict: n - 1}, counts)
	var payins int
	require.NoError(t, b.db.QueryRow(context.Background(), "SELECT count(*) FROM payins WHERE tenant_id = $1 AND type = 'tier_upgrade'", b.tenant.ID).Scan(&payins))
	require.Equal(t, 1, payins)
}

func TestTierUpgradeBuyerRefusals(t *testing.T) {
	t.Parallel()
	// setupPlus returns a tier bundle and the licence of a monthly Plus subscription.
	setupPlus := func(t *testing.T) (*bundle, sql.License) {
		t.Helper()
		b, tr := setupTierBundle(t)
		_, plus := factory.Subscription(t, b.db, b.tenant.ID, tr.plus.ID, tr.customer.ID)
		return b, plus
	}

	t.Run("PerpetualDowngradeIsRefused", func(t *testing.T) {
		t.Parallel()
		b, tr := setupTierBundle(t)
		pro := factory.License(t, b.db, b.tenant.ID, tr.pro.ID, tr.customer.ID)
		for _, path := range []string{"/v1/upgrade", "/v1/downgrade"} {
			p := requireProblem(t, b.tier(t, path, pro.Key, "standard"), http.StatusBadRequest)
			require.Contains(t, p.Detail, "admin-only")
		}
	})

	t.Run("RecurringDowngradeIsNotAnUpgrade", func(t *testing.T) {
		t.Parallel()
		b, plus := setupPlus(t)
		p := requireProblem(t, b.tier(t, "/v1/upgrade", plus.Key, "basic-monthly"), http.StatusBadRequest)
		require.Contains(t, p.Detail, "POST /v1/downgrade")
	})

	t.Run("AnUpgradeIsNotADowngrade", func(t *testing.T) {
		t.Parallel()
		b, plus := setupPlus(t)
		p := requireProblem(t, b.tier(t, "/v1/downgrade", plus.Key, "plus-yearly"), http.StatusBadRequest)
		require.Contains(t, p.Detail, "POST /v1/upgrade")
	})

	t.Run("ZeroChargeUpgradeIsRefused", func(t *testing.T) {
		t.Parallel()
		b, plus := setupPlus(t)
		b.clock.Set(factory.Now.Add(31 * day)) // past the paid period, not yet renewed: no day left to charge
		p := requireProblem(t, b.tier(t, "/v1/upgrade", plus.Key, "plus-yearly"), http.StatusBadRequest)
		require.Contains(t, p.Detail, "charges nothing")
	})
}

func TestTierDowngradeScheduled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tr := setupTiers(t, b, factory.Customer(t, b.db, b.tenant.ID))
	sub, l := factory.Subscription(t, b.db, b.tenant.ID, tr.plus.ID, tr.customer.ID)

	res := b.tier(t, "/v1/downgrade", l.Key, "basic-monthly")
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	first := decode[tierChange](t, res)
	require.Equal(t, "scheduled", first.Status)
	require.Equal(t, "downgrade", first.Kind)
	require.Equal(t, money{"USD", 0}, first.Charge)
	require.Equal(t, sub.NextRenewalAt.UTC(), first.EffectiveAt.UTC())

	v, _ := b.validate(t, map[string]any{"key": l.Key, "entitlement": "export"})
	require.Equal(t, "VALID", v.Code, "nothing changes before the renewal")

	res = b.tier(t, "/v1/downgrade", l.Key, "basic-monthly")
	require.Equal(t, http.StatusCreated, res.status, "scheduling again replaces it: %s", res.body)
	second := decode[tierChange](t, res)

	cancel := func() response {
		return b.request(t, http.MethodPost, "/v1/downgrade/cancel", fmt.Sprintf(`{"key":%q}`, l.Key), "Authorization", "")
	}
	res = cancel()
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	require.Equal(t, second.ID, decode[tierChange](t, res).ID)
	requireProblem(t, cancel(), http.StatusNotFound)
	requireProblem(t, b.request(t, http.MethodPost, "/v1/downgrade/cancel", `{"key":"garbage"}`, "Authorization", ""), http.StatusUnauthorized)

	statuses := map[string]string{}
	for _, c := range collect[tierChange](t, b, "/v1/admin/licenses/"+l.ID.String()+"/tier-changes?limit=50") {
		statuses[c.ID] = c.Status
	}
	require.Equal(t, map[string]string{first.ID: "cancelled", second.ID: "cancelled"}, statuses)

	t.Run("CancellingTheSubscriptionCancelsIt", func(t *testing.T) {
		t.Parallel()
		b, tr := setupTierBundle(t)
		_, l := factory.Subscription(t, b.db, b.tenant.ID, tr.plus.ID, tr.customer.ID)
		cancel := func() response {
			return b.request(t, http.MethodPost, "/v1/downgrade/cancel", fmt.Sprintf(`{"key":%q}`, l.Key), "Authorization", "")
		}
		require.Equal(t, http.StatusCreated, b.tier(t, "/v1/downgrade", l.Key, "basic-monthly").status)
		res := b.request(t, http.MethodPost, "/v1/subscriptions/cancel", fmt.Sprintf(`{"key":%q}`, l.Key), "Authorization", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		requireProblem(t, cancel(), http.StatusNotFound)
	})
}

func TestTierChangeAdmin(t *testing.T) {
	t.Parallel()
	// setupAdmin returns a tier bundle and its seller's change of a licence's tier.
	setupAdmin := func(t *testing.T) (*bundle, tiers, func(licenseID, policyID fmt.Stringer) response) {
		t.Helper()
		b, tr := setupTierBundle(t)
		return b, tr, func(licenseID, policyID fmt.Stringer) response {
			return b.request(t, http.MethodPost, "/v1/admin/licenses/"+licenseID.String()+"/change-tier", fmt.Sprintf(`{"policy_id":%q}`, policyID))
		}
	}
	type adminChange struct {
		TierChange tierChange `json:"tier_change"`
		License    license    `json:"license"`
	}

	t.Run("PerpetualDowngradeAtOnce", func(t *testing.T) {
		t.Parallel()
		b, tr, changeTier := setupAdmin(t)
		l := factory.License(t, b.db, b.tenant.ID, tr.pro.ID, tr.customer.ID)
		res := changeTier(l.ID, tr.standard.ID)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		got := decode[adminChange](t, res)
		require.Equal(t, "admin", got.TierChange.Kind)
		require.Equal(t, "applied", got.TierChange.Status)
		require.Equal(t, []string{"basic"}, got.License.Entitlements)
		require.Equal(t, int32(1), *got.License.MaxMachines)
		require.Equal(t, l.Key, got.License.Key, "same key")
		require.Contains(t, auditActions(t, b), "tier_change.admin")
		require.Contains(t, auditActions(t, b), "license.tier_change")
	})

	t.Run("FewerMachinesThanActive", func(t *testing.T) {
		t.Parallel()
		b, tr, changeTier := setupAdmin(t)
		l := factory.License(t, b.db, b.tenant.ID, tr.pro.ID, tr.customer.ID)
		for _, fp := range []string{"fp-1", "fp-2"} {
			res := b.request(t, http.MethodPost, "/v1/machines/activate", fmt.Sprintf(`{"key":%q,"fingerprint":%q}`, l.Key, fp), "Authorization", "")
			require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		}
		require.Equal(t, http.StatusOK, changeTier(l.ID, tr.standard.ID).status)
		v, _ := b.validate(t, map[string]any{"key": l.Key})
		require.Equal(t, "TOO_MANY_MACHINES", v.Code, "machines stay active; the buyer deactivates down to the new limit")
		res := b.request(t, http.MethodPost, "/v1/machines/deactivate", fmt.Sprintf(`{"key":%q,"fingerprint":"fp-2"}`, l.Key), "Authorization", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		v, _ = b.validate(t, map[string]any{"key": l.Key})
		require.Equal(t, "VALID", v.Code)
	})

	t.Run("RecurringChangeMovesPriceAndExpiry", func(t *testing.T) {
		t.Parallel()
		b, tr, changeTier := setupAdmin(t)
		sub, l := factory.Subscription(t, b.db, b.tenant.ID, tr.basic.ID, tr.customer.ID)
		res := b.tier(t, "/v1/downgrade", l.Key, "basic-monthly")
		requireProblem(t, res, http.StatusBadRequest) // already on it
		res = changeTier(l.ID, tr.plus.ID)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		got := decode[adminChange](t, res)
		require.Equal(t, sub.CurrentPeriodEnd.UTC().Add(10*day), got.License.ExpiresAt.UTC(), "the paid period plus Plus's 10 grace days")
		updated := decode[struct {
			Price      money `json:"price"`
			PeriodDays int   `json:"period_days"`
		}](t, b.request(t, http.MethodGet, "/v1/admin/subscriptions/"+sub.ID.String(), ""))
		require.Equal(t, money{"USD", 4000}, updated.Price, "renewals charge the new tier")
	})

	t.Run("RecurringWithoutSubscription", func(t *testing.T) {
		t.Parallel()
		b, tr, changeTier := setupAdmin(t)
		// An admin-issued licence of a recurring policy has no subscription: no renewal to
		// wait for, so the seller's downgrade applies at once and the buyer's is refused (the
		// hostile walk found its quote answering 500).
		l := factory.License(t, b.db, b.tenant.ID, tr.plus.ID, tr.customer.ID)
		requireProblem(t, b.tier(t, "/v1/downgrade", l.Key, "basic-monthly"), http.StatusBadRequest)
		res := changeTier(l.ID, tr.basic.ID)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		got := decode[adminChange](t, res)
		require.Equal(t, "applied", got.TierChange.Status)
		require.Equal(t, factory.Now.UTC(), got.TierChange.EffectiveAt.UTC())
	})

	t.Run("CancelsAScheduledDowngrade", func(t *testing.T) {
		t.Parallel()
		b, tr, changeTier := setupAdmin(t)
		_, l := factory.Subscription(t, b.db, b.tenant.ID, tr.plusYearly.ID, tr.customer.ID)
		require.Equal(t, http.StatusCreated, b.tier(t, "/v1/downgrade", l.Key, "basic-monthly").status)
		require.Equal(t, http.StatusOK, changeTier(l.ID, tr.plus.ID).status)
		statuses := []string{}
		for _, c := range collect[tierChange](t, b, "/v1/admin/licenses/"+l.ID.String()+"/tier-changes?limit=50") {
			statuses = append(statuses, c.Kind+":"+c.Status)
		}
		require.Equal(t, []string{"admin:applied", "downgrade:cancelled"}, statuses)
	})

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		b, tr, changeTier := setupAdmin(t)
		l := factory.License(t, b.db, b.tenant.ID, tr.standard.ID, tr.customer.ID)
		requireProblem(t, changeTier(l.ID, tr.standard.ID), http.StatusBadRequest)
		requireProblem(t, changeTier(l.ID, tr.plus.ID), http.StatusBadRequest)
		requireProblem(t, changeTier(factory.Tenant(t, b.db).ID, tr.pro.ID), http.StatusNotFound)
		other := factory.Tenant(t, b.db)
		foreign := factory.Policy(t, b.db, other.ID)
		requireProblem(t, changeTier(l.ID, foreign.ID), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/licenses/"+foreign.ID.String()+"/tier-changes", ""), http.StatusNotFound)
	})
}

// TestTierHostileInput: whatever a buyer sends, the tier endpoints answer a problem below 500.
func TestTierHostileInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tr := setupTiers(t, b, factory.Customer(t, b.db, b.tenant.ID))
	l := factory.License(t, b.db, b.tenant.ID, tr.standard.ID, tr.customer.ID)
	keys := []string{l.Key, "", "\u0000", l.Key + "\u0000", "TSR1." + strings.Repeat("A", 43) + "." + strings.Repeat("B", 86), "💥", strings.Repeat("k", 600)}
	policies := []string{"pro-tier", "", "\u0000", "PRO-TIER", "pro-tier'; DROP TABLE policies; --", strings.Repeat("p", 101), "é"}
	for _, path := range []string{"/v1/upgrade-quote", "/v1/upgrade", "/v1/downgrade"} {
		for _, key := range keys {
			for _, policy := range policies {
				body, err := json.Marshal(map[string]string{"key": key, "policy": policy})
				require.NoError(t, err)
				res := b.request(t, http.MethodPost, path, string(body), "Authorization", "")
				require.Less(t, res.status, 500, "%s %s gave %d: %s", path, body, res.status, res.body)
				if res.status >= 400 {
					requireProblem(t, res, res.status)
				}
			}
		}
	}
	for _, body := range []string{`{"key":1,"policy":"pro-tier"}`, `{"key":"x"}`, `[]`, `{"key":"x","policy":"pro-tier","extra":true}`} {
		requireProblem(t, b.request(t, http.MethodPost, "/v1/upgrade", body, "Authorization", ""), http.StatusUnprocessableEntity)
	}
}

// TestTierChangesConcurrent sends admin changes, buyer downgrades and their cancellations of
// one subscription at once, on real connections: every answer is a decision (no 500, no
// deadlock), at most one downgrade stays scheduled, and the licence and its subscription end
// on the same tier.
func TestTierChangesConcurrent(t *testing.T) {
	t.Parallel()
	b, srv := setupServer(t)
	tr := setupTiers(t, b, factory.Customer(t, b.db, b.tenant.ID))
	sub, l := factory.Subscription(t, b.db, b.tenant.ID, tr.plusYearly.ID, tr.customer.ID)
	targets := []sql.Policy{tr.basic, tr.plus, tr.plusYearly}

	var wg sync.WaitGroup
	statuses := make(chan int, 60)
	for i := range 20 {
		wg.Go(func() {
			target := targets[i%len(targets)]
			var res response
			switch i % 3 {
			case 0:
				res = b.send(t, srv, http.MethodPost, "/v1/admin/licenses/"+l.ID.String()+"/change-tier", fmt.Sprintf(`{"policy_id":%q}`, target.ID))
			case 1:
				res = b.send(t, srv, http.MethodPost, "/v1/downgrade", fmt.Sprintf(`{"key":%q,"policy":%q}`, l.Key, target.Slug), "Authorization", "")
			default:
				res = b.send(t, srv, http.MethodPost, "/v1/downgrade/cancel", fmt.Sprintf(`{"key":%q}`, l.Key), "Authorization", "")
			}
			statuses <- res.status
		})
	}
	wg.Wait()
	close(statuses)
	for status := range statuses {
		require.Less(t, status, 500)
	}
	var licensePolicy, subscriptionPolicy string
	var scheduled int
	require.NoError(t, b.db.QueryRow(context.Background(), `SELECT l.policy_id, s.policy_id,
		(SELECT count(*) FROM tier_changes c WHERE c.tenant_id = l.tenant_id AND c.license_id = l.id AND c.status = 'scheduled')
		FROM licenses l JOIN subscriptions s ON s.tenant_id = l.tenant_id AND s.license_id = l.id WHERE s.id = $1`, sub.ID).
		Scan(&licensePolicy, &subscriptionPolicy, &scheduled))
	require.Equal(t, licensePolicy, subscriptionPolicy)
	require.LessOrEqual(t, scheduled, 1)
}
