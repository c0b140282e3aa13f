package core

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/sql"
)

// ClockAdvanceParams moves sandbox tenant TenantID's clock forward: to instant To, or by
// duration By (exactly one).
type ClockAdvanceParams struct {
	TenantID uuid.UUID
	To       *time.Time
	// By is a duration in whole numbers of y (calendar years), mo (calendar months), w, d
	// (calendar days), h, m and s, applied in the order written: "30d", "1y2mo", "8d12h".
	By string
}

// ClockAdvanceStart starts an advance of a sandbox tenant's clock, from where it stands
// under its lock (TenantClockLock: advances of one clock start one after the other), to
// p.To or by p.By, and audits it as clock.advance; ClockAdvanceRun then moves the clock, a
// batch at a time. A live tenant is ErrSandboxOnly; a target before the clock or a malformed
// By is ErrInvalid (a sandbox clock moves only forward); an advance running already is
// ErrClockAdvanceRunning.
func ClockAdvanceStart(ctx context.Context, tx pgx.Tx, st Step, p ClockAdvanceParams) (sql.ClockAdvance, error) {
	from, err := queries.TenantClockLock(ctx, tx, p.TenantID)
	switch {
	case err != nil:
		return sql.ClockAdvance{}, fmt.Errorf("tenant %s: %w", p.TenantID, err)
	case from == nil:
		return sql.ClockAdvance{}, fmt.Errorf("%w: the tenant is live and runs on real time; only a sandbox tenant's clock moves", ErrSandboxOnly)
	}
	to, err := clockTarget(*from, p)
	if err != nil {
		return sql.ClockAdvance{}, err
	}
	advance, err := queries.ClockAdvanceCreate(ctx, tx, sql.ClockAdvanceCreateParams{TenantID: p.TenantID, ID: NewID(), FromAt: *from, ToAt: to, Now: st.Now})
	switch {
	case errors.Is(err, ErrDuplicate):
		return sql.ClockAdvance{}, fmt.Errorf("%w: an advance of this clock is running; poll it (GET /v1/admin/clock/advances/{id}) until it has succeeded", ErrClockAdvanceRunning)
	case err != nil:
		return sql.ClockAdvance{}, fmt.Errorf("start the advance of the clock: %w", err)
	}
	return advance, Audit(ctx, tx, st, Change{TenantID: p.TenantID, Action: "clock.advance", SubjectType: "clock_advance", SubjectID: advance.ID.String(),
		Details: map[string]any{"from": advance.FromAt, "to": advance.ToAt}})
}

// clockDurationPart is one part of ClockAdvanceParams.By: a whole number and its unit.
var clockDurationPart = regexp.MustCompile(`([0-9]+)(y|mo|w|d|h|m|s)`)

// clockTarget is where an advance from clock goes: p.To, or clock moved by p.By.
func clockTarget(clock time.Time, p ClockAdvanceParams) (time.Time, error) {
	switch {
	case (p.By == "") == (p.To == nil):
		return time.Time{}, fmt.Errorf("%w: give either by (a duration such as 30d) or to (an instant)", ErrInvalid)
	case p.To != nil && p.To.Before(clock):
		return time.Time{}, fmt.Errorf("%w: the clock stands at %s and moves only forward, not to %s",
			ErrInvalid, clock.Format(time.RFC3339Nano), p.To.Format(time.RFC3339Nano))
	case p.To != nil:
		return *p.To, nil
	case clockDurationPart.ReplaceAllString(p.By, "") != "":
		return time.Time{}, fmt.Errorf("%w: by %q is not a duration such as 30d or 1y2mo (units y, mo, w, d, h, m, s)", ErrInvalid, p.By)
	}
	at := clock
	for _, part := range clockDurationPart.FindAllStringSubmatch(p.By, -1) {
		n, err := strconv.Atoi(part[1])
		if err != nil || n > 100000 {
			return time.Time{}, fmt.Errorf("%w: by %q: %s is too large a number (at most 100000 of a unit)", ErrInvalid, p.By, part[1])
		}
		switch part[2] {
		case "y":
			at = at.AddDate(n, 0, 0)
		case "mo":
			at = at.AddDate(0, n, 0)
		case "w":
			at = at.AddDate(0, 0, 7*n)
		case "d":
			at = at.AddDate(0, 0, n)
		case "h":
			at = at.Add(time.Duration(n) * time.Hour)
		case "m":
			at = at.Add(time.Duration(n) * time.Minute)
		case "s":
			at = at.Add(time.Duration(n) * time.Second)
		}
	}
	return at, nil
}

// ClockAdvanceRunParams is one run of advance ID of tenant TenantID: it does up to Batch
// things that fall due, quoting fiat renewals by Quotes (a currency missing has no rate:
// its renewals fail and back off, as live ones do when rates are down).
type ClockAdvanceRunParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
	Batch    int
	Quotes   map[sql.Currency]RenewalQuote
}

// ClockAdvanceRun runs an advance of a sandbox tenant's clock on, in tx, for up to p.Batch
// things: it moves the clock to the next instant anything of the tenant falls due
// (ClockNextDue), does there what the live sweeps and jobs would have done at that instant —
// in this order: sandbox invoices expire (their PENDING PayIns fail, PayInSettle), due
// renewals start (SubscriptionRenew: paid at once from credits under auto_pay, else invoiced
// at the sandbox checkout at once, or failed and backed off), unpaid subscriptions lapse,
// licences expire — and goes on to the next instant, until nothing falls due before the
// advance's end: then the clock stands at its end, the tenant's referral rewards are
// recomputed there, and the advance has succeeded. Every step runs at its own instant
// (st.Now is the clock), so the state reached is the state a live tenant reaches at the
// same instants with the same requests. The webhook deliveries due at
// the clock get their endpoints' jobs, and, as the advance ends, the checks of the tenant's
// imported licences due at its clock get theirs (revocationChecks). It returns the advance
// with this run's counts added; an advance that has succeeded is returned as it is. The
// caller runs it again while it is running, each run in its own transaction.
func ClockAdvanceRun(ctx context.Context, tx pgx.Tx, st Step, p ClockAdvanceRunParams) (sql.ClockAdvance, error) {
	advance, err := queries.ClockAdvanceLock(ctx, tx, sql.ClockAdvanceLockParams{TenantID: p.TenantID, ID: p.ID})
	if err != nil {
		return sql.ClockAdvance{}, fmt.Errorf("clock advance %s: %w", p.ID, err)
	}
	if advance.Status != sql.ClockAdvanceStatusRunning {
		return advance, nil
	}
	run := clockRun{ClockAdvanceRunParams: p, st: st, outcomes: &Outcomes{}, clock: advance.ClockAt}
	run.st.Now, run.st.Outcomes = advance.ClockAt, run.outcomes
	done := false
	for handled := 0; handled < p.Batch; {
		next, err := queries.ClockNextDue(ctx, tx, p.TenantID)
		if err != nil {
			return sql.ClockAdvance{}, fmt.Errorf("what falls due next: %w", err)
		}
		at, kinds := dueAt(next, run.clock)
		if len(kinds) == 0 || at.After(advance.ToAt) {
			done = true
			break
		}
		if at.After(run.clock) {
			run.move(at)
			run.instants++
		}
		n, err := run.due(ctx, tx, p.Batch-handled, kinds)
		if err != nil {
			return sql.ClockAdvance{}, err
		}
		if n == 0 {
			return sql.ClockAdvance{}, fmt.Errorf("clock advance %s: %v fall due at %s and nothing could be done", p.ID, kinds, run.clock.Format(time.RFC3339Nano))
		}
		handled += n
	}
	if done {
		if err := run.finish(ctx, tx, advance.ToAt); err != nil {
			return sql.ClockAdvance{}, err
		}
	}
	if err := queries.TenantClockMove(ctx, tx, sql.TenantClockMoveParams{ID: p.TenantID, ClockAt: run.clock}); err != nil {
		return sql.ClockAdvance{}, fmt.Errorf("move the clock to %s: %w", run.clock.Format(time.RFC3339Nano), err)
	}
	if err := run.webhooks(ctx, tx); err != nil {
		return sql.ClockAdvance{}, err
	}
	if err := run.revocationChecks(ctx, tx, done); err != nil {
		return sql.ClockAdvance{}, err
	}
	advance, err = run.record(ctx, tx, done)
	if err == nil && st.Outcomes != nil {
		st.Outcomes.Renewals = append(st.Outcomes.Renewals, run.outcomes.Renewals...)
		st.Outcomes.PayIns = append(st.Outcomes.PayIns, run.outcomes.PayIns...)
	}
	return advance, err
}

// clockRun is one run of an advance: its step at the clock, and what it did.
type clockRun struct {
	ClockAdvanceRunParams
	st       Step
	outcomes *Outcomes
	clock    time.Time
	// instants counts the instants the clock stopped at because something fell due.
	instants int
	licenses int
}

// move moves the run's clock to at, where its next steps happen; the run writes the tenant's
// clock once, where it ends (nothing the steps do reads it: they run at st.Now).
func (r *clockRun) move(at time.Time) {
	r.clock, r.st.Now = at, at
}

// dueAt is the instant the run does things at next — the earliest of next's, or the clock if
// that has passed — and the kinds of ClockNextDue due then.
func dueAt(next []sql.ClockNextDueRow, clock time.Time) (time.Time, map[string]bool) {
	if len(next) == 0 {
		return clock, nil
	}
	at := next[0].DueAt
	for _, d := range next[1:] {
		if d.DueAt.Before(at) {
			at = d.DueAt
		}
	}
	if at.Before(clock) {
		at = clock
	}
	kinds := map[string]bool{}
	for _, d := range next {
		if !d.DueAt.After(at) {
			kinds[d.Kind] = true
		}
	}
	return at, kinds
}

// finish ends an advance: the clock moves to its end, and the tenant's referral rewards are
// recomputed there (a referral.recompute job at the tenant's clock), as the hourly live sweep
// would: cooldowns, IP windows and licence expiries ended on the way.
func (r *clockRun) finish(ctx context.Context, tx pgx.Tx, end time.Time) error {
	if end.After(r.clock) {
		r.move(end)
	}
	_, err := ReferralRecomputeEnqueue(ctx, tx, r.st, ReferralRecomputeEnqueueParams{TenantID: r.TenantID})
	return err
}

// clockKinds are what ClockNextDue finds due, by kind, in the order an instant does them.
var clockKinds = []struct {
	kind string
	do   func(r *clockRun, ctx context.Context, tx pgx.Tx, limit int) (int, error)
}{
	{"invoice_expiry", (*clockRun).expireInvoices},
	{"renewal", (*clockRun).renew},
	{"lapse", (*clockRun).lapse},
	{"license_expiry", (*clockRun).expireLicenses},
}

// due does up to limit things of kinds that fall due at the clock, in clockKinds' order, and
// returns how many it did.
func (r *clockRun) due(ctx context.Context, tx pgx.Tx, limit int, kinds map[string]bool) (int, error) {
	n := 0
	for _, k := range clockKinds {
		if !kinds[k.kind] || n >= limit {
			continue
		}
		did, err := k.do(r, ctx, tx, limit-n)
		if n += did; err != nil {
			return n, err
		}
	}
	return n, nil
}

// lapse lapses the subscriptions unpaid beyond their licence's expiry at the clock.
func (r *clockRun) lapse(ctx context.Context, tx pgx.Tx, limit int) (int, error) {
	lapsed, err := queries.SubscriptionLapseDueForTenant(ctx, tx, sql.SubscriptionLapseDueForTenantParams{TenantID: r.TenantID, Now: r.clock, Batch: int32(limit)})
	if err != nil {
		return 0, fmt.Errorf("lapse subscriptions: %w", err)
	}
	return len(lapsed), subscriptionsLapsed(ctx, tx, r.st, lapsed)
}

// expireLicenses expires the licences whose expiry has passed at the clock.
func (r *clockRun) expireLicenses(ctx context.Context, tx pgx.Tx, limit int) (int, error) {
	expired, err := queries.LicenseExpireDueForTenant(ctx, tx, sql.LicenseExpireDueForTenantParams{TenantID: r.TenantID, Now: r.clock, Batch: int32(limit)})
	if err != nil {
		return 0, fmt.Errorf("expire licences: %w", err)
	}
	r.licenses += len(expired)
	return len(expired), licensesExpired(ctx, tx, r.st, expired)
}

// expireInvoices fails the PENDING PayIns whose sandbox invoice expired unpaid at the clock.
func (r *clockRun) expireInvoices(ctx context.Context, tx pgx.Tx, limit int) (int, error) {
	invoices, err := queries.PayInListExpiredForTenant(ctx, tx, sql.PayInListExpiredForTenantParams{TenantID: r.TenantID, Now: r.clock, Batch: int32(limit)})
	if err != nil {
		return 0, fmt.Errorf("expired sandbox invoices: %w", err)
	}
	for _, invoice := range invoices {
		payin, err := queries.PayInLock(ctx, tx, sql.PayInLockParams{TenantID: invoice.TenantID, ID: invoice.PayInID})
		if err != nil {
			return 0, fmt.Errorf("lock payin %s: %w", invoice.PayInID, err)
		}
		expired := payment.Invoice{ID: invoice.ProviderInvoiceID, Status: payment.InvoiceExpired, AmountSats: invoice.AmountSats}
		if err := PayInSettle(ctx, tx, r.st, PayInSettleParams{PayIn: payin, Invoice: invoice, Remote: expired}); err != nil {
			return 0, err
		}
	}
	return len(invoices), nil
}

// renew starts the renewals due at the clock.
func (r *clockRun) renew(ctx context.Context, tx pgx.Tx, limit int) (int, error) {
	due, err := queries.SubscriptionListDueForTenant(ctx, tx, sql.SubscriptionListDueForTenantParams{TenantID: r.TenantID, Now: r.clock, Batch: int32(limit)})
	if err != nil {
		return 0, fmt.Errorf("due renewals: %w", err)
	}
	for _, d := range due {
		quote := quoteFor(r.Quotes, d.PriceCurrency)
		if _, err := SubscriptionRenew(ctx, tx, r.st, SubscriptionRenewParams{TenantID: d.TenantID, SubscriptionID: d.ID, CycleNumber: d.CycleNumber, Quote: quote}); err != nil {
			return 0, err
		}
	}
	return len(due), nil
}

// webhooks enqueues the jobs of the tenant's endpoints whose deliveries are due at the clock
// (a backoff that the clock's move ended): no live sweep serves a sandbox tenant.
func (r *clockRun) webhooks(ctx context.Context, tx pgx.Tx) error {
	endpoints, err := queries.WebhookEndpointListWorkForTenant(ctx, tx, sql.WebhookEndpointListWorkForTenantParams{TenantID: r.TenantID, Now: r.clock})
	if err != nil || len(endpoints) == 0 {
		return err
	}
	return WebhookDeliverEnqueue(ctx, tx, r.st, WebhookDeliverEnqueueParams{TenantID: r.TenantID, EndpointIDs: endpoints})
}

// revocationChecks enqueues, in the advance's final run (done), the checks of the tenant's
// imported licences that fall due at the clock it reached (revocation.check_tenant): they
// ask the tenant's upstream store over HTTP, so they run after this transaction, at the
// clock. A tenant with no imported licence left to check gets none.
func (r *clockRun) revocationChecks(ctx context.Context, tx pgx.Tx, done bool) error {
	if !done {
		return nil
	}
	pending, err := queries.UpstreamLicensePendingExists(ctx, tx, r.TenantID)
	if err != nil {
		return fmt.Errorf("imported licences to check: %w", err)
	}
	if !pending {
		return nil
	}
	if _, err := r.st.Jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: jobargs.RevocationCheckTenant{TenantID: r.TenantID, AdvanceID: r.ID}}}); err != nil {
		return fmt.Errorf("enqueue the revocation checks of clock advance %s: %w", r.ID, err)
	}
	return nil
}

// record adds the run's counts to the advance and ends it when done.
func (r *clockRun) record(ctx context.Context, tx pgx.Tx, done bool) (sql.ClockAdvance, error) {
	params := sql.ClockAdvanceRecordParams{TenantID: r.TenantID, ID: r.ID, ClockAt: r.clock, Instants: int32(r.instants),
		LicensesExpired: int32(r.licenses), Done: done, Now: r.clock}
	for _, o := range r.outcomes.Renewals {
		switch o {
		case RenewalStarted:
			params.RenewalsStarted++
		case RenewalPaid:
			params.RenewalsPaid++
		case RenewalFailed, RenewalStuck:
			params.RenewalsFailed++
		case RenewalLapsed:
			params.SubscriptionsLapsed++
		case RenewalNotDue:
		}
	}
	for _, o := range r.outcomes.PayIns {
		switch o.Outcome {
		case PayInPaidOutcome:
			params.PayinsPaid++
		case PayInFailedOutcome:
			params.PayinsFailed++
			if o.Reason == sql.PayinFailureReasonINVOICEEXPIRED {
				params.InvoicesExpired++
			}
		case PayInLateCreditedOutcome:
		}
	}
	advance, err := queries.ClockAdvanceRecord(ctx, tx, params)
	if err != nil {
		return sql.ClockAdvance{}, fmt.Errorf("record the advance of the clock: %w", err)
	}
	return advance, nil
}
