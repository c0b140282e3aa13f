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
	TenantID      uuid.UUID
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
	// Invoices, when set, collects the PayIn to invoice, of a tenant the caller knows is live
	// (not a sandbox: the tenant is not read again), instead of its payin.create_invoice job:
	// the caller enqueues its invoicing with others' in this transaction (the renewal sweep's
	// batch enqueues one payin.create_invoices job); nil enqueues the PayIn's
	// payin.create_invoice job at once, or opens a sandbox tenant's invoice.
	Invoices *[]jobargs.PayInRef
}

// PayInCreate creates a PayIn, converting its price to sats, and pays what it can from the
// payer's custodial balances in the same transaction. Fully covered, it is PAID at once
// (with its effect and payouts), and its transitions say so: created PAID, never waiting
// for an invoice. Otherwise it is created PENDING_INVOICE_CREATION and a
// payin.create_invoice job, enqueued in the same transaction, invoices the rest.
func PayInCreate(ctx context.Context, tx pgx.Tx, st Step, p PayInCreateParams) (sql.PayIn, error) {
	if p.Type == sql.PayinTypeCreditGrant {
		return sql.PayIn{}, fmt.Errorf("%w: credit grants are made by CreditGrant, not paid for", ErrInvalid)
	}
	if p.ID == uuid.Nil {
		p.ID = NewID()
	}
	params := sql.PayInCreateParams{
		TenantID: p.TenantID, ID: p.ID, CustomerID: p.CustomerID, Type: p.Type, PriceCurrency: p.PriceCurrency,
		PriceValue: p.PriceValue, PolicyID: p.PolicyID, AddonIDs: []uuid.UUID{}, Now: st.Now,
	}
	if p.PolicyID != nil {
		var err error
		if params.AddonIDs, err = applicableAddons(ctx, tx, sql.AddonListApplicableParams{TenantID: p.TenantID, PolicyID: *p.PolicyID, IDs: p.AddonIDs}); err != nil {
			return sql.PayIn{}, err
		}
	}
	if p.PriceCurrency != sql.CurrencySAT {
		if p.Rate == nil || p.Rate.Currency != string(p.PriceCurrency) {
			return sql.PayIn{}, fmt.Errorf("create payin: no %s rate", p.PriceCurrency)
		}
		params.RateMinorPerBTC, params.RateSource = &p.Rate.MinorPerBTC, &p.Rate.Source
	}
	if p.Predecessor != nil {
		params.GenesisID, params.RetryCount = &p.Predecessor.GenesisID, p.Predecessor.RetryCount+1
	}
	payin, err := queries.PayInCreate(ctx, tx, params)
	if err != nil {
		return sql.PayIn{}, fmt.Errorf("create payin: %w", err)
	}
	assets := make([]string, len(p.Assets))
	for i, a := range p.Assets {
		assets[i] = string(a)
	}
	debit := sql.PayInDebitCustodialRow{InvoiceSats: payin.CostSats} // no balances to pay from: all by invoice
	if len(assets) > 0 {
		debit, err = queries.PayInDebitCustodial(ctx, tx, sql.PayInDebitCustodialParams{
			TenantID: p.TenantID, PayInID: payin.ID, CustomerID: p.CustomerID, Assets: assets, CostSats: payin.CostSats, Now: st.Now,
		})
		if err != nil {
			return sql.PayIn{}, fmt.Errorf("debit custodial balances: %w", err)
		}
	}
	if err := Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "payin.create", SubjectType: "payin", SubjectID: payin.ID.String(),
		Details: map[string]any{"type": payin.Type, "cost_sats": payin.CostSats, "custodial_sats": debit.CustodialSats},
	}); err != nil {
		return sql.PayIn{}, err
	}
	if debit.InvoiceSats == 0 {
		return PayInPaid(ctx, tx, st, PayInPaidParams{PayIn: payin, Move: PayInMovePayAtOnce})
	}
	if err := queries.PayInLogCreated(ctx, tx, sql.PayInLogCreatedParams{TenantID: p.TenantID, PayInID: payin.ID, Now: st.Now}); err != nil {
		return sql.PayIn{}, fmt.Errorf("log payin: %w", err)
	}
	if p.Invoices == nil { // a batch's tenants are live: a tenant's mode never changes (migration 00026)
		tenant, err := queries.TenantGet(ctx, tx, p.TenantID)
		if err != nil {
			return sql.PayIn{}, fmt.Errorf("tenant %s: %w", p.TenantID, err)
		}
		if tenant.ClockAt != nil {
			return sandboxInvoiceOpen(ctx, tx, st, payin, debit.InvoiceSats)
		}
	}
	if p.Invoices != nil {
		*p.Invoices = append(*p.Invoices, jobargs.PayInRef{TenantID: p.TenantID, PayInID: payin.ID})
		return payin, nil
	}
	job := river.InsertManyParams{Args: jobargs.PayInCreateInvoice{TenantID: p.TenantID, PayInID: payin.ID}}
	if _, err = st.Jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{job}); err != nil {
		return sql.PayIn{}, fmt.Errorf("enqueue invoice creation: %w", err)
	}
	return payin, nil
}

// PayInMove is a named move of the PayIn state machine. A PayIn is created
// PENDING_INVOICE_CREATION (PayInCreate); every later change of its state is one of these
// moves, and PayInMoves says from which states each is allowed, where it leads and what it
// records. PayInPaid makes the moves to PAID, PayInFail those to FAILED and
// PayInInvoiceCreated the move to PENDING.
type PayInMove string

// The PayIn moves.
const (
	// PayInMovePayAtOnce pays a PayIn inserted in this transaction that needs no invoice: fully
	// covered by custodial balances, or a credit grant.
	PayInMovePayAtOnce PayInMove = "pay_at_once"
	// PayInMoveInvoice records that the provider invoice for the rest of the PayIn exists.
	PayInMoveInvoice PayInMove = "invoice"
	// PayInMovePay pays a PayIn whose invoice the provider confirmed settled with its amount.
	PayInMovePay PayInMove = "pay"
	// PayInMoveCancel is the buyer's cancel of a PayIn not paid yet.
	PayInMoveCancel PayInMove = "cancel"
	// PayInMoveSystemCancel fails a PayIn whose invoice creation an operator cancelled.
	PayInMoveSystemCancel PayInMove = "system_cancel"
	// PayInMoveFailInvoiceCreation fails a PayIn whose invoice the provider would not create.
	PayInMoveFailInvoiceCreation PayInMove = "fail_invoice_creation"
	// PayInMoveExpire fails a PayIn whose invoice expired unpaid.
	PayInMoveExpire PayInMove = "expire"
	// PayInMoveFailInvoiceInvalid fails a PayIn whose invoice the provider marked invalid.
	PayInMoveFailInvoiceInvalid PayInMove = "fail_invoice_invalid"
	// PayInMoveFailAmountMismatch fails a PayIn whose invoice settled with less than its amount.
	PayInMoveFailAmountMismatch PayInMove = "fail_amount_mismatch"
	// PayInMoveFailInvoiceNotFound fails a PayIn whose invoice the provider no longer knows.
	PayInMoveFailInvoiceNotFound PayInMove = "fail_invoice_not_found"
)

// PayInMoveRule is one move of PayInMoves.
type PayInMoveRule struct {
	// From are the states the move is allowed from; To the state it leads to.
	From []sql.PayInState
	To   sql.PayInState
	// Reason is the failure reason a move to FAILED records.
	Reason sql.PayInFailureReason
	// First means the PayIn was inserted in this transaction and its first state never
	// recorded: the move is recorded as its first state, the path it really took.
	First bool
	// Action is what the move records in the audit log with its event (payin.paid or
	// payin.failed); none records the transition alone.
	Action string
	// Done words the move in a refusal: "payin ... is PAID and cannot be <Done>".
	Done string
}

// PayInMoves is the PayIn state machine: every move, from which states, to which, and what
// it records. PayInTransition (queries/payins.sql) makes a move with a guarded update.
var PayInMoves = map[PayInMove]PayInMoveRule{
	PayInMovePayAtOnce: {From: []sql.PayInState{sql.PayinStatePENDINGINVOICECREATION}, To: sql.PayinStatePAID, First: true,
		Action: "payin.paid", Done: "paid at once"},
	PayInMoveInvoice: {From: []sql.PayInState{sql.PayinStatePENDINGINVOICECREATION}, To: sql.PayinStatePENDING,
		Done: "invoiced"},
	PayInMovePay: {From: []sql.PayInState{sql.PayinStatePENDING}, To: sql.PayinStatePAID,
		Action: "payin.paid", Done: "paid"},
	PayInMoveCancel: {From: []sql.PayInState{sql.PayinStatePENDINGINVOICECREATION, sql.PayinStatePENDING}, To: sql.PayinStateFAILED,
		Reason: sql.PayinFailureReasonUSERCANCELLED, Action: "payin.fail", Done: "cancelled"},
	PayInMoveSystemCancel: {From: []sql.PayInState{sql.PayinStatePENDINGINVOICECREATION}, To: sql.PayinStateFAILED,
		Reason: sql.PayinFailureReasonSYSTEMCANCELLED, Action: "payin.fail", Done: "cancelled by the system"},
	PayInMoveFailInvoiceCreation: {From: []sql.PayInState{sql.PayinStatePENDINGINVOICECREATION}, To: sql.PayinStateFAILED,
		Reason: sql.PayinFailureReasonINVOICECREATIONFAILED, Action: "payin.fail", Done: "failed for its invoice creation"},
	PayInMoveExpire: {From: []sql.PayInState{sql.PayinStatePENDING}, To: sql.PayinStateFAILED,
		Reason: sql.PayinFailureReasonINVOICEEXPIRED, Action: "payin.fail", Done: "expired"},
	PayInMoveFailInvoiceInvalid: {From: []sql.PayInState{sql.PayinStatePENDING}, To: sql.PayinStateFAILED,
		Reason: sql.PayinFailureReasonINVOICEINVALID, Action: "payin.fail", Done: "failed for an invalid invoice"},
	PayInMoveFailAmountMismatch: {From: []sql.PayInState{sql.PayinStatePENDING}, To: sql.PayinStateFAILED,
		Reason: sql.PayinFailureReasonAMOUNTMISMATCH, Action: "payin.fail", Done: "failed for an amount mismatch"},
	PayInMoveFailInvoiceNotFound: {From: []sql.PayInState{sql.PayinStatePENDING}, To: sql.PayinStateFAILED,
		Reason: sql.PayinFailureReasonINVOICENOTFOUND, Action: "payin.fail", Done: "failed for a lost invoice"},
}

// payInMoveParams names a PayIn and the move to make, which must lead to To.
type payInMoveParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
	Move     PayInMove
	To       sql.PayInState
}

// payInMove makes a move of PayInMoves on a PayIn with one guarded update
// (PayInTransition) and returns the PayIn in its new state. A PayIn whose state does not
// allow the move is ErrPayInState (an ErrConflict) naming the state it is in, as the
// update found it (payInRefused); an unknown one is ErrNotFound.
func payInMove(ctx context.Context, tx pgx.Tx, st Step, p payInMoveParams) (sql.PayIn, error) {
	rule, ok := PayInMoves[p.Move]
	if !ok || rule.To != p.To {
		return sql.PayIn{}, fmt.Errorf("%w: %q is not a PayIn move to %s", ErrInvalid, p.Move, p.To)
	}
	from := make([]string, len(rule.From))
	for i, s := range rule.From {
		from[i] = string(s)
	}
	var reason *sql.PayInFailureReason
	if rule.Reason != "" {
		reason = &rule.Reason
	}
	row, err := queries.PayInTransition(ctx, tx, sql.PayInTransitionParams{
		TenantID: p.TenantID, ID: p.ID, FromStates: from, ToState: rule.To, Reason: reason, First: rule.First, Now: st.Now,
	})
	if err != nil {
		return sql.PayIn{}, fmt.Errorf("%s payin %s: %w", p.Move, p.ID, err)
	}
	if !row.Moved {
		return sql.PayIn{}, payInRefused(row.PayIn, p.Move)
	}
	return row.PayIn, nil
}

// payInRefused explains why payin, in the state its guarded update found, refused move.
func payInRefused(payin sql.PayIn, move PayInMove) error {
	return fmt.Errorf("%w: payin %s is %s and cannot be %s", ErrPayInState, payin.ID, payin.State, PayInMoves[move].Done)
}

// PayInPaidParams says which PayIn is PAID, by which move, and what its invoice received
// beyond its amount.
type PayInPaidParams struct {
	PayIn sql.PayIn
	// Move is PayInMovePay (its invoice settled) or PayInMovePayAtOnce (inserted in this
	// transaction with nothing to invoice).
	Move PayInMove
	// OverpaidSats is what the invoice received beyond its amount, credited to the payer.
	OverpaidSats int64
}

// PayInPaid makes a move to PAID (PayInMoves) and, in the same transaction, applies the
// PayIn's effect (issue the licence, with its subscription for a recurring policy; credit a
// credit purchase or grant), records its payouts — the tenant's revenue, and OverpaidSats as
// an overpay_spillover payout in credits to the payer — and emits payin.paid. A PayIn
// already PAID is ErrPayInState, so a second settle changes nothing.
func PayInPaid(ctx context.Context, tx pgx.Tx, st Step, p PayInPaidParams) (sql.PayIn, error) {
	payin, err := payInMove(ctx, tx, st, payInMoveParams{TenantID: p.PayIn.TenantID, ID: p.PayIn.ID, Move: p.Move, To: sql.PayinStatePAID})
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
			return fmt.Errorf("credit balance: %w", err)
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
		err = credit(sql.PayoutTypeOverpaySpillover, p.OverpaidSats)
	}
	if err != nil {
		return sql.PayIn{}, fmt.Errorf("fulfil payin %s: %w", payin.ID, err)
	}
	st.Outcomes.payIn(payin, PayInPaidOutcome, "")
	return payin, Record(ctx, tx, st, Change{TenantID: payin.TenantID, Action: PayInMoves[p.Move].Action, SubjectType: "payin", SubjectID: payin.ID.String(), Event: PayInPaidEvent(PayInFieldsOf(payin))})
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
		return fmt.Errorf("revenue of payin %s: %w", payin.ID, err)
	}
	return nil
}

// payInIssueLicense issues what a licence purchase bought: a subscription with its licence
// for a recurring policy, a licence otherwise, recorded on the PayIn by the statement that
// issues it.
func payInIssueLicense(ctx context.Context, tx pgx.Tx, st Step, payin *sql.PayIn) error {
	if payin.PolicyID == nil {
		return fmt.Errorf("%w: licence purchase without a policy", ErrInvalid)
	}
	policy, err := queries.PolicyGet(ctx, tx, sql.PolicyGetParams{TenantID: payin.TenantID, ID: *payin.PolicyID})
	if err != nil {
		return fmt.Errorf("policy %s: %w", *payin.PolicyID, err)
	}
	var license sql.License
	if policy.IsRecurring {
		_, license, err = SubscriptionCreate(ctx, tx, st, SubscriptionCreateParams{
			TenantID: payin.TenantID, CustomerID: payin.CustomerID, PolicyID: policy.ID, AddonIDs: payin.AddonIDs, PayInID: &payin.ID,
		})
	} else {
		license, err = LicenseIssue(ctx, tx, st, LicenseIssueParams{
			TenantID: payin.TenantID, PolicyID: policy.ID, CustomerID: payin.CustomerID, AddonIDs: payin.AddonIDs, PayInID: &payin.ID,
		})
	}
	if err != nil {
		return err
	}
	payin.LicenseID = &license.ID
	return nil
}

// PayInFailParams says which PayIn fails, by which move, and what its invoice received.
type PayInFailParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
	// Move is one of the moves to FAILED (PayInMoves); its reason is the failure reason.
	Move PayInMove
	// ReceivedSats is what an underpaid invoice did receive, credited to the payer.
	ReceivedSats int64
}

// PayInFail makes a move to FAILED (PayInMoves), recording its reason, fails the upgrade a
// tier_upgrade PayIn would have paid, backs off the renewal of a renewal PayIn that was never
// invoiced (INVOICE_CREATION_FAILED or SYSTEM_CANCELLED: renewalInvoiceFailed), refunds its
// custodial parts, credits ReceivedSats to the payer as an underpayment_refund payout, and
// emits payin.failed. A PayIn with an invoice gets a payin.invalidate_invoice job in the
// same transaction: its invoice must take no more money, and money it took meanwhile is
// credited (PayInLatePaymentCredit).
func PayInFail(ctx context.Context, tx pgx.Tx, st Step, p PayInFailParams) (sql.PayIn, error) {
	payin, err := payInMove(ctx, tx, st, payInMoveParams{TenantID: p.TenantID, ID: p.ID, Move: p.Move, To: sql.PayinStateFAILED})
	if err != nil {
		return sql.PayIn{}, err
	}
	rule := PayInMoves[p.Move]
	if payin.Type == sql.PayinTypeSubscriptionRenewal &&
		(rule.Reason == sql.PayinFailureReasonINVOICECREATIONFAILED || rule.Reason == sql.PayinFailureReasonSYSTEMCANCELLED) {
		if err := renewalInvoiceFailed(ctx, tx, st, payin); err != nil {
			return sql.PayIn{}, err
		}
	}
	if payin.Type == sql.PayinTypeTierUpgrade {
		// The upgrade it would have paid fails with it; the buyer may start a new one.
		_, err := tierChangeEnd(ctx, tx, st, sql.TierChangeEndParams{TenantID: p.TenantID, FromStatus: sql.TierChangeStatusPending, PayInID: &payin.ID, Failed: true})
		if err != nil {
			return sql.PayIn{}, err
		}
	}
	if _, err := queries.PayInRefundCustodial(ctx, tx, sql.PayInRefundCustodialParams{
		TenantID: p.TenantID, PayInID: payin.ID, CustomerID: payin.CustomerID, Now: st.Now,
	}); err != nil {
		return sql.PayIn{}, fmt.Errorf("refund payin %s: %w", payin.ID, err)
	}
	if p.ReceivedSats > 0 {
		after, err := queries.BalanceCredit(ctx, tx, sql.BalanceCreditParams{
			TenantID: p.TenantID, CustomerID: payin.CustomerID, Asset: sql.AssetCredits, Amount: p.ReceivedSats, Now: st.Now,
		})
		if err != nil {
			return sql.PayIn{}, fmt.Errorf("credit received sats of payin %s: %w", payin.ID, err)
		}
		err = queries.PayoutCreate(ctx, tx, sql.PayoutCreateParams{
			TenantID: p.TenantID, ID: NewID(), PayInID: payin.ID, Type: sql.PayoutTypeUnderpaymentRefund, EarnerCustomerID: &payin.CustomerID,
			Asset: string(sql.AssetCredits), Amount: p.ReceivedSats, BalanceAfter: &after, Now: st.Now,
		})
		if err != nil {
			return sql.PayIn{}, fmt.Errorf("record received sats of payin %s: %w", payin.ID, err)
		}
	}
	if err := payInInvalidateInvoice(ctx, tx, st, payin); err != nil {
		return sql.PayIn{}, err
	}
	data := PayInFailedEvent{PayInFields: PayInFieldsOf(payin), FailureReason: rule.Reason}
	st.Outcomes.payIn(payin, PayInFailedOutcome, rule.Reason)
	return payin, Record(ctx, tx, st, Change{TenantID: p.TenantID, Action: rule.Action, SubjectType: "payin", SubjectID: payin.ID.String(), Event: data})
}

// payInInvalidateInvoice enqueues the invalidation of a FAILED PayIn's invoice, if it has one;
// a sandbox invoice, Tessera's own, is invalidated at once.
func payInInvalidateInvoice(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn) error {
	invoice, err := queries.PayInInvoiceGet(ctx, tx, sql.PayInInvoiceGetParams{TenantID: payin.TenantID, PayInID: payin.ID})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("invoice of payin %s: %w", payin.ID, err)
	}
	if invoice.Provider == SandboxProvider {
		err := queries.PayInInvoiceMarkInvalidated(ctx, tx, sql.PayInInvoiceMarkInvalidatedParams{TenantID: payin.TenantID, PayInID: payin.ID, Now: st.Now})
		if err != nil {
			return fmt.Errorf("invalidate the sandbox invoice of payin %s: %w", payin.ID, err)
		}
		return nil
	}
	_, err = st.Jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: jobargs.PayInInvalidateInvoice{TenantID: payin.TenantID, PayInID: payin.ID}}})
	if err != nil {
		return fmt.Errorf("enqueue invalidation of the invoice of payin %s: %w", payin.ID, err)
	}
	return nil
}

// PayInSettleParams is what a provider says of the invoice of a PENDING PayIn.
type PayInSettleParams struct {
	PayIn   sql.PayIn
	Invoice sql.PayInInvoice
	// Remote is the invoice as the provider reads it; Gone means the provider no longer
	// knows it.
	Remote payment.Invoice
	Gone   bool
}

// PayInSettle makes the move of a PENDING PayIn that what its provider says of its invoice
// calls for, closing the invoice with what it received:
//   - settled with at least the amount: PayInMovePay, the surplus paid back as credits;
//   - settled with less: FAILED with AMOUNT_MISMATCH, the sats received credited;
//   - expired or invalid: FAILED with INVOICE_EXPIRED or INVOICE_INVALID, likewise;
//   - unknown to the provider (Gone): FAILED with INVOICE_NOT_FOUND;
//   - still open: nothing.
//
// The caller holds the PayIn's lock (PayInLock).
func PayInSettle(ctx context.Context, tx pgx.Tx, st Step, p PayInSettleParams) error {
	remote := p.Remote
	fail := PayInFailParams{TenantID: p.PayIn.TenantID, ID: p.PayIn.ID, ReceivedSats: remote.PaidSats}
	switch {
	case p.Gone:
		fail.Move, fail.ReceivedSats = PayInMoveFailInvoiceNotFound, 0
	case remote.Status == payment.InvoiceSettled && remote.PaidSats >= p.Invoice.AmountSats:
		if err := payInInvoiceClose(ctx, tx, st, p.Invoice, remote.PaidSats, true); err != nil {
			return err
		}
		_, err := PayInPaid(ctx, tx, st, PayInPaidParams{PayIn: p.PayIn, Move: PayInMovePay, OverpaidSats: remote.PaidSats - p.Invoice.AmountSats})
		return err
	case remote.Status == payment.InvoiceSettled:
		fail.Move = PayInMoveFailAmountMismatch
	case remote.Status == payment.InvoiceExpired:
		fail.Move = PayInMoveExpire
	case remote.Status == payment.InvoiceInvalid:
		fail.Move = PayInMoveFailInvoiceInvalid
	default:
		return nil
	}
	if err := payInInvoiceClose(ctx, tx, st, p.Invoice, fail.ReceivedSats, false); err != nil {
		return err
	}
	_, err := PayInFail(ctx, tx, st, fail)
	return err
}

// PayInSettleInvoiceParams is what a provider says of one of its invoices: Remote as it
// reads it, or Gone when it no longer knows it.
type PayInSettleInvoiceParams struct {
	Provider  string
	InvoiceID string
	Remote    payment.Invoice
	Gone      bool
}

// PayInSettleInvoice decides what the provider's word on an invoice means for its PayIn — the
// one decision of both the webhook (which settles inline) and the payin.settle job. It finds
// the invoice's PayIn, locks it and reads its tenant's clock in one statement
// (PayInLockByInvoice), then:
//   - a PENDING PayIn is settled by PayInSettle (paid, failed, or left open);
//   - a PayIn that can no longer use money (FAILED or PAID) gets what the invoice's confirmed
//     payments received beyond what was accounted for credited to the payer
//     (PayInLatePaymentCredit, exactly once); an unconfirmed payment waits for its
//     confirmation, and an invoice the provider no longer knows changes nothing.
//
// The step runs at the tenant's sandbox clock where it has one, else at st.Now. It returns
// the PayIn as it was locked, before the move. An invoice the database does not know (yet: a
// webhook faster than the commit of the invoice's row) is ErrNotFound, with nothing done: the
// caller leaves it to a retry.
func PayInSettleInvoice(ctx context.Context, tx pgx.Tx, st Step, p PayInSettleInvoiceParams) (sql.PayIn, error) {
	row, err := queries.PayInLockByInvoice(ctx, tx, sql.PayInLockByInvoiceParams{Provider: p.Provider, ProviderInvoiceID: p.InvoiceID})
	if err != nil {
		return sql.PayIn{}, fmt.Errorf("lock the payin of invoice %s/%s: %w", p.Provider, p.InvoiceID, err)
	}
	payin, invoice := row.PayIn, row.PayInInvoice
	if row.TenantClockAt != nil {
		st.Now = *row.TenantClockAt
	}
	switch {
	case payin.State == sql.PayinStatePENDING:
		err = PayInSettle(ctx, tx, st, PayInSettleParams{PayIn: payin, Invoice: invoice, Remote: p.Remote, Gone: p.Gone})
	case !p.Gone:
		_, err = PayInLatePaymentCredit(ctx, tx, st, PayInLatePaymentCreditParams{PayIn: payin, PaidSats: p.Remote.ConfirmedSats})
	}
	return payin, err
}

// payInInvoiceClose records how a PayIn's invoice ended: paid sats in all, settled or not.
func payInInvoiceClose(ctx context.Context, tx pgx.Tx, st Step, invoice sql.PayInInvoice, paid int64, settled bool) error {
	err := queries.PayInInvoiceClose(ctx, tx, sql.PayInInvoiceCloseParams{
		TenantID: invoice.TenantID, PayInID: invoice.PayInID, PaidSats: &paid, Settled: settled, Now: st.Now,
	})
	if err != nil {
		return fmt.Errorf("close invoice %s: %w", invoice.ProviderInvoiceID, err)
	}
	return nil
}

// PayInInvoiceParams is a provider invoice for the rest of a PayIn.
type PayInInvoiceParams struct {
	PayIn    sql.PayIn
	Provider string
	Invoice  payment.Invoice
}

// PayInInvoiceAbandoned records an invoice the provider created for a PayIn that failed
// before the invoice was recorded (the buyer cancelled while payin.create_invoice waited for
// the provider), so that money paid to it is found and credited, and enqueues its
// invalidation. A PayIn has one invoice: the caller checks that none is recorded yet.
func PayInInvoiceAbandoned(ctx context.Context, tx pgx.Tx, st Step, p PayInInvoiceParams) error {
	if p.PayIn.State != sql.PayinStateFAILED {
		return fmt.Errorf("%w: payin %s is %s, not FAILED", ErrPayInState, p.PayIn.ID, p.PayIn.State)
	}
	if _, err := payInInvoiceAttach(ctx, tx, st, p); err != nil {
		return err
	}
	return payInInvalidateInvoice(ctx, tx, st, p.PayIn)
}

// PayInLatePaymentCreditParams is a PayIn that can no longer use money and what its
// provider says its invoice has received in all.
type PayInLatePaymentCreditParams struct {
	PayIn    sql.PayIn
	PaidSats int64
}

// PayInLatePaymentCredit credits to the payer money that reached the invoice of a PayIn that
// can no longer use it — FAILED (cancelled, expired, invalid, not found), or PAID already — when
// its provider says the invoice has received PaidSats in all: what is beyond what was
// accounted for before (PayInInvoiceAccount, which makes it exactly once) goes to the payer's
// credits as a late_payment_credit payout with the balance after, audited and emitted as
// payin.late_payment_credited. It returns the sats credited (0: nothing new). The caller
// holds the PayIn's lock (PayInLock).
func PayInLatePaymentCredit(ctx context.Context, tx pgx.Tx, st Step, p PayInLatePaymentCreditParams) (int64, error) {
	payin, paidSats := p.PayIn, p.PaidSats
	late, err := queries.PayInInvoiceAccount(ctx, tx, sql.PayInInvoiceAccountParams{TenantID: payin.TenantID, PayInID: payin.ID, PaidSats: paidSats})
	if err != nil {
		return 0, fmt.Errorf("account for what the invoice of payin %s received: %w", payin.ID, err)
	}
	if late == 0 {
		return 0, nil
	}
	after, err := queries.BalanceCredit(ctx, tx, sql.BalanceCreditParams{
		TenantID: payin.TenantID, CustomerID: payin.CustomerID, Asset: sql.AssetCredits, Amount: late, Now: st.Now,
	})
	if err != nil {
		return 0, fmt.Errorf("credit late payment of payin %s: %w", payin.ID, err)
	}
	err = queries.PayoutCreate(ctx, tx, sql.PayoutCreateParams{
		TenantID: payin.TenantID, ID: NewID(), PayInID: payin.ID, Type: sql.PayoutTypeLatePaymentCredit, EarnerCustomerID: &payin.CustomerID,
		Asset: string(sql.AssetCredits), Amount: late, BalanceAfter: &after, Now: st.Now,
	})
	if err != nil {
		return 0, fmt.Errorf("record late payment of payin %s: %w", payin.ID, err)
	}
	data := PayInLatePaymentCreditedEvent{PayInFields: PayInFieldsOf(payin), CreditedSats: late, ReceivedSats: paidSats, BalanceAfter: after}
	st.Outcomes.payIn(payin, PayInLateCreditedOutcome, "")
	return late, Record(ctx, tx, st, Change{TenantID: payin.TenantID, Action: "payin.late_payment_credit", SubjectType: "payin", SubjectID: payin.ID.String(), Event: data})
}

// PayInInvoiceCreated makes the PayInMoveInvoice move (PENDING_INVOICE_CREATION to PENDING)
// and records the provider invoice for the rest of the PayIn (payInInvoicePending follows).
func PayInInvoiceCreated(ctx context.Context, tx pgx.Tx, st Step, p PayInInvoiceParams) (sql.PayIn, sql.PayInInvoice, error) {
	payin, err := payInMove(ctx, tx, st, payInMoveParams{TenantID: p.PayIn.TenantID, ID: p.PayIn.ID, Move: PayInMoveInvoice, To: sql.PayinStatePENDING})
	if err != nil {
		return sql.PayIn{}, sql.PayInInvoice{}, err
	}
	row, err := payInInvoiceAttach(ctx, tx, st, p)
	if err != nil {
		return sql.PayIn{}, sql.PayInInvoice{}, err
	}
	return payin, row, payInInvoicePending(ctx, tx, st, payin, row)
}

// payInInvoicePending follows the invoicing of a PayIn, now PENDING: for a renewal it emits
// subscription.renewal_pending with the checkout URL (renewalPending).
func payInInvoicePending(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn, invoice sql.PayInInvoice) error {
	if payin.Type != sql.PayinTypeSubscriptionRenewal {
		return nil
	}
	return renewalPending(ctx, tx, st, payin, invoice)
}

// payInInvoiceAttach records the provider invoice of a PayIn.
func payInInvoiceAttach(ctx context.Context, tx pgx.Tx, st Step, p PayInInvoiceParams) (sql.PayInInvoice, error) {
	var expires *time.Time
	if !p.Invoice.ExpiresAt.IsZero() {
		expires = &p.Invoice.ExpiresAt
	}
	row, err := queries.PayInInvoiceAttach(ctx, tx, sql.PayInInvoiceAttachParams{
		TenantID: p.PayIn.TenantID, PayInID: p.PayIn.ID, Provider: p.Provider, ProviderInvoiceID: p.Invoice.ID,
		CheckoutURL: p.Invoice.CheckoutURL, AmountSats: p.Invoice.AmountSats, ExpiresAt: expires, Now: st.Now,
	})
	if err != nil {
		return sql.PayInInvoice{}, fmt.Errorf("attach invoice to payin %s: %w", p.PayIn.ID, err)
	}
	return row, nil
}

// PayInRetryParams says which PayIn a retry retries and how it pays.
type PayInRetryParams struct {
	// Failed is the FAILED PayIn to retry.
	Failed sql.PayIn
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
func PayInRetry(ctx context.Context, tx pgx.Tx, st Step, p PayInRetryParams) (sql.PayIn, error) {
	failed := p.Failed
	if failed.Type == sql.PayinTypeTierUpgrade {
		return sql.PayIn{}, fmt.Errorf("%w: an upgrade is priced for the day it starts; start a new one with POST /v1/upgrade", ErrUpgradeNotRetryable)
	}
	if failed.PolicyID != nil {
		policy, err := queries.PolicyGet(ctx, tx, sql.PolicyGetParams{TenantID: failed.TenantID, ID: *failed.PolicyID})
		if err != nil {
			return sql.PayIn{}, fmt.Errorf("policy %s: %w", *failed.PolicyID, err)
		}
		if policy.ArchivedAt != nil {
			return sql.PayIn{}, fmt.Errorf("%w: policy %s is archived and no longer sold", ErrArchivedPolicy, policy.ID)
		}
	}
	successorID := NewID()
	row, err := queries.PayInRetryClaim(ctx, tx, sql.PayInRetryClaimParams{
		SuccessorID: successorID, Now: st.Now, TenantID: failed.TenantID, ID: failed.ID,
	})
	claimed := row.PayIn
	switch {
	case err != nil:
		return sql.PayIn{}, fmt.Errorf("claim payin %s for a retry: %w", failed.ID, err)
	case row.Claimed:
	case claimed.SuccessorID != nil:
		return sql.PayIn{}, fmt.Errorf("%w: payin %s was already retried by %s", ErrPayInRetried, failed.ID, *claimed.SuccessorID)
	default:
		return sql.PayIn{}, fmt.Errorf("%w: payin %s is %s; only a FAILED PayIn can be retried", ErrPayInState, failed.ID, claimed.State)
	}
	successor, err := PayInCreate(ctx, tx, st, PayInCreateParams{
		TenantID: claimed.TenantID, ID: successorID, CustomerID: claimed.CustomerID, Type: claimed.Type, PriceCurrency: claimed.PriceCurrency,
		PriceValue: claimed.PriceValue, Rate: p.Rate, PolicyID: claimed.PolicyID, AddonIDs: claimed.AddonIDs,
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

// CreditGrantParams is a grant of credits to a customer.
type CreditGrantParams struct {
	TenantID   uuid.UUID
	CustomerID uuid.UUID
	// Amount is the credits given, 1 to CreditGrantMax.
	Amount int64
	// Reason says why, for the audit log.
	Reason string
}

// CreditGrant gives a customer credits as a credit_grant PayIn: funded by the tenant (no
// custodial part, no invoice), PAID at once (PayInMovePayAtOnce), paid out to the customer
// in credits with the balance after, audited as credit.grant with its reason, and emitting
// payin.paid. It returns the PayIn and the customer's credits balance after.
func CreditGrant(ctx context.Context, tx pgx.Tx, st Step, p CreditGrantParams) (sql.PayIn, int64, error) {
	if p.Amount < 1 || p.Amount > CreditGrantMax {
		return sql.PayIn{}, 0, fmt.Errorf("%w: a grant is 1 to %d credits", ErrInvalid, int64(CreditGrantMax))
	}
	payin, err := queries.PayInCreate(ctx, tx, sql.PayInCreateParams{
		TenantID: p.TenantID, ID: NewID(), CustomerID: p.CustomerID, Type: sql.PayinTypeCreditGrant, PriceCurrency: sql.CurrencySAT,
		PriceValue: p.Amount, AddonIDs: []uuid.UUID{}, Now: st.Now,
	})
	if err != nil {
		return sql.PayIn{}, 0, fmt.Errorf("create credit grant: %w", err)
	}
	if payin, err = PayInPaid(ctx, tx, st, PayInPaidParams{PayIn: payin, Move: PayInMovePayAtOnce}); err != nil {
		return sql.PayIn{}, 0, err
	}
	payouts, err := queries.PayInPayouts(ctx, tx, sql.PayInPayoutsParams{TenantID: p.TenantID, PayInID: payin.ID})
	if err != nil {
		return sql.PayIn{}, 0, fmt.Errorf("payout of credit grant %s: %w", payin.ID, err)
	}
	if len(payouts) != 1 || payouts[0].BalanceAfter == nil {
		return sql.PayIn{}, 0, fmt.Errorf("credit grant %s: %d payouts, want one with its balance after", payin.ID, len(payouts))
	}
	after := *payouts[0].BalanceAfter
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "credit.grant", SubjectType: "customer", SubjectID: p.CustomerID.String(),
		Details: map[string]any{"payin_id": payin.ID, "amount": p.Amount, "reason": p.Reason, "balance_after": after},
	})
	return payin, after, err
}
