package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/sql"
)

// generate makes one tenant (referral settings at their defaults: no referral_settings row),
// a qualifying and a non-qualifying recurring policy, and customers 1..customers, of whom
// 1..referrers are the referrers, with their referrals, subscriptions (and licences) and
// events. Everything is set-based SQL with deterministic pseudo-randomness: rnd(n, salt) is
// a uniform [0, 1) drawn from hashint8extended of the row number, so the same flags give the
// same data. It returns the tenant's id.
func generate(ctx context.Context, pool *pgxpool.Pool, now time.Time, customers, referrers int) (uuid.UUID, error) {
	box, err := secrets.New(make([]byte, secrets.KeySize))
	if err != nil {
		return uuid.Nil, err
	}
	actor := core.Actor{Type: core.ActorCLI, ID: "bench"}
	var tenant sql.Tenant
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) (err error) {
		tenant, err = core.TenantCreate(ctx, tx, core.Step{Now: now, Actor: actor, Box: box}, core.TenantCreateParams{Slug: "bench", Name: "Bench"})
		return err
	})
	if err != nil {
		return uuid.Nil, err
	}
	q := sql.New()
	product, err := q.ProductCreate(ctx, pool, sql.ProductCreateParams{TenantID: tenant.ID, ID: core.NewID(), Slug: "bench", Name: "Bench", Now: now})
	if err != nil {
		return uuid.Nil, fmt.Errorf("create product: %w", err)
	}
	period, machines := int32(30), int32(3)
	policyIDs := map[bool]uuid.UUID{}
	for _, qualifies := range []bool{true, false} {
		slug := map[bool]string{true: "pro-monthly", false: "basic-monthly"}[qualifies]
		p, err := q.PolicyCreate(ctx, pool, sql.PolicyCreateParams{
			TenantID: tenant.ID, ID: core.NewID(), ProductID: product.ID, Slug: slug, Name: slug,
			ListedCurrency: sql.CurrencyUSD, ListedValue: 900, IsRecurring: true, PeriodDays: &period,
			GracePeriodDays: 7, MaxMachines: &machines, Entitlements: []string{}, QualifiesForReferrals: qualifies, Now: now,
		})
		if err != nil {
			return uuid.Nil, fmt.Errorf("create policy %s: %w", slug, err)
		}
		policyIDs[qualifies] = p.ID
	}

	// The statements' inputs, substituted as typed literals (the values are the generator's
	// own, and DDL such as CREATE TABLE AS takes no bind parameters): $1 tenant, $2 now,
	// $3 referrers, $4 customers, $5 qualifying policy, $6 other policy.
	literals := []string{
		"'" + tenant.ID.String() + "'::uuid", "'" + now.UTC().Format(time.RFC3339) + "'::timestamptz",
		fmt.Sprint(referrers), fmt.Sprint(customers),
		"'" + policyIDs[true].String() + "'::uuid", "'" + policyIDs[false].String() + "'::uuid",
	}
	steps := []struct{ name, sql string }{
		{"rnd", `CREATE FUNCTION pg_temp.rnd(n bigint, salt bigint) RETURNS float8 LANGUAGE sql IMMUTABLE AS
		  $$ SELECT (hashint8extended(n, salt) & 4503599627370495)::float8 / 4503599627370496 $$`},
		// Referral counts per referrer: 2% are a tail of 10..59, the rest geometric from 1
		// (most 1-3, mean about 1.8); 1% are abusive (more likely in the tail), whose
		// referrals mostly register from the referrer's own IPs.
		{"referrers", `CREATE TEMP TABLE refs AS
		  SELECT k, cnt, sum(cnt) OVER (ORDER BY k) - cnt AS start,
		         (cnt >= 10 AND pg_temp.rnd(k, 3) < 0.3) OR pg_temp.rnd(k, 4) < 0.005 AS abusive
		  FROM (SELECT k, CASE WHEN pg_temp.rnd(k, 1) < 0.02 THEN 10 + floor(pg_temp.rnd(k, 2) * 50)::int
		                       ELSE 1 + floor(ln(1 - pg_temp.rnd(k, 2)) / ln(0.45))::int END AS cnt
		        FROM generate_series(1, $3::int) k) x`},
		// Customers: 1..referrers are the referrers (one in ten referred by an earlier
		// referrer), then each referrer's referrals in turn, then organic customers. 96%
		// active, 85% verified. Accounts over three years; a referral signs up after its
		// referrer, 4% of them within the past ten days.
		{"customers", `CREATE TEMP TABLE cust AS
		  SELECT g AS n, md5('c' || g)::uuid AS id,
		         CASE WHEN g <= $3 THEN 'referrer' WHEN rf.k IS NOT NULL THEN 'referred' ELSE 'organic' END AS role,
		         CASE WHEN g <= $3 AND g > 1 AND pg_temp.rnd(g, 11) < 0.1 THEN 1 + floor(pg_temp.rnd(g, 12) * (g - 1))::int ELSE rf.k END AS referrer_n,
		         coalesce(rf.abusive, false) AS abusive_referrer, coalesce(own.abusive, false) AS abusive,
		         $2::timestamptz - make_interval(secs => pg_temp.rnd(g, 10) * 1095 * 86400) AS base_created_at,
		         pg_temp.rnd(g, 16) < 0.96 AS is_active, pg_temp.rnd(g, 17) < 0.85 AS is_verified
		  FROM generate_series(1, $4::int) g
		  LEFT JOIN (SELECT r.k, r.abusive, generate_series(r.start + 1, r.start + r.cnt) AS j FROM refs r) rf ON g = $3 + rf.j
		  LEFT JOIN refs own ON own.k = g`},
		{"customer dates", `CREATE TEMP TABLE cust2 AS
		  SELECT c.*, r.id AS referrer_id,
		         CASE WHEN c.role <> 'referred' THEN c.base_created_at
		              WHEN pg_temp.rnd(c.n, 14) < 0.04 THEN $2::timestamptz - make_interval(secs => pg_temp.rnd(c.n, 15) * 10 * 86400)
		              ELSE r.base_created_at + ($2::timestamptz - r.base_created_at) * pg_temp.rnd(c.n, 13) END AS created_at
		  FROM cust c LEFT JOIN cust r ON r.n = c.referrer_n`},
		{"insert customers", `INSERT INTO customers (tenant_id, id, email, is_active, is_verified, invite_code, referred_by, created_at, updated_at)
		  SELECT $1::uuid, id, 'c' || n || '@bench.invalid', is_active, is_verified, 'INV' || n, referrer_id, created_at, created_at
		  FROM cust2 ORDER BY n`},
		// Subscriptions: 30% of customers none, 58% one, 12% two; 70% on the qualifying
		// policy. 68% active (3% of them with a licence already past expiry), 10% past_due
		// (in a grace of up to 10 days: some expired), 11% lapsed, 11% cancelled (some still
		// running to their period's end). Started between the account's creation and now,
		// 5% within the past ten days.
		{"subscriptions", `CREATE TEMP TABLE subs AS
		  SELECT m, c.id AS customer_id, created_at,
		         CASE WHEN pg_temp.rnd(m, 21) < 0.7 THEN $5::uuid ELSE $6::uuid END AS policy_id,
		         status::subscription_status AS status,
		         CASE status
		             WHEN 'active' THEN CASE WHEN pg_temp.rnd(m, 26) < 0.03 THEN $2::timestamptz - make_interval(secs => pg_temp.rnd(m, 27) * 3 * 86400)
		                                     ELSE $2::timestamptz + make_interval(secs => pg_temp.rnd(m, 27) * 30 * 86400) END
		             WHEN 'past_due' THEN $2::timestamptz - make_interval(secs => pg_temp.rnd(m, 27) * 7 * 86400)
		             WHEN 'lapsed' THEN $2::timestamptz - make_interval(secs => (7 + pg_temp.rnd(m, 27) * 300) * 86400)
		             ELSE $2::timestamptz + make_interval(secs => (pg_temp.rnd(m, 27) * 230 - 200) * 86400) END AS period_end
		  FROM (SELECT c.id, c.n * 2 + i AS m, c.created_at AS customer_created_at,
		               CASE WHEN pg_temp.rnd(c.n * 2 + i, 24) < 0.05
		                    THEN greatest(c.created_at, $2::timestamptz - make_interval(secs => pg_temp.rnd(c.n * 2 + i, 25) * 10 * 86400))
		                    ELSE c.created_at + ($2::timestamptz - c.created_at) * pg_temp.rnd(c.n * 2 + i, 23) END AS created_at,
		               CASE WHEN pg_temp.rnd(c.n * 2 + i, 22) < 0.68 THEN 'active' WHEN pg_temp.rnd(c.n * 2 + i, 22) < 0.78 THEN 'past_due'
		                    WHEN pg_temp.rnd(c.n * 2 + i, 22) < 0.89 THEN 'lapsed' ELSE 'cancelled' END AS status
		        FROM cust2 c
		        CROSS JOIN LATERAL generate_series(1, CASE WHEN pg_temp.rnd(c.n, 20) < 0.3 THEN 0 WHEN pg_temp.rnd(c.n, 20) < 0.88 THEN 1 ELSE 2 END) i) c`},
		{"licences", `INSERT INTO licenses (tenant_id, id, policy_id, customer_id, key, status, issued_at, expires_at, max_machines, status_changed_at, updated_at)
		  SELECT $1::uuid, md5('l' || m)::uuid, policy_id, customer_id, 'bench-' || m,
		         CASE WHEN expires_at >= $2::timestamptz THEN 'active' ELSE 'expired' END::license_status,
		         created_at, expires_at, 3, created_at, $2::timestamptz
		  FROM (SELECT s.*, CASE WHEN status = 'past_due' THEN period_end + make_interval(secs => pg_temp.rnd(m, 28) * 10 * 86400)
		                         ELSE period_end END AS expires_at FROM subs s) x
		  ORDER BY m`},
		{"insert subscriptions", `INSERT INTO subscriptions (tenant_id, id, customer_id, license_id, policy_id, status, price_currency, price_value,
		                           period_days, current_period_start, current_period_end, next_renewal_at, consecutive_failures,
		                           created_at, cancelled_at, status_changed_at, updated_at)
		  SELECT $1::uuid, md5('s' || m)::uuid, customer_id, md5('l' || m)::uuid, policy_id, status, 'USD', 900,
		         30, period_end - interval '30 days', period_end,
		         CASE WHEN status IN ('active', 'past_due') THEN period_end END,
		         CASE WHEN status = 'past_due' THEN 1 ELSE 0 END,
		         created_at, CASE WHEN status = 'cancelled' THEN period_end - make_interval(secs => pg_temp.rnd(m, 29) * 20 * 86400) END,
		         $2::timestamptz - interval '1 day', $2::timestamptz - interval '1 day'
		  FROM subs ORDER BY m`},
		// registered events: 1% of customers have none, 1% a second one; 4% carry no IP
		// hash. A referrer registers from their own first IP. A referral of an abusive
		// referrer registers from one of the referrer's three IPs 80% of the time; any
		// other referral from the referrer's home IP 4% of the time, from one of two IPs
		// shared with the referrer's other referrals (a household, an office) 12%,
		// otherwise from a pool of 2M addresses (carrier NAT makes rare collisions).
		{"registered events", `INSERT INTO customer_events (tenant_id, id, customer_id, type, ip_hash, occurred_at, created_at)
		  SELECT $1::uuid, md5('er' || c.n || '-' || i)::uuid, c.id, 'registered',
		         CASE WHEN pg_temp.rnd(c.n * 2 + i, 31) < 0.04 THEN NULL
		              WHEN i = 2 THEN md5('ip' || floor(pg_temp.rnd(c.n, 35) * 2000000))
		              WHEN c.role = 'referrer' THEN md5('own' || c.n || '-0')
		              WHEN c.role = 'referred' AND c.abusive_referrer AND pg_temp.rnd(c.n, 32) < 0.8
		                  THEN md5('own' || c.referrer_n || '-' || floor(pg_temp.rnd(c.n, 33) * 3))
		              WHEN c.role = 'referred' AND pg_temp.rnd(c.n, 32) < 0.04 THEN md5('own' || c.referrer_n || '-0')
		              WHEN c.role = 'referred' AND pg_temp.rnd(c.n, 32) < 0.16 THEN md5('grp' || c.referrer_n || '-' || floor(pg_temp.rnd(c.n, 33) * 2))
		              ELSE md5('ip' || floor(pg_temp.rnd(c.n, 34) * 2000000)) END,
		         c.created_at, c.created_at
		  FROM cust2 c
		  CROSS JOIN LATERAL generate_series(1, CASE WHEN pg_temp.rnd(c.n, 30) < 0.01 THEN 0 WHEN pg_temp.rnd(c.n, 30) < 0.02 THEN 2 ELSE 1 END) i`},
		// login events over the past 60 days (half inside the 30-day IP window): three
		// per referrer (six per abusive one) from their three IPs, 5% without an IP hash;
		// one for 30% of the other customers, from the IP they registered from.
		{"login events", `INSERT INTO customer_events (tenant_id, id, customer_id, type, ip_hash, occurred_at, created_at)
		  SELECT $1::uuid, md5('el' || c.n || '-' || i)::uuid, c.id, 'login',
		         CASE WHEN pg_temp.rnd(c.n * 8 + i, 41) < 0.05 THEN NULL
		              WHEN c.role = 'referrer' THEN md5('own' || c.n || '-' || floor(pg_temp.rnd(c.n * 8 + i, 42) * 3))
		              ELSE md5('ip' || floor(pg_temp.rnd(c.n, 34) * 2000000)) END,
		         $2::timestamptz - make_interval(secs => pg_temp.rnd(c.n * 8 + i, 43) * 60 * 86400),
		         $2::timestamptz - make_interval(secs => pg_temp.rnd(c.n * 8 + i, 43) * 60 * 86400)
		  FROM cust2 c
		  CROSS JOIN LATERAL generate_series(1, CASE WHEN c.role = 'referrer' THEN CASE WHEN c.abusive THEN 6 ELSE 3 END
		                                             WHEN pg_temp.rnd(c.n, 40) < 0.3 THEN 1 ELSE 0 END) i`},
		{"drop temp tables", `DROP TABLE subs, cust2, cust, refs`},
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return uuid.Nil, err
	}
	defer conn.Release()
	for _, step := range steps {
		start := clock.System{}.Now()
		text := paramRE.ReplaceAllStringFunc(step.sql, func(p string) string { return literals[p[1]-'1'] })
		if _, err := conn.Exec(ctx, text); err != nil {
			return uuid.Nil, fmt.Errorf("generate %s: %w", step.name, err)
		}
		fmt.Fprintf(os.Stderr, "  %-20s %s\n", step.name, time.Since(start).Round(100*time.Millisecond))
	}
	start := clock.System{}.Now()
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) customers, customer_events, subscriptions, licenses, policies"); err != nil {
		return uuid.Nil, fmt.Errorf("vacuum: %w", err)
	}
	fmt.Fprintf(os.Stderr, "  %-20s %s\n", "vacuum analyze", time.Since(start).Round(100*time.Millisecond))
	return tenant.ID, nil
}

// paramRE finds a statement's parameters.
var paramRE = regexp.MustCompile(`\$[1-6]`)
