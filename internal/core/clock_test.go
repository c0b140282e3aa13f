package core_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// sandbox is a sandbox tenant of a clock test, its clock starting at factory.Now, with a
// monthly policy (7 days' grace) and a yearly one of the same product.
type sandbox struct {
	db      pg.DB
	tenant  sql.Tenant
	monthly sql.Policy
	yearly  sql.Policy
}

func newSandbox(t *testing.T, db pg.DB) sandbox {
	t.Helper()
	tenant := factory.SandboxTenant(t, db, factory.Now)
	product := factory.Product(t, db, tenant.ID)
	s := sandbox{db: db, tenant: tenant}
	s.monthly = factory.Policy(t, db, tenant.ID, factory.PolicyProduct(product.ID), factory.PolicyRecurring(30), factory.PolicyGraceDays(7),
		factory.PolicyPrice(sql.CurrencySAT, 1000), factory.PolicyPerpetualAfterDays(365), factory.PolicyTierRank(1))
	s.yearly = factory.Policy(t, db, tenant.ID, factory.PolicyProduct(product.ID), factory.PolicyRecurring(365), factory.PolicyGraceDays(14),
		factory.PolicyPrice(sql.CurrencySAT, 10000), factory.PolicyTierRank(0))
	return s
}

// step is a step at the sandbox's clock.
func (s sandbox) step(t *testing.T) core.Step {
	t.Helper()
	tenant, err := sql.New().TenantGet(t.Context(), s.db, s.tenant.ID)
	require.NoError(t, err)
	st := factory.Step()
	st.Now = *tenant.ClockAt
	return st
}

// run runs f in a transaction (a savepoint of the test's).
func (s sandbox) run(t *testing.T, f func(tx pgx.Tx, st core.Step) error) error {
	t.Helper()
	st := s.step(t)
	return pg.InTx(t.Context(), s.db, func(tx pgx.Tx) error { return f(tx, st) })
}

// advance moves the clock to `to`, batch things per run, and returns the finished advance.
func (s sandbox) advance(t *testing.T, to time.Time, batch int) sql.ClockAdvance {
	t.Helper()
	var advance sql.ClockAdvance
	require.NoError(t, s.run(t, func(tx pgx.Tx, st core.Step) (err error) {
		advance, err = core.ClockAdvanceStart(t.Context(), tx, st, core.ClockAdvanceParams{TenantID: s.tenant.ID, To: &to})
		return err
	}))
	for advance.Status == sql.ClockAdvanceStatusRunning {
		require.NoError(t, s.run(t, func(tx pgx.Tx, st core.Step) (err error) {
			advance, err = core.ClockAdvanceRun(t.Context(), tx, st, core.ClockAdvanceRunParams{TenantID: s.tenant.ID, ID: advance.ID, Batch: batch})
			return err
		}))
	}
	require.True(t, to.Equal(advance.ClockAt))
	return advance
}

// subscribe starts a subscription of a new customer at the clock, with credits and auto-pay
// or not.
func (s sandbox) subscribe(t *testing.T, email string, policy sql.Policy, credits int64) sql.Subscription {
	t.Helper()
	customer := factory.Customer(t, s.db, s.tenant.ID, factory.CustomerEmail(email))
	if credits > 0 {
		require.NoError(t, s.run(t, func(tx pgx.Tx, st core.Step) error {
			if _, _, err := core.CreditGrant(t.Context(), tx, st, core.CreditGrantParams{TenantID: s.tenant.ID, CustomerID: customer.ID, Amount: credits}); err != nil {
				return err
			}
			_, err := core.CustomerSetAutoPay(t.Context(), tx, st, core.CustomerSetAutoPayParams{TenantID: s.tenant.ID, ID: customer.ID, AutoPay: true})
			return err
		}))
	}
	var sub sql.Subscription
	require.NoError(t, s.run(t, func(tx pgx.Tx, st core.Step) (err error) {
		sub, _, err = core.SubscriptionCreate(t.Context(), tx, st, core.SubscriptionCreateParams{TenantID: s.tenant.ID, CustomerID: customer.ID, PolicyID: policy.ID})
		return err
	}))
	return sub
}

// payPending pays, at its checkout, every sandbox invoice of a PENDING PayIn of customers
// whose email is in emails.
func (s sandbox) payPending(t *testing.T, emails ...string) {
	t.Helper()
	rows, err := s.db.Query(t.Context(), `SELECT i.provider_invoice_id FROM payin_invoices i
		JOIN payins p ON p.tenant_id = i.tenant_id AND p.id = i.payin_id AND p.state = 'PENDING'
		JOIN customers c ON c.tenant_id = p.tenant_id AND c.id = p.customer_id
		WHERE i.tenant_id = $1 AND c.email = ANY($2) ORDER BY c.email`, s.tenant.ID, emails)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, id := range ids {
		require.NoError(t, s.run(t, func(tx pgx.Tx, st core.Step) error {
			_, err := core.SandboxInvoicePay(t.Context(), tx, st, core.SandboxInvoicePayParams{ID: id})
			return err
		}))
	}
}

// state is the sandbox's ledger, events and licence and subscription states, without ids:
// what two runs of one script must agree on.
func (s sandbox) state(t *testing.T) []string {
	t.Helper()
	var lines []string
	for _, q := range []string{
		`SELECT format('payin %s %s %s %s %s %s %s', c.email, p.type, p.state, p.failure_reason, p.cost_sats, p.created_at, p.state_changed_at)
		 FROM payins p JOIN customers c ON c.tenant_id = p.tenant_id AND c.id = p.customer_id WHERE p.tenant_id = $1
		 ORDER BY c.email, p.created_at, p.state_changed_at, p.type`,
		`SELECT format('payout %s %s %s %s %s', c.email, o.type, o.asset, o.amount, o.balance_after)
		 FROM payouts o JOIN payins p ON p.tenant_id = o.tenant_id AND p.id = o.payin_id
		 JOIN customers c ON c.tenant_id = p.tenant_id AND c.id = p.customer_id WHERE o.tenant_id = $1
		 ORDER BY c.email, p.created_at, o.type, o.asset, o.amount`,
		`SELECT format('balance %s %s %s', c.email, b.asset, b.amount) FROM balances b
		 JOIN customers c ON c.tenant_id = b.tenant_id AND c.id = b.customer_id WHERE b.tenant_id = $1 ORDER BY c.email, b.asset`,
		`SELECT format('subscription %s %s %s %s %s %s', c.email, s.status, s.current_period_start, s.current_period_end, s.next_renewal_at, s.consecutive_failures)
		 FROM subscriptions s JOIN customers c ON c.tenant_id = s.tenant_id AND c.id = s.customer_id WHERE s.tenant_id = $1 ORDER BY c.email`,
		`SELECT format('licence %s %s %s %s %s', c.email, l.status, l.expires_at, l.subscription_expiration_date, l.status_changed_at)
		 FROM licenses l JOIN customers c ON c.tenant_id = l.tenant_id AND c.id = l.customer_id WHERE l.tenant_id = $1 ORDER BY c.email`,
		`SELECT format('event %s %s', type, occurred_at) FROM events WHERE tenant_id = $1 ORDER BY occurred_at, type`,
	} {
		rows, err := s.db.Query(t.Context(), q, s.tenant.ID)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		lines = append(lines, got...)
	}
	return lines
}

// TestClockAdvanceDeterministic runs one scripted year in two sandboxes — subscriptions paid
// from credits, paid at their checkout, left unpaid, a cancel — advancing one in two long
// steps and the other in many small ones of few things per run: the ledger, the events and
// every licence and subscription agree, and so does a third run of the first script.
func TestClockAdvanceDeterministic(t *testing.T) {
	t.Parallel()
	db := core.DB(testdb.Tx(t))
	year := func(s sandbox, advance func(to time.Time)) {
		s.subscribe(t, "autopay@example.com", s.monthly, 20000)
		s.subscribe(t, "unpaid@example.com", s.monthly, 0)
		s.subscribe(t, "checkout@example.com", s.monthly, 0)
		s.subscribe(t, "yearly@example.com", s.yearly, 0)
		cancelled := s.subscribe(t, "cancels@example.com", s.monthly, 5000)
		s.payPending(t, "checkout@example.com", "yearly@example.com", "unpaid@example.com", "cancels@example.com")
		for day := 30; day <= 360; day += 30 {
			advance(factory.Now.AddDate(0, 0, day).Add(time.Minute))
			s.payPending(t, "checkout@example.com")
			if day == 90 {
				require.NoError(t, s.run(t, func(tx pgx.Tx, st core.Step) error {
					_, _, err := core.SubscriptionCancel(t.Context(), tx, st, core.SubscriptionCancelParams{TenantID: s.tenant.ID, ID: cancelled.ID})
					return err
				}))
			}
		}
		advance(factory.Now.AddDate(1, 0, 0))
	}

	long := newSandbox(t, db)
	year(long, func(to time.Time) { long.advance(t, to, 1000) })
	short := newSandbox(t, db)
	year(short, func(to time.Time) {
		for at := short.step(t).Now.Add(7 * time.Hour); at.Before(to); at = at.Add(7 * time.Hour) {
			short.advance(t, at, 3)
		}
		short.advance(t, to, 3)
	})
	again := newSandbox(t, db)
	year(again, func(to time.Time) { again.advance(t, to, 1000) })

	want := long.state(t)
	require.Contains(t, fmt.Sprint(want), "subscription unpaid@example.com lapsed")
	require.Contains(t, fmt.Sprint(want), "subscription cancels@example.com cancelled")
	require.Contains(t, fmt.Sprint(want), "subscription.renewal_pending")
	require.Equal(t, want, short.state(t), "small steps reach the state one long step reaches")
	require.Equal(t, want, again.state(t), "the same script gives the same result")
	for _, s := range []sandbox{long, short, again} {
		violations, err := sql.New().PayInInvariantViolations(t.Context(), db, s.tenant.ID)
		require.NoError(t, err)
		require.Empty(t, violations)
	}
}

// TestClockAdvanceInvariants runs random sequences of purchases, payments, cancellations,
// tier changes and advances in a sandbox: after each step the ledger keeps SPEC 3's
// invariants, and every subscription and licence agree with the clock — an advance leaves
// nothing due at its end, an active or past_due subscription's licence is not expired before its grace ends,
// and a lapsed one's licence has expired.
func TestClockAdvanceInvariants(t *testing.T) {
	t.Parallel()
	db := core.DB(testdb.Tx(t))
	rapid.Check(t, func(rt *rapid.T) {
		s := newSandbox(t, db)
		var subs []sql.Subscription
		advanced := false // the last action was an advance
		pick := func(rt *rapid.T) (sql.Subscription, bool) {
			if len(subs) == 0 {
				return sql.Subscription{}, false
			}
			return subs[rapid.IntRange(0, len(subs)-1).Draw(rt, "subscription")], true
		}
		tolerated := func(err error) {
			if err != nil && !errors.Is(err, core.ErrConflict) && !errors.Is(err, core.ErrRefused) && !errors.Is(err, core.ErrNotFound) {
				require.NoError(t, err)
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"subscribe": func(rt *rapid.T) {
				policy := []sql.Policy{s.monthly, s.yearly}[rapid.IntRange(0, 1).Draw(rt, "policy")]
				credits := []int64{0, 3000, 50000}[rapid.IntRange(0, 2).Draw(rt, "credits")]
				subs = append(subs, s.subscribe(t, uuid.NewString()+"@example.com", policy, credits))
			},
			"pay": func(rt *rapid.T) {
				rows, err := db.Query(t.Context(), `SELECT c.email FROM payins p JOIN customers c ON c.tenant_id = p.tenant_id AND c.id = p.customer_id
					WHERE p.tenant_id = $1 AND p.state = 'PENDING'`, s.tenant.ID)
				require.NoError(t, err)
				emails, err := pgx.CollectRows(rows, pgx.RowTo[string])
				require.NoError(t, err)
				if len(emails) > 0 {
					s.payPending(t, emails[rapid.IntRange(0, len(emails)-1).Draw(rt, "payer")])
				}
			},
			"cancel": func(rt *rapid.T) {
				if sub, ok := pick(rt); ok {
					tolerated(s.run(t, func(tx pgx.Tx, st core.Step) error {
						_, _, err := core.SubscriptionCancel(t.Context(), tx, st, core.SubscriptionCancelParams{TenantID: s.tenant.ID, ID: sub.ID})
						return err
					}))
				}
			},
			"tier_change": func(rt *rapid.T) {
				if sub, ok := pick(rt); ok {
					to := []sql.Policy{s.monthly, s.yearly}[rapid.IntRange(0, 1).Draw(rt, "to")]
					tolerated(s.run(t, func(tx pgx.Tx, st core.Step) error {
						_, _, err := core.TierChangeAdmin(t.Context(), tx, st, core.TierChangeAdminParams{TenantID: s.tenant.ID, LicenseID: sub.LicenseID, ToPolicyID: to.ID})
						return err
					}))
				}
			},
			"advance": func(rt *rapid.T) {
				by := time.Duration(rapid.IntRange(1, 24*60).Draw(rt, "hours")) * time.Hour
				s.advance(t, s.step(t).Now.Add(by), rapid.SampledFrom([]int{1, 5, 1000}).Draw(rt, "batch"))
				advanced = true
			},
			"": func(rt *rapid.T) {
				violations, err := sql.New().PayInInvariantViolations(t.Context(), db, s.tenant.ID)
				require.NoError(t, err)
				require.Empty(t, violations)
				clock := s.step(t).Now
				due, err := sql.New().ClockNextDue(t.Context(), db, s.tenant.ID)
				require.NoError(t, err)
				// A request may make something due at once (a late payment reactivates a
				// subscription whose next renewal has passed), as the live sweeps find it a
				// minute later; an advance leaves nothing due at its end.
				for _, d := range due {
					require.False(t, advanced && !d.DueAt.After(clock), "an advance left a %s due at the clock (%s)", d.Kind, d.DueAt)
				}
				advanced = false
				var broken []string
				rows, err := db.Query(t.Context(), `SELECT format('%s subscription %s, licence %s expiring %s', s.id, s.status, l.status, l.expires_at)
					FROM subscriptions s JOIN licenses l ON l.tenant_id = s.tenant_id AND l.id = s.license_id
					JOIN policies p ON p.tenant_id = s.tenant_id AND p.id = s.policy_id
					WHERE s.tenant_id = $1 AND (
					    (s.status IN ('active', 'past_due') AND l.status = 'expired' AND l.expires_at > $2)
					 OR (s.status = 'lapsed' AND l.status = 'active' AND (l.expires_at IS NULL OR l.expires_at > $2))
					 OR (s.status = 'active' AND s.current_period_end < $2 AND s.consecutive_failures < 5 AND s.next_renewal_at <= $2))`,
					s.tenant.ID, clock)
				require.NoError(t, err)
				broken, err = pgx.CollectRows(rows, pgx.RowTo[string])
				require.NoError(t, err)
				require.Empty(t, broken)
			},
		})
	})
}

// TestClockAdvanceEnqueuesRevocationChecks: an advance of a sandbox tenant with imported
// licences enqueues its revocation checks once, in its final run, however many runs it takes;
// a sandbox without imported licences gets none.
func TestClockAdvanceEnqueuesRevocationChecks(t *testing.T) {
	t.Parallel()
	db := core.DB(testdb.Tx(t))
	checks := func(s sandbox) []string {
		rows, err := db.Query(t.Context(), "SELECT args->>'advance_id' FROM river_job WHERE kind = 'revocation.check_tenant' AND args->>'tenant_id' = $1",
			s.tenant.ID.String())
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return ids
	}
	imported := newSandbox(t, db)
	store := factory.UpstreamStore(t, db, imported.tenant.ID, "http://127.0.0.1:1", "k")
	factory.UpstreamImport(t, db, store, factory.UpstreamRow("L1", "u1", factory.Now.Add(-time.Hour)))
	plain := newSandbox(t, db)
	for _, s := range []sandbox{imported, plain} {
		for _, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
			s.subscribe(t, email, s.monthly, 0)
		}
	}

	var advance sql.ClockAdvance
	require.NoError(t, imported.run(t, func(tx pgx.Tx, st core.Step) (err error) {
		if advance, err = core.ClockAdvanceStart(t.Context(), tx, st, core.ClockAdvanceParams{TenantID: imported.tenant.ID, By: "3mo"}); err != nil {
			return err
		}
		advance, err = core.ClockAdvanceRun(t.Context(), tx, st, core.ClockAdvanceRunParams{TenantID: imported.tenant.ID, ID: advance.ID, Batch: 2})
		return err
	}))
	require.Equal(t, sql.ClockAdvanceStatusRunning, advance.Status)
	require.Empty(t, checks(imported), "not before the advance ends")
	for advance.Status == sql.ClockAdvanceStatusRunning {
		require.NoError(t, imported.run(t, func(tx pgx.Tx, st core.Step) (err error) {
			advance, err = core.ClockAdvanceRun(t.Context(), tx, st, core.ClockAdvanceRunParams{TenantID: imported.tenant.ID, ID: advance.ID, Batch: 2})
			return err
		}))
	}
	require.Greater(t, advance.RenewalsStarted, int32(2), "the advance took several runs")
	require.Equal(t, []string{advance.ID.String()}, checks(imported))
	plain.advance(t, factory.Now.AddDate(0, 3, 0), 2)
	require.Empty(t, checks(plain))
}
