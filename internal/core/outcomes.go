package core

import "github.com/tessera/tessera/sql"

// Outcomes are the domain outcomes — of renewals and of PayIns — that the steps of one
// transaction brought about, kept for whoever runs the transaction to count once it has
// committed (metrics.Domain.Count): a transaction rolled back brought about nothing. The
// zero value is empty; a nil *Outcomes (Step.Outcomes unset) records nothing.
type Outcomes struct {
	// Renewals are the renewal outcomes, one per subscription and event.
	Renewals []RenewalOutcome
	// PayIns are the PayIn outcomes, one per PayIn and event.
	PayIns []PayInOutcome
}

// PayInOutcome is what happened to one PayIn.
type PayInOutcome struct {
	Type    sql.PayInType
	Outcome PayInResult
	// Reason is why a FAILED PayIn failed; empty for the other outcomes.
	Reason sql.PayInFailureReason
}

// PayInResult names a PayIn outcome.
type PayInResult string

// The PayIn outcomes.
const (
	// PayInPaidOutcome: the PayIn became PAID (by invoice, or at once from custodial
	// balances) and its effect applied.
	PayInPaidOutcome PayInResult = "paid"
	// PayInFailedOutcome: the PayIn became FAILED, for PayInOutcome.Reason.
	PayInFailedOutcome PayInResult = "failed"
	// PayInLateCreditedOutcome: money that reached the invoice of a PayIn that could no
	// longer use it was credited to the payer (PayInLatePaymentCredit).
	PayInLateCreditedOutcome PayInResult = "late_payment_credited"
)

func (o *Outcomes) renewal(outcome RenewalOutcome) {
	if o != nil {
		o.Renewals = append(o.Renewals, outcome)
	}
}

func (o *Outcomes) payIn(p sql.PayIn, outcome PayInResult, reason sql.PayInFailureReason) {
	if o != nil {
		o.PayIns = append(o.PayIns, PayInOutcome{Type: p.Type, Outcome: outcome, Reason: reason})
	}
}
