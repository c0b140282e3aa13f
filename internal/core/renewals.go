package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/sql"
)

// RenewalMaxFailures is how many renewals in a row may fail (the price could not be quoted)
// before the renewal sweep stops trying a subscription; an admin reset puts it back. The
// queries in queries/renewals.sql and the partial indexes of migration 00012 carry the same
// literal 5.
const RenewalMaxFailures = 5

// SubscriptionRenewSweepParams is one run of the renewal sweep: up to Batch due
// subscriptions, their fiat prices quoted by Quotes (RenewalQuotes, before the transaction).
type SubscriptionRenewSweepParams struct {
	Batch  int
	Quotes map[sql.Currency]RenewalQuote
}

// SubscriptionRenewSweep renews, in tx, up to p.Batch due subscriptions across all tenants
// (SubscriptionListDueAllTenants), each for the cycle its renewal opens, as SubscriptionRenew
// does (a currency missing from p.Quotes has no rate: its renewals fail and back off). The
// pick locks the rows until tx ends and other sweeps skip them, so overlapping sweeps renew
// each cycle once. The batch's PayIns are invoiced by one payin.create_invoices job, enqueued
// in tx. A renewal that fails for a reason of its own subscription (the database
// refused it: a constraint, a bad row) is returned as a *RenewalError, and tx must be rolled
// back: the caller records it (SubscriptionRenewFailed), which backs the subscription off, and
// runs the sweep again without it. It returns how many subscriptions were due.
func SubscriptionRenewSweep(ctx context.Context, tx pgx.Tx, st Step, p SubscriptionRenewSweepParams) (int, error) {
	due, err := queries.SubscriptionListDueAllTenants(ctx, tx, sql.SubscriptionListDueAllTenantsParams{Now: st.Now, Batch: int32(p.Batch)})
	if err != nil {
		return 0, fmt.Errorf("list due subscriptions: %w", err)
	}
	var invoices []jobargs.PayInRef
	for _, d := range due {
		renewal := SubscriptionRenewParams{TenantID: d.TenantID, SubscriptionID: d.ID, CycleNumber: d.CycleNumber, Quote: quoteFor(p.Quotes, d.PriceCurrency)}
		if _, err := subscriptionRenewLocked(ctx, tx, st, renewal, &invoices); err != nil {
			if renewalOwnError(err) {
				return 0, &RenewalError{TenantID: d.TenantID, SubscriptionID: d.ID, CycleNumber: d.CycleNumber, Err: err}
			}
			return 0, err
		}
	}
	if len(invoices) > 0 {
		if _, err := st.Jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: jobargs.PayInCreateInvoices{PayIns: invoices}}}); err != nil {
			return 0, fmt.Errorf("enqueue invoice creation: %w", err)
		}
	}
	return len(due), nil
}

// quoteFor is the quote of a renewal priced in currency: none for SAT (charged verbatim),
// else quotes' (RenewalQuotes); a fiat currency quotes lacks has no rate.
func quoteFor(quotes map[sql.Currency]RenewalQuote, currency sql.Currency) RenewalQuote {
	quote, ok := quotes[currency]
	if !ok && currency != sql.CurrencySAT {
		quote.Err = fmt.Errorf("no %s rate", currency)
	}
	return quote
}

// RenewalError is the renewal of one subscription of a sweep's batch that failed for a reason
// of its own (renewalOwnError): SubscriptionRenewFailed records it.
type RenewalError struct {
	TenantID       uuid.UUID
	SubscriptionID uuid.UUID
	CycleNumber    int32
	Err            error
}

// Error says which renewal failed and why.
func (e *RenewalError) Error() string {
	return fmt.Sprintf("renew subscription %s for cycle %d: %v", e.SubscriptionID, e.CycleNumber, e.Err)
}

// Unwrap is why the renewal failed.
func (e *RenewalError) Unwrap() error { return e.Err }

// renewalOwnError reports whether err, from renewing one subscription, is that subscription's
// own: the database refused a statement for it (a constraint, an invalid value: a retry fails
// the same way) or core refused it (ErrInvalid, ErrConflict, ErrNotFound). Errors of the
// connection, of the transaction (serialization, deadlock), of resources, a cancelled
// statement or context are not: the whole sweep is retried.
func renewalOwnError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "40", "53", "55", "57", "58", "XX":
			return false
		}
		return true
	}
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound)
}

// SubscriptionRenewFailed records the renewal that failed in a sweep's batch (a
// *RenewalError of SubscriptionRenewSweep), in tx, when its cycle is still the one due (under
// the subscription's row lock): one more consecutive failure, backed off, audited as
// subscription.renewal_fail with the error (renewalFailed), so the sweep goes on without it
// and, at RenewalMaxFailures, it waits for an operator (the stuck renewals' list). A renewal
// no longer due (another sweep renewed it, it was cancelled) is left alone: RenewalNotDue.
func SubscriptionRenewFailed(ctx context.Context, tx pgx.Tx, st Step, failed *RenewalError) (RenewalOutcome, error) {
	p := SubscriptionRenewParams{TenantID: failed.TenantID, SubscriptionID: failed.SubscriptionID, CycleNumber: failed.CycleNumber}
	if due, err := subscriptionLockDue(ctx, tx, st, p); err != nil || !due.Due {
		return RenewalNotDue, err
	}
	return renewalFailed(ctx, tx, st, renewalFailedParams{TenantID: p.TenantID, SubscriptionID: p.SubscriptionID, CycleNumber: p.CycleNumber, Cause: failed.Err})
}

// RenewalQuote is the price of a renewal at the current rate: Rate is nil for a SAT price
// (charged verbatim), set for a fiat one; Err is why a fiat price could not be quoted.
type RenewalQuote struct {
	Rate *payment.Rate
	Err  error
}

// RenewalOutcome says what happened to a subscription's renewal: what SubscriptionRenew did,
// and (in Outcomes) what paying or lapsing did. The values are the outcome label of
// tessera_renewals_total.
type RenewalOutcome string

// The outcomes of a renewal.
const (
	// RenewalNotDue: nothing to do — the cycle is already open (a retried or duplicated
	// job), the subscription is not due, at the failure cap, cancelled or lapsed. Not
	// counted: nothing happened.
	RenewalNotDue RenewalOutcome = "not_due"
	// RenewalStarted: the cycle is open with its PayIn, to be invoiced or paid at once from
	// custodial balances.
	RenewalStarted RenewalOutcome = "started"
	// RenewalFailed: the renewal could not be charged — its price could not be quoted, or
	// the provider could not invoice it; the failure is recorded and the renewal backed off.
	RenewalFailed RenewalOutcome = "failed"
	// RenewalStuck: as RenewalFailed, and it was the RenewalMaxFailures-th failure in a
	// row: the sweep stops trying until an admin resets the renewal.
	RenewalStuck RenewalOutcome = "stuck"
	// RenewalPaid: a renewal PayIn was paid (by invoice, or at once from custodial
	// balances) and its cycle applied to the subscription.
	RenewalPaid RenewalOutcome = "paid"
	// RenewalLapsed: the subscription stayed unpaid beyond its grace days and lapsed.
	RenewalLapsed RenewalOutcome = "lapsed"
)

// SubscriptionRenewalDue reports whether cycle is the cycle a renewal of the subscription
// opens now, with what the renewal needs (its price currency). It takes no lock: the worker
// uses it to skip a stale job before quoting; SubscriptionRenew decides again under a lock.
func SubscriptionRenewalDue(ctx context.Context, db sql.DBTX, p sql.SubscriptionRenewalGetParams) (sql.SubscriptionRenewalGetRow, error) {
	row, err := queries.SubscriptionRenewalGet(ctx, db, p)
	if err != nil {
		return sql.SubscriptionRenewalGetRow{}, fmt.Errorf("subscription %s: %w", p.ID, err)
	}
	return row, nil
}

// SubscriptionRenewParams is the renewal of subscription SubscriptionID of TenantID for
// cycle CycleNumber, at the price Quote says.
type SubscriptionRenewParams struct {
	TenantID       uuid.UUID
	SubscriptionID uuid.UUID
	CycleNumber    int32
	Quote          RenewalQuote
}

// SubscriptionRenew renews a subscription for cycle p.CycleNumber, in tx, if that cycle is
// the one due (under the subscription's row lock, so concurrent renewals of one subscription
// run one at a time and the second finds the cycle open and does nothing), after applying a
// downgrade scheduled for the licence (tierDowngradeApplyDue; the renewal charges the new
// price):
//   - quoted: the cycle opened (SubscriptionRenewalStart: past_due, next renewal at the
//     cycle's end) and tied to a subscription_renewal PayIn for the subscription's price (SAT
//     verbatim, fiat at p.Quote.Rate, stored on the PayIn), paid first from the customer's
//     credits then reward_sats when they enabled auto_pay — fully covered, it is PAID at once
//     and the subscription renewed (subscriptionRenewed) — the rest invoiced by a
//     payin.create_invoice job (subscription.renewal_pending follows with the checkout URL
//     once the invoice exists: renewalPending); audited as subscription.renew (renewalStart);
//   - not quoted (p.Quote.Err): no PayIn; one more failure, backed off
//     (SubscriptionRenewalFailed), audited as subscription.renewal_fail.
func SubscriptionRenew(ctx context.Context, tx pgx.Tx, st Step, p SubscriptionRenewParams) (RenewalOutcome, error) {
	sub, err := subscriptionLockDue(ctx, tx, st, p)
	if err != nil || !sub.Due {
		return RenewalNotDue, err
	}
	return subscriptionRenewDue(ctx, tx, st, p, sub, nil)
}

// subscriptionLockDue locks a subscription's row for its renewal (SubscriptionLockForRenewal)
// and then reads whether cycle p.CycleNumber is the one due; an unknown subscription is not.
func subscriptionLockDue(ctx context.Context, tx pgx.Tx, st Step, p SubscriptionRenewParams) (sql.SubscriptionRenewalGetRow, error) {
	if _, err := queries.SubscriptionLockForRenewal(ctx, tx, sql.SubscriptionLockForRenewalParams{TenantID: p.TenantID, ID: p.SubscriptionID}); err != nil {
		if errors.Is(err, ErrNotFound) {
			return sql.SubscriptionRenewalGetRow{}, nil
		}
		return sql.SubscriptionRenewalGetRow{}, fmt.Errorf("lock subscription %s: %w", p.SubscriptionID, err)
	}
	return SubscriptionRenewalDue(ctx, tx, sql.SubscriptionRenewalGetParams{TenantID: p.TenantID, ID: p.SubscriptionID, CycleNumber: p.CycleNumber, Now: st.Now})
}

// subscriptionRenewLocked is SubscriptionRenew of a subscription whose row tx has locked
// already (the sweep's pick, FOR UPDATE); invoices collects its PayIn to invoice
// (renewalStart).
func subscriptionRenewLocked(ctx context.Context, tx pgx.Tx, st Step, p SubscriptionRenewParams, invoices *[]jobargs.PayInRef) (RenewalOutcome, error) {
	sub, err := SubscriptionRenewalDue(ctx, tx, sql.SubscriptionRenewalGetParams{TenantID: p.TenantID, ID: p.SubscriptionID, CycleNumber: p.CycleNumber, Now: st.Now})
	if err != nil || !sub.Due {
		return RenewalNotDue, err
	}
	return subscriptionRenewDue(ctx, tx, st, p, sub, invoices)
}

// subscriptionRenewDue renews subscription sub, locked in tx and due for cycle p.CycleNumber
// (see SubscriptionRenew); invoices: see renewalStart.
func subscriptionRenewDue(ctx context.Context, tx pgx.Tx, st Step, p SubscriptionRenewParams, sub sql.SubscriptionRenewalGetRow, invoices *[]jobargs.PayInRef) (RenewalOutcome, error) {
	quote := p.Quote
	// A downgrade scheduled for this renewal applies first: the renewal charges its price.
	if downgraded, err := tierDowngradeApplyDue(ctx, tx, st, sub); err != nil {
		return "", err
	} else if downgraded {
		dueParams := sql.SubscriptionRenewalGetParams{TenantID: p.TenantID, ID: p.SubscriptionID, CycleNumber: p.CycleNumber, Now: st.Now}
		if sub, err = SubscriptionRenewalDue(ctx, tx, dueParams); err != nil {
			return "", err
		}
		if quote.Err == nil && sub.PriceCurrency != sql.CurrencySAT && (quote.Rate == nil || quote.Rate.Currency != string(sub.PriceCurrency)) {
			quote = RenewalQuote{Err: fmt.Errorf("the new tier is priced in %s: quoted again at the next attempt", sub.PriceCurrency)}
		}
	}
	if quote.Err != nil {
		return renewalFailed(ctx, tx, st, renewalFailedParams{TenantID: p.TenantID, SubscriptionID: p.SubscriptionID, CycleNumber: p.CycleNumber, Cause: quote.Err})
	}
	return renewalStart(ctx, tx, st, renewalStartParams{Due: sub, CycleNumber: p.CycleNumber, Rate: quote.Rate, Invoices: invoices})
}

// renewalStartParams is the renewal of subscription Due for cycle CycleNumber, at Rate (nil
// for a SAT price). Invoices, when set, collects its PayIn to invoice, for the caller to
// enqueue with the batch's (PayInCreateParams.Invoices).
type renewalStartParams struct {
	Due         sql.SubscriptionRenewalGetRow
	CycleNumber int32
	Rate        *payment.Rate
	Invoices    *[]jobargs.PayInRef
}

// renewalStart opens the cycle of a quoted renewal with the PayIn paying it, and audits it
// as subscription.renew (see SubscriptionRenew).
func renewalStart(ctx context.Context, tx pgx.Tx, st Step, p renewalStartParams) (RenewalOutcome, error) {
	sub := p.Due
	var assets []sql.Asset
	if sub.AutoPay {
		assets = DefaultAssets
	}
	// The cycle is opened first, tied to the PayIn's id (the foreign key is deferred): a PayIn
	// paid at once from custodial balances then finds its cycle in PayInPaid.
	payinID := NewID()
	started, err := queries.SubscriptionRenewalStart(ctx, tx, sql.SubscriptionRenewalStartParams{
		TenantID: sub.TenantID, SubscriptionID: sub.ID, CycleNumber: p.CycleNumber, PayInID: payinID, Now: st.Now,
	})
	if err != nil {
		return "", fmt.Errorf("open cycle %d of subscription %s: %w", p.CycleNumber, sub.ID, err)
	}
	payin, err := PayInCreate(ctx, tx, st, PayInCreateParams{TenantID: sub.TenantID,
		ID: payinID, CustomerID: sub.CustomerID, Type: sql.PayinTypeSubscriptionRenewal, PriceCurrency: sub.PriceCurrency,
		PriceValue: sub.PriceValue, Rate: p.Rate, PolicyID: &sub.PolicyID, Assets: assets, Invoices: p.Invoices,
	})
	if err != nil {
		return "", fmt.Errorf("renew subscription %s: %w", sub.ID, err)
	}
	license, err := queries.LicenseGet(ctx, tx, sql.LicenseGetParams{TenantID: sub.TenantID, ID: started.LicenseID})
	if err != nil {
		return "", fmt.Errorf("licence of subscription %s: %w", sub.ID, err)
	}
	data := struct {
		RenewalFields
		PayInState sql.PayInState `json:"payin_state"`
	}{renewalFieldsOf(renewalCycle{
		Subscription: renewalSubscription(started), License: license, CycleNumber: started.CycleNumber,
		PeriodStart: started.PeriodStart, PeriodEnd: started.PeriodEnd, PayIn: payin,
	}), payin.State}
	if payin.State == sql.PayinStatePAID {
		data.SubscriptionStatus = sql.SubscriptionStatusActive // paid at once from custodial balances
	}
	err = Audit(ctx, tx, st, Change{TenantID: sub.TenantID, Action: "subscription.renew", SubjectType: "subscription", SubjectID: sub.ID.String(), Details: data})
	if err != nil {
		return "", err
	}
	st.Outcomes.renewal(RenewalStarted)
	return RenewalStarted, nil
}

// renewalPending emits subscription.renewal_pending when the invoice of a renewal PayIn (or
// of its retry) exists (PayInInvoiceCreated): the buyer pays the cycle at checkout_url before
// the invoice expires. A renewal paid at once from custodial balances has no invoice and
// emits subscription.renewed instead.
func renewalPending(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn, invoice sql.PayInInvoice) error {
	r, err := queries.SubscriptionRenewalByPayIn(ctx, tx, sql.SubscriptionRenewalByPayInParams{TenantID: payin.TenantID, PayInID: payin.ID, GenesisID: payin.GenesisID})
	if err != nil {
		return fmt.Errorf("renewal of payin %s: %w", payin.ID, err)
	}
	return Emit(ctx, tx, st, Event{TenantID: payin.TenantID, Data: SubscriptionRenewalPendingEvent{
		RenewalFields: renewalFieldsOf(renewalCycle{
			Subscription: r.Subscription, License: r.License, CycleNumber: r.CycleNumber,
			PeriodStart: r.PeriodStart, PeriodEnd: r.PeriodEnd, PayIn: payin,
		}),
		InvoiceSats: invoice.AmountSats, CheckoutURL: invoice.CheckoutURL, InvoiceExpiresAt: invoice.ExpiresAt,
	}})
}

// renewalCycle is one renewal cycle of a subscription, with its licence and the PayIn
// paying it.
type renewalCycle struct {
	Subscription sql.Subscription
	License      sql.License
	CycleNumber  int32
	PeriodStart  time.Time
	PeriodEnd    time.Time
	PayIn        sql.PayIn
}

// renewalFieldsOf is the part of a renewal's audit entry and events that says the
// subscription and licence, the cycle and the PayIn paying it.
func renewalFieldsOf(c renewalCycle) RenewalFields {
	return RenewalFields{
		SubscriptionFields: SubscriptionFieldsOf(c.Subscription, c.License), CycleNumber: c.CycleNumber,
		PeriodStart: c.PeriodStart, PeriodEnd: c.PeriodEnd, PayInID: c.PayIn.ID, CostSats: c.PayIn.CostSats,
	}
}

// renewalFailedParams is a renewal of subscription SubscriptionID of TenantID for cycle
// CycleNumber that could not be charged, and why (Cause).
type renewalFailedParams struct {
	TenantID       uuid.UUID
	SubscriptionID uuid.UUID
	CycleNumber    int32
	Cause          error
}

// renewalFailed records a renewal that could not be charged — its price could not be
// quoted, or the provider could not invoice it — as one more consecutive failure, backed
// off (SubscriptionRenewalFailed), audited as subscription.renewal_fail. It returns
// RenewalFailed, or RenewalStuck for the failure that reached RenewalMaxFailures, or
// RenewalNotDue when the subscription was cancelled or lapsed meanwhile.
func renewalFailed(ctx context.Context, tx pgx.Tx, st Step, p renewalFailedParams) (RenewalOutcome, error) {
	failed, err := queries.SubscriptionRenewalFailed(ctx, tx, sql.SubscriptionRenewalFailedParams{TenantID: p.TenantID, ID: p.SubscriptionID, Now: st.Now})
	if errors.Is(err, ErrNotFound) {
		return RenewalNotDue, nil // cancelled or lapsed meanwhile: nothing to renew
	} else if err != nil {
		return "", fmt.Errorf("record failed renewal of subscription %s: %w", p.SubscriptionID, err)
	}
	outcome := RenewalFailed
	if failed.ConsecutiveFailures >= RenewalMaxFailures {
		outcome = RenewalStuck
	}
	st.Outcomes.renewal(outcome)
	return outcome, Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "subscription.renewal_fail", SubjectType: "subscription", SubjectID: p.SubscriptionID.String(),
		Details: map[string]any{
			"cycle_number": p.CycleNumber, "error": p.Cause.Error(), "consecutive_failures": failed.ConsecutiveFailures,
			"next_renewal_at": failed.NextRenewalAt,
		},
	})
}

// renewalInvoiceFailed is what a renewal PayIn failing with INVOICE_CREATION_FAILED or
// SYSTEM_CANCELLED does (PayInFail): the provider could not invoice its cycle, or an operator
// cancelled its invoice creation in River, so the cycle is released
// (SubscriptionCycleRelease) and, as when the price could not be quoted, the renewal counts
// as failed and is backed off (renewalFailed); the sweep opens the cycle again, with a new
// PayIn, when it is due. A PayIn that failed otherwise (expired, cancelled) keeps its cycle
// open: retrying that PayIn pays it, and the subscription lapses after its grace days if
// nobody does.
func renewalInvoiceFailed(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn) error {
	released, err := queries.SubscriptionCycleRelease(ctx, tx, sql.SubscriptionCycleReleaseParams{TenantID: payin.TenantID, PayInID: payin.ID, GenesisID: payin.GenesisID})
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("release the cycle of payin %s: %w", payin.ID, err)
	}
	_, err = renewalFailed(ctx, tx, st, renewalFailedParams{
		TenantID: payin.TenantID, SubscriptionID: released.SubscriptionID, CycleNumber: released.CycleNumber,
		Cause: fmt.Errorf("the invoice of payin %s could not be created", payin.ID),
	})
	return err
}

// renewalSubscription is the subscription part of a SubscriptionRenewalStart row.
func renewalSubscription(r sql.SubscriptionRenewalStartRow) sql.Subscription {
	return sql.Subscription{
		TenantID: r.TenantID, ID: r.ID, CustomerID: r.CustomerID, LicenseID: r.LicenseID, PolicyID: r.PolicyID,
		Status: r.Status, PriceCurrency: r.PriceCurrency, PriceValue: r.PriceValue, PeriodDays: r.PeriodDays,
		CurrentPeriodStart: r.CurrentPeriodStart, CurrentPeriodEnd: r.CurrentPeriodEnd, NextRenewalAt: r.NextRenewalAt,
		ConsecutiveFailures: r.ConsecutiveFailures, LastRenewalAttemptAt: r.LastRenewalAttemptAt, CreatedAt: r.CreatedAt,
		CancelledAt: r.CancelledAt, StatusChangedAt: r.StatusChangedAt, UpdatedAt: r.UpdatedAt,
	}
}

// SubscriptionLapseSweep lapses, across all tenants, up to batch past_due
// subscriptions unpaid for longer than their policy's grace days since their unpaid cycle
// started (SubscriptionLapseDueAllTenants), auditing and emitting subscription.lapsed for
// each. A lapsed subscription's licence validates as EXPIRED. It returns how many lapsed.
func SubscriptionLapseSweep(ctx context.Context, tx pgx.Tx, st Step, batch int) (int, error) {
	lapsed, err := queries.SubscriptionLapseDueAllTenants(ctx, tx, sql.SubscriptionLapseDueAllTenantsParams{Now: st.Now, Batch: int32(batch)})
	if err != nil {
		return 0, fmt.Errorf("lapse subscriptions: %w", err)
	}
	return len(lapsed), subscriptionsLapsed(ctx, tx, st, lapsed)
}

// subscriptionsLapsed records and emits subscription.lapse for each subscription that lapsed,
// and recomputes the rewards of their customers' referrers, one ReferralRecompute per tenant.
func subscriptionsLapsed(ctx context.Context, tx pgx.Tx, st Step, lapsed []sql.Subscription) error {
	customers := map[uuid.UUID][]uuid.UUID{} // the lapsed subscriptions' customers by tenant
	var tenants []uuid.UUID
	for _, s := range lapsed {
		license, err := queries.LicenseGet(ctx, tx, sql.LicenseGetParams{TenantID: s.TenantID, ID: s.LicenseID})
		if err != nil {
			return fmt.Errorf("licence of subscription %s: %w", s.ID, err)
		}
		err = Record(ctx, tx, st, Change{TenantID: s.TenantID, Action: "subscription.lapse", SubjectType: "subscription", SubjectID: s.ID.String(), Event: SubscriptionLapsedEvent(SubscriptionFieldsOf(s, license))})
		if err != nil {
			return err
		}
		st.Outcomes.renewal(RenewalLapsed)
		if _, ok := customers[s.TenantID]; !ok {
			tenants = append(tenants, s.TenantID)
		}
		customers[s.TenantID] = append(customers[s.TenantID], s.CustomerID)
	}
	// A lapsed subscription can disqualify the customer as a referral.
	for _, tenantID := range tenants {
		if err := ReferralRecomputeReferrersOf(ctx, tx, st, ReferralRecomputeReferrersOfParams{TenantID: tenantID, CustomerIDs: customers[tenantID]}); err != nil {
			return err
		}
	}
	return nil
}

// SubscriptionRenewalResetParams names subscription ID of TenantID.
type SubscriptionRenewalResetParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
}

// SubscriptionRenewalReset puts a subscription stuck at the failure cap back in the renewal
// sweep (failures 0, due now) and audits it. An unknown subscription is ErrNotFound; one
// that is not stuck is ErrRenewalNotStuck (an ErrConflict).
func SubscriptionRenewalReset(ctx context.Context, tx pgx.Tx, st Step, p SubscriptionRenewalResetParams) (sql.Subscription, error) {
	sub, err := queries.SubscriptionRenewalReset(ctx, tx, sql.SubscriptionRenewalResetParams{TenantID: p.TenantID, ID: p.ID, Now: st.Now})
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			return sql.Subscription{}, fmt.Errorf("reset renewal of subscription %s: %w", p.ID, err)
		}
		current, getErr := queries.SubscriptionGet(ctx, tx, sql.SubscriptionGetParams{TenantID: p.TenantID, ID: p.ID})
		if getErr != nil {
			return sql.Subscription{}, fmt.Errorf("subscription %s: %w", p.ID, getErr)
		}
		return sql.Subscription{}, fmt.Errorf("%w: subscription %s is %s with %d failures, not stuck at the cap of %d",
			ErrRenewalNotStuck, p.ID, current.Status, current.ConsecutiveFailures, RenewalMaxFailures)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "subscription.renewal_reset", SubjectType: "subscription", SubjectID: p.ID.String(),
		Details: map[string]any{"next_renewal_at": sub.NextRenewalAt},
	})
	return sub, err
}

// subscriptionRenewed is the effect of a PAID subscription_renewal PayIn (PayInPaidEvent): the
// tenant's revenue payout, then SubscriptionRenewalPaid — the cycle paid, failures reset, the
// subscription active (past_due while a later cycle is unpaid), its current period the paid
// cycle when that ends later. Late payment rule: a renewal paid after its subscription lapsed
// reactivates it for the paid cycle, as scheduled (its period is not shifted to the payment
// time). When the period moved, the licence expires at the period's end plus the policy's
// grace days and an expired licence is active again (LicenseApplyRenewal).
// subscription.renewed is emitted. A renewal paid for a cancelled subscription is revenue
// only: the cancellation stands.
func subscriptionRenewed(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn) error {
	if err := payoutRevenue(ctx, tx, st, payin); err != nil {
		return err
	}
	renewed, err := queries.SubscriptionRenewalPaid(ctx, tx, sql.SubscriptionRenewalPaidParams{
		TenantID: payin.TenantID, PayInID: payin.ID, GenesisID: payin.GenesisID, Now: st.Now,
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return fmt.Errorf("renew subscription of payin %s: %w", payin.ID, err)
	}
	var license sql.License
	if renewed.Applied {
		license, err = queries.LicenseApplyRenewal(ctx, tx, sql.LicenseApplyRenewalParams{TenantID: payin.TenantID, SubscriptionID: renewed.ID, Now: st.Now})
	} else {
		license, err = queries.LicenseGet(ctx, tx, sql.LicenseGetParams{TenantID: payin.TenantID, ID: renewed.LicenseID})
	}
	if err != nil {
		return fmt.Errorf("licence of subscription %s: %w", renewed.ID, err)
	}
	data := SubscriptionRenewedEvent{SubscriptionFields: SubscriptionFieldsOf(renewedSubscription(renewed), license), CycleNumber: renewed.CycleNumber, PayInID: payin.ID}
	err = Record(ctx, tx, st, Change{TenantID: payin.TenantID, Action: "subscription.renewed", SubjectType: "subscription", SubjectID: renewed.ID.String(), Event: data})
	if err != nil {
		return err
	}
	st.Outcomes.renewal(RenewalPaid)
	// A subscription active again can make the customer a qualified referral.
	return ReferralRecomputeReferrersOf(ctx, tx, st, ReferralRecomputeReferrersOfParams{TenantID: payin.TenantID, CustomerIDs: []uuid.UUID{renewed.CustomerID}})
}

// renewedSubscription is the subscription part of a SubscriptionRenewalPaid row.
func renewedSubscription(r sql.SubscriptionRenewalPaidRow) sql.Subscription {
	return sql.Subscription{
		TenantID: r.TenantID, ID: r.ID, CustomerID: r.CustomerID, LicenseID: r.LicenseID, PolicyID: r.PolicyID,
		Status: r.Status, PriceCurrency: r.PriceCurrency, PriceValue: r.PriceValue, PeriodDays: r.PeriodDays,
		CurrentPeriodStart: r.CurrentPeriodStart, CurrentPeriodEnd: r.CurrentPeriodEnd, NextRenewalAt: r.NextRenewalAt,
		ConsecutiveFailures: r.ConsecutiveFailures, LastRenewalAttemptAt: r.LastRenewalAttemptAt, CreatedAt: r.CreatedAt,
		CancelledAt: r.CancelledAt, StatusChangedAt: r.StatusChangedAt, UpdatedAt: r.UpdatedAt,
	}
}

// RenewalQuotes quotes every fiat currency at rates' current rate, for renewals made in bulk
// (a sandbox clock's advance): a currency whose rate is unavailable carries the error, and
// its renewals fail and back off as a live renewal does.
func RenewalQuotes(ctx context.Context, rates payment.RateSource) map[sql.Currency]RenewalQuote {
	quotes := map[sql.Currency]RenewalQuote{}
	for _, currency := range []sql.Currency{sql.CurrencyUSD, sql.CurrencyEUR} {
		rate, err := rates.Rate(ctx, string(currency))
		if err != nil {
			quotes[currency] = RenewalQuote{Err: fmt.Errorf("quote %s: %w", currency, err)}
			continue
		}
		quotes[currency] = RenewalQuote{Rate: &rate}
	}
	return quotes
}
