package factory

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

var queries = sql.New()

// unique returns prefix followed by 12 random hex characters.
func unique(prefix string) string {
	return prefix + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
}

// Product creates a product of tenantID with a unique slug. opts change the parameters
// before the insert.
func Product(tb testing.TB, db sql.DBTX, tenantID uuid.UUID, opts ...func(*sql.ProductCreateParams)) sql.Product {
	tb.Helper()
	p := sql.ProductCreateParams{TenantID: tenantID, ID: core.NewID(), Slug: unique("product-"), Name: "Product", Now: Now}
	for _, opt := range opts {
		opt(&p)
	}
	product, err := queries.ProductCreate(context.Background(), db, p)
	if err != nil {
		tb.Fatalf("factory: product: %v", err)
	}
	return product
}

// ProductRelease records a release of productID with the given version, released at
// releasedAt.
func ProductRelease(tb testing.TB, db sql.DBTX, tenantID, productID uuid.UUID, version string, releasedAt time.Time) sql.ProductRelease {
	tb.Helper()
	release, err := queries.ProductReleaseCreate(context.Background(), db, sql.ProductReleaseCreateParams{
		TenantID: tenantID, ID: core.NewID(), ProductID: productID, Version: version, ReleasedAt: releasedAt, Now: Now,
	})
	if err != nil {
		tb.Fatalf("factory: product release: %v", err)
	}
	return release
}

// Policy creates a policy of tenantID. The default is a perpetual (non-recurring) tier with
// a unique slug, priced USD 25.00, 7 grace days, unlimited machines, no entitlements, no
// perpetual_after_days, not qualifying for referrals, on a new product (unless an option sets
// ProductID). opts (PolicyRecurring, PolicyPrice, ... or any func) change the parameters
// before the insert.
func Policy(tb testing.TB, db sql.DBTX, tenantID uuid.UUID, opts ...func(*sql.PolicyCreateParams)) sql.Policy {
	tb.Helper()
	p := sql.PolicyCreateParams{
		TenantID: tenantID, ID: core.NewID(), Slug: unique("policy-"), Name: "Policy",
		ListedCurrency: sql.CurrencyUSD, ListedValue: 2500, GracePeriodDays: 7, Entitlements: []string{}, Now: Now,
	}
	for _, opt := range opts {
		opt(&p)
	}
	if p.ProductID == uuid.Nil {
		p.ProductID = Product(tb, db, tenantID).ID
	}
	policy, err := queries.PolicyCreate(context.Background(), db, p)
	if err != nil {
		tb.Fatalf("factory: policy: %v", err)
	}
	return policy
}

// PolicyProduct puts the policy on productID.
func PolicyProduct(productID uuid.UUID) func(*sql.PolicyCreateParams) {
	return func(p *sql.PolicyCreateParams) { p.ProductID = productID }
}

// PolicySlug sets the policy's slug.
func PolicySlug(slug string) func(*sql.PolicyCreateParams) {
	return func(p *sql.PolicyCreateParams) { p.Slug = slug }
}

// PolicyRecurring makes the policy recurring every periodDays days.
func PolicyRecurring(periodDays int32) func(*sql.PolicyCreateParams) {
	return func(p *sql.PolicyCreateParams) {
		p.IsRecurring = true
		p.PeriodDays = &periodDays
	}
}

// PolicyPrice sets the policy's listed price in minor units of currency.
func PolicyPrice(currency sql.Currency, value int64) func(*sql.PolicyCreateParams) {
	return func(p *sql.PolicyCreateParams) {
		p.ListedCurrency = currency
		p.ListedValue = value
	}
}

// PolicyTierRank sets the policy's tier rank.
func PolicyTierRank(rank int32) func(*sql.PolicyCreateParams) {
	return func(p *sql.PolicyCreateParams) { p.TierRank = rank }
}

// PolicyGraceDays sets the policy's grace period in days.
func PolicyGraceDays(days int32) func(*sql.PolicyCreateParams) {
	return func(p *sql.PolicyCreateParams) { p.GracePeriodDays = days }
}

// PolicyMaxMachines limits the policy to n active machines per licence.
func PolicyMaxMachines(n int32) func(*sql.PolicyCreateParams) {
	return func(p *sql.PolicyCreateParams) { p.MaxMachines = &n }
}

// PolicyEntitlements sets the policy's entitlements.
func PolicyEntitlements(entitlements ...string) func(*sql.PolicyCreateParams) {
	return func(p *sql.PolicyCreateParams) { p.Entitlements = entitlements }
}

// PolicyPerpetualAfterDays sets after how many days of subscription a cancellation leaves a
// perpetual licence.
func PolicyPerpetualAfterDays(days int32) func(*sql.PolicyCreateParams) {
	return func(p *sql.PolicyCreateParams) { p.PerpetualAfterDays = &days }
}

// PolicyQualifiesForReferrals makes the policy count for referrals.
func PolicyQualifiesForReferrals() func(*sql.PolicyCreateParams) {
	return func(p *sql.PolicyCreateParams) { p.QualifiesForReferrals = true }
}

// Addon creates an add-on of tenantID with a unique slug and empty metadata. opts
// (AddonSlug, AddonMetadata, AddonPerpetual or any func) change the parameters before the
// insert.
func Addon(tb testing.TB, db sql.DBTX, tenantID uuid.UUID, opts ...func(*sql.AddonCreateParams)) sql.Addon {
	tb.Helper()
	p := sql.AddonCreateParams{TenantID: tenantID, ID: core.NewID(), Slug: unique("addon-"), Name: "Add-on", Metadata: []byte("{}"), Now: Now}
	for _, opt := range opts {
		opt(&p)
	}
	addon, err := queries.AddonCreate(context.Background(), db, p)
	if err != nil {
		tb.Fatalf("factory: addon: %v", err)
	}
	return addon
}

// AddonSlug sets the add-on's slug.
func AddonSlug(slug string) func(*sql.AddonCreateParams) {
	return func(p *sql.AddonCreateParams) { p.Slug = slug }
}

// AddonMetadata sets the add-on's metadata to metadata encoded as JSON.
func AddonMetadata(metadata map[string]any) func(*sql.AddonCreateParams) {
	return func(p *sql.AddonCreateParams) {
		b, err := json.Marshal(metadata)
		if err != nil {
			panic(err) // a test's literal map; cannot fail in practice
		}
		p.Metadata = b
	}
}

// AddonPerpetual makes the add-on a perpetual add-on adding features to licences of the
// policies whose slugs are allowedIDs.
func AddonPerpetual(features []string, allowedIDs ...string) func(*sql.AddonCreateParams) {
	if features == nil {
		features = []string{}
	}
	if allowedIDs == nil {
		allowedIDs = []string{}
	}
	return AddonMetadata(map[string]any{"perpetual": true, "features": features, "allowed_ids": allowedIDs})
}
