package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/sql"
)

// DefaultAssets is the order custodial balances pay in unless a request names others.
var DefaultAssets = []sql.Asset{sql.AssetCredits, sql.AssetRewardSats}

// PayInCreateParams says what a customer pays for and how.
type PayInCreateParams struct {
	CustomerID    uuid.UUID
	Type          sql.PayInType
	PriceCurrency sql.Currency
	PriceValue    int64
	// Rate converts a fiat price to sats; nil for SAT prices.
	Rate *payment.Rate
	// PolicyID and AddonIDs are what a licence purchase buys.
	PolicyID *uuid.UUID
	AddonIDs []uuid.UUID
	// Assets are the custodial balances to pay from, in order; none pays all by invoice.
	Assets []sql.Asset
	// Predecessor is the FAILED PayIn this one retries, if any; PayInRetry sets it.
	Predecessor *sql.PayIn
	// ID is the new PayIn's id; zero makes a new one.
	ID uuid.UUID
}

// PayInCreate creates a PayIn, converting its price to sats, and pays what it can from the
// payer's custodial balances in the same transaction. Fully covered, it is PAID at once
// (with its effect and payouts), and its transitions say so: created PAID, never waiting
// for an invoice. Otherwise it is created PENDING_INVOICE_CREATION and a
// payin.create_invoice job, enqueued in the same transaction, invoices the rest.
func PayInCreate(ctx context.Context, tx pgx.Tx, st Step, tenantID uuid.UUID, p PayInCreateParams) (sql.PayIn, error) {
	if p.Type == sql.PayinTypeCreditGrant {
		return sql.PayIn{}, fmt.Errorf("%w: credit grants are made by CreditGrant, not paid for", ErrInvalid)
	}
	if p.ID == uuid.Nil {
		p.ID = NewID()
	}
	params := sql.PayInCreateParams{
		TenantID: tenantID, ID: p.ID, CustomerID: p.CustomerID, Type: p.Type, PriceCurrency: p.PriceCurrency,
		PriceValue: p.PriceValue, PolicyID: p.PolicyID, AddonIds: []uuid.UUID{}, Now: st.Now,
	}
	if p.PolicyID != nil {
		var err error
		if params.AddonIds, err = applicableAddons(ctx, tx, sql.AddonListApplicableParams{TenantID: tenantID, PolicyID: *p.PolicyID, Ids: p.AddonIDs}); err != nil {
			return sql.PayIn{}, err
		}
	}
	if p.PriceCurrency != sql.CurrencySAT {
		if p.Rate == nil || p.Rate.Currency != string(p.PriceCurrency) {
			return sql.PayIn{}, fmt.Errorf("create payin: no %s rate", p.PriceCurrency)
		}
		params.RateMinorPerBtc, params.RateSource = &p.Rate.MinorPerBTC, &p.Rate.Source
	}
	if p.Predecessor != nil {
		params.GenesisID, params.RetryCount = &p.Predecessor.GenesisID, p.Predecessor.RetryCount+1
	}
	payin, err := queries.PayInCreate(ctx, tx, params)
	if err != nil {
		return sql.PayIn{}, fmt.Errorf("create payin: %w", DBError(err))
	}
	assets := make([]string, len(p.Assets))
	for i, a := range p.Assets {
		assets[i] = string(a)
	}
	debit, err := queries.PayInDebitCustodial(ctx, tx, sql.PayInDebitCustodialParams{
		TenantID: tenantID, PayInID: payin.ID, CustomerID: p.CustomerID, Assets: assets, CostSats: payin.CostSats, Now: st.Now,
	})
	if err != nil {
		return sql.PayIn{}, fmt.Errorf("debit custodial balances: %w", DBError(err))
	}
	if err := Audit(ctx, tx, st, Change{TenantID: tenantID,
		Action: "payin.create", SubjectType: "payin", SubjectID: payin.ID.String(),
		Details: map[string]any{"type": payin.Type, "cost_sats": payin.CostSats, "custodial_sats": debit.CustodialSats},
	}); err != nil {
		return sql.PayIn{}, err
	}
	if debit.InvoiceSats == 0 {
		return PayInPaid(ctx, tx, st, payin, nil, 0)
	}
	if err := queries.PayInLogCreated(ctx, tx, sql.PayInLogCreatedParams{TenantID: tenantID, PayInID: payin.ID, Now: st.Now}); err != nil {
		return sql.PayIn{}, fmt.Errorf("log payin: %w", err)
	}
	_, err = st.Jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: jobargs.PayInCreateInvoice{TenantID: tenantID, PayInID: payin.ID}}})
	if err != nil {
		return sql.PayIn{}, fmt.Errorf("enqueue invoice creation: %w", err)
	}
	return payin, nil
}

// payInTransition moves a PayIn between states, from one of from; a PayIn in another state
// is ErrPayInState (an ErrConflict) naming it, an unknown one ErrNotFound. No from means the PayIn was just
// inserted (PENDING_INVOICE_CREATION, not recorded yet): the transition is recorded as its
// first state.
func payInTransition(ctx context.Context, tx pgx.Tx, st Step, tenantID, id uuid.UUID, from []sql.PayInState, to sql.PayInState, reason *sql.PayInFailureReason) (sql.PayIn, error) {
	created := len(from) == 0
	if created {
		from = []sql.PayInState{sql.PayinStatePENDINGINVOICECREATION}
	}
	states := make([]string, len(from))
	for i, s := range from {
		states[i] = string(s)
	}
	row, err := queries.PayInTransition(ctx, tx, sql.PayInTransitionParams{
		TenantID: tenantID, ID: id, FromStates: states, ToState: to, Reason: reason, Created: created, Now: st.Now,
	})
	if err != nil {
		if err = DBError(err); !errors.Is(err, ErrNotFound) {
			return sql.PayIn{}, fmt.Errorf("move payin %s to %s: %w", id, to, err)
		}
		current, getErr := queries.PayInGet(ctx, tx, sql.PayInGetParams{TenantID: tenantID, ID: id})
		if getErr != nil {
			return sql.PayIn{}, fmt.Errorf("payin %s: %w", id, DBError(getErr))
		}
		return sql.PayIn{}, fmt.Errorf("%w: payin %s is %s and cannot become %s", ErrPayInState, id, current.State, to)
	}
	return sql.PayIn(row), nil
}

// PayInPaid moves a PayIn from one of from to PAID and, in the same transaction, applies
// its effect (issue the licence, with its subscription for a recurring policy; credit a
// credit purchase or grant), records its payouts — the tenant's revenue, and overpaidSats as an
// overpay_spillover payout in credits to the payer — and emits payin.paid. A PayIn already
// PAID is ErrConflict, so a second settle changes nothing. No from means the PayIn was
// inserted in this transaction and is PAID at once (payInTransition).
func PayInPaid(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn, from []sql.PayInState, overpaidSats int64) (sql.PayIn, error) {
	payin, err := payInTransition(ctx, tx, st, payin.TenantID, payin.ID, from, sql.PayinStatePAID, nil)
	if err != nil {
		return sql.PayIn{}, err
	}
	payout := func(typ sql.PayoutType, earner *uuid.UUID, asset string, amount int64, balanceAfter *int64) error {
		if amount == 0 {
			return nil
		}
		return queries.PayoutCreate(ctx, tx, sql.PayoutCreateParams{
			TenantID: payin.TenantID, ID: NewID(), PayInID: payin.ID, Type: typ, EarnerCustomerID: earner,
			Asset: asset, Amount: amount, BalanceAfter: balanceAfter, Now: st.Now,
		})
	}
	credit := func(typ sql.PayoutType, amount int64) error {
		if amount == 0 {
			return nil
		}
		after, err := queries.BalanceCredit(ctx, tx, sql.BalanceCreditParams{
			TenantID: payin.TenantID, CustomerID: payin.CustomerID, Asset: sql.AssetCredits, Amount: amount, Now: st.Now,
		})
		if err != nil {
			return fmt.Errorf("credit balance: %w", DBError(err))
		}
		return payout(typ, &payin.CustomerID, string(sql.AssetCredits), amount, &after)
	}

	switch payin.Type {
	case sql.PayinTypeCreditPurchase:
		err = credit(sql.PayoutTypeCreditPurchase, payin.CostSats)
	case sql.PayinTypeCreditGrant:
		err = credit(sql.PayoutTypeCreditGrant, payin.CostSats)
	case sql.PayinTypeSubscriptionRenewal:
		err = subscriptionRenewed(ctx, tx, st, payin)
	case sql.PayinTypeTierUpgrade:
		err = tierUpgradePaid(ctx, tx, st, payin)
	case sql.PayinTypeLicensePurchase:
		err = payInIssueLicense(ctx, tx, st, &payin)
		if err == nil {
			err = payoutRevenue(ctx, tx, st, payin)
		}
	default:
		err = fmt.Errorf("payin %s: no effect for type %s yet", payin.ID, payin.Type)
	}
	if err == nil {
		err = credit(sql.PayoutTypeOverpaySpillover, overpaidSats)
	}
	if err != nil {
		return sql.PayIn{}, fmt.Errorf("fulfil payin %s: %w", payin.ID, err)
	}
	st.Outcomes.payIn(payin, PayInPaidOutcome, "")
	return payin, Record(ctx, tx, st, Change{TenantID: payin.TenantID, Action: "payin.paid", SubjectType: "payin", SubjectID: payin.ID.String(), Event: PayInPaidEvent(PayInFieldsOf(payin))})
}

// payoutRevenue records what a PAID PayIn earns the tenant: its cost in sats, when any.
func payoutRevenue(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn) error {
	if payin.CostSats == 0 {
		return nil
	}
	err := queries.PayoutCreate(ctx, tx, sql.PayoutCreateParams{
		TenantID: payin.TenantID, ID: NewID(), PayInID: payin.ID, Type: sql.PayoutTypeTenantRevenue,
		Asset: "sats", Amount: payin.CostSats, Now: st.Now,
	})
	if err != nil {
		return fmt.Errorf("revenue of payin %s: %w", payin.ID, DBError(err))
	}
	return nil
}

// payInIssueLicense issues what a licence purchase bought: a subscription with its licence
// for a recurring policy, a licence otherwise.
func payInIssueLicense(ctx context.Context, tx pgx.Tx, st Step, payin *sql.PayIn) error {
	if payin.PolicyID == nil {
		return fmt.Errorf("%w: licence purchase without a policy", ErrInvalid)
	}
	policy, err := queries.PolicyGet(ctx, tx, sql.PolicyGetParams{TenantID: payin.TenantID, ID: *payin.PolicyID})
	if err != nil {
		return fmt.Errorf("policy %s: %w", *payin.PolicyID, DBError(err))
	}
	var license sql.License
	if policy.IsRecurring {
		_, license, err = SubscriptionCreate(ctx, tx, st, SubscriptionCreateParams{TenantID: payin.TenantID, CustomerID: payin.CustomerID, PolicyID: policy.ID, AddonIDs: payin.AddonIds})
	} else {
		license, err = LicenseIssue(ctx, tx, st, LicenseIssueParams{TenantID: payin.TenantID, PolicyID: policy.ID, CustomerID: payin.CustomerID, AddonIDs: payin.AddonIds})
	}
	if err != nil {
		return err
	}
	payin.LicenseID = &license.ID
	return queries.PayInSetLicense(ctx, tx, sql.PayInSetLicenseParams{TenantID: payin.TenantID, ID: payin.ID, LicenseID: license.ID, Now: st.Now})
}

// PayInFail moves a PayIn from one of from to FAILED with reason, fails the upgrade a
// tier_upgrade PayIn would have paid, backs off the renewal of a renewal PayIn that was never
// invoiced (INVOICE_CREATION_FAILED or SYSTEM_CANCELLED: renewalInvoiceFailed), refunds its
// custodial parts, credits receivedSats (what an underpaid invoice did receive) to the payer
// as an underpayment_refund payout, and emits payin.failed. A PayIn with an invoice gets a
// payin.invalidate_invoice job in the same transaction: its invoice must take no more
// money, and money it took meanwhile is credited (PayInLatePaymentCredit).
func PayInFail(ctx context.Context, tx pgx.Tx, st Step, tenantID, id uuid.UUID, from []sql.PayInState, reason sql.PayInFailureReason, receivedSats int64) (sql.PayIn, error) {
	payin, err := payInTransition(ctx, tx, st, tenantID, id, from, sql.PayinStateFAILED, &reason)
	if err != nil {
		return sql.PayIn{}, err
	}
	if payin.Type == sql.PayinTypeSubscriptionRenewal &&
		(reason == sql.PayinFailureReasonINVOICECREATIONFAILED || reason == sql.PayinFailureReasonSYSTEMCANCELLED) {
		if err := renewalInvoiceFailed(ctx, tx, st, payin); err != nil {
			return sql.PayIn{}, err
		}
	}
	if payin.Type == sql.PayinTypeTierUpgrade {
		// The upgrade it would have paid fails with it; the buyer may start a new one.
		_, err := tierChangeEnd(ctx, tx, st, sql.TierChangeEndParams{TenantID: tenantID, FromStatus: sql.TierChangeStatusPending, PayInID: &id, Failed: true})
		if err != nil {
			return sql.PayIn{}, err
		}
	}
	if _, err := queries.PayInRefundCustodial(ctx, tx, sql.PayInRefundCustodialParams{
		TenantID: tenantID, PayInID: id, CustomerID: payin.CustomerID, Now: st.Now,
	}); err != nil {
		return sql.PayIn{}, fmt.Errorf("refund payin %s: %w", id, DBError(err))
	}
	if receivedSats > 0 {
		after, err := queries.BalanceCredit(ctx, tx, sql.BalanceCreditParams{
			TenantID: tenantID, CustomerID: payin.CustomerID, Asset: sql.AssetCredits, Amount: receivedSats, Now: st.Now,
		})
		if err != nil {
			return sql.PayIn{}, fmt.Errorf("credit received sats of payin %s: %w", id, DBError(err))
		}
		err = queries.PayoutCreate(ctx, tx, sql.PayoutCreateParams{
			TenantID: tenantID, ID: NewID(), PayInID: id, Type: sql.PayoutTypeUnderpaymentRefund, EarnerCustomerID: &payin.CustomerID,
			Asset: string(sql.AssetCredits), Amount: receivedSats, BalanceAfter: &after, Now: st.Now,
		})
		if err != nil {
			return sql.PayIn{}, fmt.Errorf("record received sats of payin %s: %w", id, DBError(err))
		}
	}
	if err := payInInvalidateInvoice(ctx, tx, st, payin); err != nil {
		return sql.PayIn{}, err
	}
	data := PayInFailedEvent{PayInFields: PayInFieldsOf(payin), FailureReason: reason}
	st.Outcomes.payIn(payin, PayInFailedOutcome, reason)
	return payin, Record(ctx, tx, st, Change{TenantID: tenantID, Action: "payin.fail", SubjectType: "payin", SubjectID: id.String(), Event: data})
}

// payInInvalidateInvoice enqueues the invalidation of a FAILED PayIn's invoice, if it has one.
func payInInvalidateInvoice(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn) error {
	_, err := queries.PayInInvoiceGet(ctx, tx, sql.PayInInvoiceGetParams{TenantID: payin.TenantID, PayInID: payin.ID})
	if err = DBError(err); errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("invoice of payin %s: %w", payin.ID, err)
	}
	_, err = st.Jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: jobargs.PayInInvalidateInvoice{TenantID: payin.TenantID, PayInID: payin.ID}}})
	if err != nil {
		return fmt.Errorf("enqueue invalidation of the invoice of payin %s: %w", payin.ID, err)
	}
	return nil
}

// PayInInvoiceAbandoned records an invoice the provider created for a PayIn that failed
// before the invoice was recorded (the buyer cancelled while payin.create_invoice waited for
// the provider), so that money paid to it is found and credited, and enqueues its
// invalidation. A PayIn has one invoice: the caller checks that none is recorded yet.
func PayInInvoiceAbandoned(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn, provider string, invoice payment.Invoice) error {
	if payin.State != sql.PayinStateFAILED {
		return fmt.Errorf("%w: payin %s is %s, not FAILED", ErrPayInState, payin.ID, payin.State)
	}
	if _, err := payInInvoiceAttach(ctx, tx, st, payin, provider, invoice); err != nil {
		return err
	}
	return payInInvalidateInvoice(ctx, tx, st, payin)
}

// PayInLatePaymentCredit credits to the payer money that reached the invoice of a PayIn that
// can no longer use it — FAILED (cancelled, expired, invalid, not found), or PAID already — when
// its provider says the invoice has received paidSats in all: what is beyond what was
// accounted for before (PayInInvoiceAccount, which makes it exactly once) goes to the payer's
// credits as a late_payment_credit payout with the balance after, audited and emitted as
// payin.late_payment_credited. It returns the sats credited (0: nothing new). The caller
// holds the PayIn's lock (PayInLock).
func PayInLatePaymentCredit(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn, paidSats int64) (int64, error) {
	late, err := queries.PayInInvoiceAccount(ctx, tx, sql.PayInInvoiceAccountParams{TenantID: payin.TenantID, PayInID: payin.ID, PaidSats: paidSats})
	if err != nil {
		return 0, fmt.Errorf("account for what the invoice of payin %s received: %w", payin.ID, DBError(err))
	}
	if late == 0 {
		return 0, nil
	}
	after, err := queries.BalanceCredit(ctx, tx, sql.BalanceCreditParams{
		TenantID: payin.TenantID, CustomerID: payin.CustomerID, Asset: sql.AssetCredits, Amount: late, Now: st.Now,
	})
	if err != nil {
		return 0, fmt.Errorf("credit late payment of payin %s: %w", payin.ID, DBError(err))
	}
	err = queries.PayoutCreate(ctx, tx, sql.PayoutCreateParams{
		TenantID: payin.TenantID, ID: NewID(), PayInID: payin.ID, Type: sql.PayoutTypeLatePaymentCredit, EarnerCustomerID: &payin.CustomerID,
		Asset: string(sql.AssetCredits), Amount: late, BalanceAfter: &after, Now: st.Now,
	})
	if err != nil {
		return 0, fmt.Errorf("record late payment of payin %s: %w", payin.ID, DBError(err))
	}
	data := PayInLatePaymentCreditedEvent{PayInFields: PayInFieldsOf(payin), CreditedSats: late, ReceivedSats: paidSats, BalanceAfter: after}
	st.Outcomes.payIn(payin, PayInLateCreditedOutcome, "")
	return late, Record(ctx, tx, st, Change{TenantID: payin.TenantID, Action: "payin.late_payment_credit", SubjectType: "payin", SubjectID: payin.ID.String(), Event: data})
}

// PayInInvoiceCreated records the provider invoice for the rest of a PayIn and moves it
// from PENDING_INVOICE_CREATION to PENDING; for a renewal it emits
// subscription.renewal_pending with the checkout URL (renewalPending).
func PayInInvoiceCreated(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn, provider string, invoice payment.Invoice) (sql.PayIn, sql.PayInInvoice, error) {
	row, err := payInInvoiceAttach(ctx, tx, st, payin, provider, invoice)
	if err != nil {
		return sql.PayIn{}, sql.PayInInvoice{}, err
	}
	payin, err = payInTransition(ctx, tx, st, payin.TenantID, payin.ID,
		[]sql.PayInState{sql.PayinStatePENDINGINVOICECREATION}, sql.PayinStatePENDING, nil)
	if err == nil && payin.Type == sql.PayinTypeSubscriptionRenewal {
		err = renewalPending(ctx, tx, st, payin, row)
	}
	return payin, row, err
}

// payInInvoiceAttach records the provider invoice of a PayIn.
func payInInvoiceAttach(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn, provider string, invoice payment.Invoice) (sql.PayInInvoice, error) {
	var expires *time.Time
	if !invoice.ExpiresAt.IsZero() {
		expires = &invoice.ExpiresAt
	}
	row, err := queries.PayInInvoiceAttach(ctx, tx, sql.PayInInvoiceAttachParams{
		TenantID: payin.TenantID, PayInID: payin.ID, Provider: provider, ProviderInvoiceID: invoice.ID,
		CheckoutURL: invoice.CheckoutURL, AmountSats: invoice.AmountSats, ExpiresAt: expires, Now: st.Now,
	})
	if err != nil {
		return sql.PayInInvoice{}, fmt.Errorf("attach invoice to payin %s: %w", payin.ID, DBError(err))
	}
	return row, nil
}

// PayInRetryParams says how a retry pays.
type PayInRetryParams struct {
	// Rate re-quotes a fiat price at the current rate; nil for SAT prices (charged verbatim).
	Rate *payment.Rate
	// Assets are the custodial balances to pay from, in order; none pays all by invoice.
	Assets []sql.Asset
}

// PayInRetry retries a FAILED PayIn: it claims the PayIn with a guarded update (it must be
// FAILED and not retried yet) and, in the same transaction, creates its successor with the
// same type, customer, price (re-quoted), policy and add-ons, in the chain of the same
// genesis with retry_count + 1. A purchase of a policy archived since is ErrConflict, and so
// is a tier upgrade (its prorated price is re-quoted by a new upgrade). Of concurrent retries
// of one PayIn exactly one succeeds; the others, and retries of a PayIn that is not FAILED or
// already retried, are ErrConflict.
func PayInRetry(ctx context.Context, tx pgx.Tx, st Step, failed sql.PayIn, p PayInRetryParams) (sql.PayIn, error) {
	if failed.Type == sql.PayinTypeTierUpgrade {
		return sql.PayIn{}, fmt.Errorf("%w: an upgrade is priced for the day it starts; start a new one with POST /v1/upgrade", ErrUpgradeNotRetryable)
	}
	if failed.PolicyID != nil {
		policy, err := queries.PolicyGet(ctx, tx, sql.PolicyGetParams{TenantID: failed.TenantID, ID: *failed.PolicyID})
		if err != nil {
			return sql.PayIn{}, fmt.Errorf("policy %s: %w", *failed.PolicyID, DBError(err))
		}
		if policy.ArchivedAt != nil {
			return sql.PayIn{}, fmt.Errorf("%w: policy %s is archived and no longer sold", ErrArchivedPolicy, policy.ID)
		}
	}
	successorID := NewID()
	claimed, err := queries.PayInRetryClaim(ctx, tx, sql.PayInRetryClaimParams{
		SuccessorID: successorID, Now: st.Now, TenantID: failed.TenantID, ID: failed.ID,
	})
	if err != nil {
		if err = DBError(err); !errors.Is(err, ErrNotFound) {
			return sql.PayIn{}, fmt.Errorf("claim payin %s for a retry: %w", failed.ID, err)
		}
		current, getErr := queries.PayInGet(ctx, tx, sql.PayInGetParams{TenantID: failed.TenantID, ID: failed.ID})
		switch {
		case getErr != nil:
			return sql.PayIn{}, fmt.Errorf("payin %s: %w", failed.ID, DBError(getErr))
		case current.SuccessorID != nil:
			return sql.PayIn{}, fmt.Errorf("%w: payin %s was already retried by %s", ErrPayInRetried, failed.ID, *current.SuccessorID)
		default:
			return sql.PayIn{}, fmt.Errorf("%w: payin %s is %s; only a FAILED PayIn can be retried", ErrPayInState, failed.ID, current.State)
		}
	}
	successor, err := PayInCreate(ctx, tx, st, claimed.TenantID, PayInCreateParams{
		ID: successorID, CustomerID: claimed.CustomerID, Type: claimed.Type, PriceCurrency: claimed.PriceCurrency,
		PriceValue: claimed.PriceValue, Rate: p.Rate, PolicyID: claimed.PolicyID, AddonIDs: claimed.AddonIds,
		Assets: p.Assets, Predecessor: &claimed,
	})
	if err != nil {
		return sql.PayIn{}, fmt.Errorf("retry payin %s: %w", failed.ID, err)
	}
	err = Audit(ctx, tx, st, Change{TenantID: claimed.TenantID,
		Action: "payin.retry", SubjectType: "payin", SubjectID: claimed.ID.String(),
		Details: map[string]any{"successor_id": successor.ID, "genesis_id": successor.GenesisID, "retry_count": successor.RetryCount},
	})
	return successor, err
}

// CreditGrantMax is the most credits one grant gives.
const CreditGrantMax = 1_000_000_000_000

// CreditGrant gives a customer credits as a credit_grant PayIn: funded by the tenant (no
// custodial part, no invoice), PAID at once, paid out to the customer in credits with the
// balance after, audited as credit.grant with reason, and emitting payin.paid. It returns
// the PayIn and the customer's credits balance after.
func CreditGrant(ctx context.Context, tx pgx.Tx, st Step, tenantID, customerID uuid.UUID, amount int64, reason string) (sql.PayIn, int64, error) {
	if amount < 1 || amount > CreditGrantMax {
		return sql.PayIn{}, 0, fmt.Errorf("%w: a grant is 1 to %d credits", ErrInvalid, int64(CreditGrantMax))
	}
	payin, err := queries.PayInCreate(ctx, tx, sql.PayInCreateParams{
		TenantID: tenantID, ID: NewID(), CustomerID: customerID, Type: sql.PayinTypeCreditGrant, PriceCurrency: sql.CurrencySAT,
		PriceValue: amount, AddonIds: []uuid.UUID{}, Now: st.Now,
	})
	if err != nil {
		return sql.PayIn{}, 0, fmt.Errorf("create credit grant: %w", DBError(err))
	}
	if payin, err = PayInPaid(ctx, tx, st, payin, nil, 0); err != nil {
		return sql.PayIn{}, 0, err
	}
	payouts, err := queries.PayInPayouts(ctx, tx, sql.PayInPayoutsParams{TenantID: tenantID, PayInID: payin.ID})
	if err != nil {
		return sql.PayIn{}, 0, fmt.Errorf("payout of credit grant %s: %w", payin.ID, err)
	}
	if len(payouts) != 1 || payouts[0].BalanceAfter == nil {
		return sql.PayIn{}, 0, fmt.Errorf("credit grant %s: %d payouts, want one with its balance after", payin.ID, len(payouts))
	}
	after := *payouts[0].BalanceAfter
	err = Audit(ctx, tx, st, Change{TenantID: tenantID,
		Action: "credit.grant", SubjectType: "customer", SubjectID: customerID.String(),
		Details: map[string]any{"payin_id": payin.ID, "amount": amount, "reason": reason, "balance_after": after},
	})
	return payin, after, err
}
