package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/sql"
)

// PayInPart is what a PayIn took from one custodial balance.
type PayInPart struct {
	Asset        string `json:"asset" enum:"credits,reward_sats"`
	Amount       int64  `json:"amount" doc:"Sats taken."`
	BalanceAfter int64  `json:"balance_after"`
}

// PayInInvoice is the provider invoice paying the rest of a PayIn.
type PayInInvoice struct {
	Provider    string     `json:"provider" example:"btcpay"`
	InvoiceID   string     `json:"invoice_id"`
	CheckoutURL string     `json:"checkout_url" doc:"Where the buyer pays."`
	AmountSats  int64      `json:"amount_sats"`
	PaidSats    *int64     `json:"paid_sats,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

// PayIn is a payment as the API shows it.
type PayIn struct {
	ID              uuid.UUID     `json:"id"`
	Type            string        `json:"type" enum:"license_purchase,subscription_renewal,tier_upgrade,credit_purchase,credit_grant"`
	State           string        `json:"state" enum:"PENDING_INVOICE_CREATION,PENDING,PAID,FAILED" doc:"PENDING_INVOICE_CREATION: custodial part taken, invoice being created; poll until PENDING for the checkout URL."`
	FailureReason   *string       `json:"failure_reason,omitempty" enum:"INVOICE_CREATION_FAILED,INVOICE_EXPIRED,INVOICE_INVALID,INVOICE_NOT_FOUND,USER_CANCELLED,SYSTEM_CANCELLED,AMOUNT_MISMATCH,EXECUTION_FAILED" doc:"Why a FAILED PayIn failed. INVOICE_NOT_FOUND: the provider no longer knows the invoice; SYSTEM_CANCELLED: an operator cancelled its invoice creation."`
	CustomerID      uuid.UUID     `json:"customer_id"`
	Price           Money         `json:"price" doc:"The price as listed."`
	RateMinorPerBTC *int64        `json:"rate_minor_per_btc,omitempty" doc:"The exchange rate used for a fiat price: minor units (cents) per BTC."`
	RateSource      *string       `json:"rate_source,omitempty"`
	CostSats        int64         `json:"cost_sats" doc:"The price in sats: verbatim for SAT prices, else rounded up from the rate."`
	Parts           []PayInPart   `json:"parts" doc:"What custodial balances paid."`
	Invoice         *PayInInvoice `json:"invoice,omitempty"`
	LicenseID       *uuid.UUID    `json:"license_id,omitempty"`
	LicenseKey      *string       `json:"license_key,omitempty" doc:"The licence key, once PAID."`
	GenesisID       uuid.UUID     `json:"genesis_id" doc:"The first PayIn of this PayIn's chain of retries."`
	SuccessorID     *uuid.UUID    `json:"successor_id,omitempty" doc:"The retry that replaced this FAILED PayIn."`
	// Transitions, Payouts and Refunds are the PayIn's trail, shown to admins (payin-get-admin).
	Transitions    []PayInTransition `json:"transitions,omitempty"`
	Payouts        []Payout          `json:"payouts,omitempty"`
	Refunds        []Refund          `json:"refunds,omitempty"`
	RetryCount     int32             `json:"retry_count"`
	StateChangedAt time.Time         `json:"state_changed_at"`
	CreatedAt      time.Time         `json:"created_at"`
}

// PayInOutput is one PayIn.
type PayInOutput struct {
	Body PayIn
}

// PayInTransition is one state change of a PayIn.
type PayInTransition struct {
	From   *string   `json:"from,omitempty" doc:"Absent for the first state."`
	To     string    `json:"to"`
	Reason *string   `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Payout is what someone earned from a PayIn.
type Payout struct {
	ID           uuid.UUID  `json:"id"`
	Type         string     `json:"type" example:"tenant_revenue"`
	EarnerID     *uuid.UUID `json:"earner_customer_id,omitempty" doc:"Absent when the tenant earns it."`
	Asset        string     `json:"asset" enum:"sats,credits,reward_sats"`
	Amount       int64      `json:"amount"`
	BalanceAfter *int64     `json:"balance_after,omitempty"`
}

// Refund is what a failed PayIn gave back.
type Refund struct {
	Asset        string `json:"asset" enum:"credits,reward_sats"`
	Amount       int64  `json:"amount"`
	BalanceAfter int64  `json:"balance_after"`
}

// payInLedger adds a PayIn's transitions, payouts and refunds to its view (admins see the
// whole trail).
func (s *Server) payInLedger(ctx context.Context, p sql.PayIn, view *PayIn) error {
	db := s.conn(ctx)
	tenant, id := p.TenantID, p.ID
	transitions, err := s.queries.PayInTransitions(ctx, db, sql.PayInTransitionsParams{TenantID: tenant, PayInID: id})
	if err != nil {
		return fmt.Errorf("transitions of payin %s: %w", id, err)
	}
	payouts, err := s.queries.PayInPayouts(ctx, db, sql.PayInPayoutsParams{TenantID: tenant, PayInID: id})
	if err != nil {
		return fmt.Errorf("payouts of payin %s: %w", id, err)
	}
	refunds, err := s.queries.PayInRefunds(ctx, db, sql.PayInRefundsParams{TenantID: tenant, PayInID: id})
	if err != nil {
		return fmt.Errorf("refunds of payin %s: %w", id, err)
	}
	view.Transitions, view.Payouts, view.Refunds = []PayInTransition{}, []Payout{}, []Refund{}
	for _, t := range transitions {
		tr := PayInTransition{To: string(t.ToState), At: t.At}
		if t.FromState != nil {
			from := string(*t.FromState)
			tr.From = &from
		}
		if t.Reason != nil {
			reason := string(*t.Reason)
			tr.Reason = &reason
		}
		view.Transitions = append(view.Transitions, tr)
	}
	for _, o := range payouts {
		view.Payouts = append(view.Payouts, Payout{ID: o.ID, Type: string(o.Type), EarnerID: o.EarnerCustomerID, Asset: o.Asset, Amount: o.Amount, BalanceAfter: o.BalanceAfter})
	}
	for _, r := range refunds {
		view.Refunds = append(view.Refunds, Refund{Asset: string(r.Asset), Amount: r.Amount, BalanceAfter: r.BalanceAfter})
	}
	return nil
}

// payInOutput answers one PayIn with its view.
func (s *Server) payInOutput(ctx context.Context, p sql.PayIn) (*PayInOutput, error) {
	view, err := s.payInView(ctx, p)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &PayInOutput{Body: view}, nil
}

// payInView converts a PayIn to what the API shows (payInViews).
func (s *Server) payInView(ctx context.Context, p sql.PayIn) (PayIn, error) {
	views, err := s.payInViews(ctx, []sql.PayIn{p})
	if err != nil {
		return PayIn{}, err
	}
	return views[0], nil
}

// payInViews converts PayIns of one tenant to what the API shows: each row with its parts,
// invoice and licence key, all read by one query (PayInDetails) whatever their number.
func (s *Server) payInViews(ctx context.Context, payins []sql.PayIn) ([]PayIn, error) {
	if len(payins) == 0 {
		return []PayIn{}, nil
	}
	ids := make([]uuid.UUID, len(payins))
	for i, p := range payins {
		ids[i] = p.ID
	}
	rows, err := s.queries.PayInDetails(ctx, s.conn(ctx), sql.PayInDetailsParams{TenantID: payins[0].TenantID, IDs: ids})
	if err != nil {
		return nil, fmt.Errorf("details of %d payins: %w", len(ids), err)
	}
	details := make(map[uuid.UUID]sql.PayInDetailsRow, len(rows))
	for _, row := range rows {
		details[row.ID] = row
	}
	views := make([]PayIn, len(payins))
	for i, p := range payins {
		d, ok := details[p.ID]
		if !ok {
			return nil, fmt.Errorf("details of payin %s: %w", p.ID, core.ErrNotFound)
		}
		view := PayIn{
			ID: p.ID, Type: string(p.Type), State: string(p.State), CustomerID: p.CustomerID,
			Price: Money{Currency: string(p.PriceCurrency), Value: p.PriceValue}, RateMinorPerBTC: p.RateMinorPerBTC,
			RateSource: p.RateSource, CostSats: p.CostSats, LicenseID: p.LicenseID, LicenseKey: d.LicenseKey, GenesisID: p.GenesisID,
			SuccessorID: p.SuccessorID, RetryCount: p.RetryCount, StateChangedAt: p.StateChangedAt, CreatedAt: p.CreatedAt,
		}
		if p.FailureReason != nil {
			reason := string(*p.FailureReason)
			view.FailureReason = &reason
		}
		if err := json.Unmarshal(d.Parts, &view.Parts); err != nil {
			return nil, fmt.Errorf("parts of payin %s: %w", p.ID, err)
		}
		if d.InvoiceProvider != nil {
			view.Invoice = &PayInInvoice{
				Provider: *d.InvoiceProvider, InvoiceID: *d.InvoiceID, CheckoutURL: *d.InvoiceCheckoutURL,
				AmountSats: *d.InvoiceAmountSats, PaidSats: d.InvoicePaidSats, ExpiresAt: d.InvoiceExpiresAt,
			}
		}
		views[i] = view
	}
	return views, nil
}

// PurchaseInput buys a licence.
type PurchaseInput struct {
	Body struct {
		Tenant        string        `json:"tenant" minLength:"1" maxLength:"63" example:"acme" doc:"The seller's slug."`
		Policy        string        `json:"policy" pattern:"^[a-z0-9][a-z0-9._-]{0,99}$" example:"pro-yearly" doc:"The policy's slug."`
		CustomerID    *uuid.UUID    `json:"customer_id,omitempty" doc:"The buyer, by id; or customer_email."`
		CustomerEmail *string       `json:"customer_email,omitempty" maxLength:"320" example:"buyer@example.com"`
		AddonIDs      []uuid.UUID   `json:"addon_ids,omitempty" maxItems:"50"`
		Assets        UniqueStrings `json:"assets,omitempty" maxItems:"2" enum:"credits,reward_sats" doc:"Custodial balances to pay from first, in order. Needs the tenant's admin key: the seller's backend vouches for the buyer."`
	}
}

// PayInIDInput names one PayIn.
type PayInIDInput struct {
	ID uuid.UUID `path:"id"`
}

// PayInRetryInput retries a FAILED PayIn.
type PayInRetryInput struct {
	ID   uuid.UUID `path:"id"`
	Body *struct {
		Assets UniqueStrings `json:"assets,omitempty" maxItems:"2" enum:"credits,reward_sats" doc:"Custodial balances to pay from first, in order. Needs the tenant's admin key; without it the retry is paid by invoice alone."`
	}
}

// CreditGrantInput gives a customer credits.
type CreditGrantInput struct {
	ID   uuid.UUID `path:"id" doc:"The customer."`
	Body struct {
		Amount int64  `json:"amount" minimum:"1" maximum:"1000000000000" doc:"Credits to give, in sats (one credit is worth one sat)."`
		Reason string `json:"reason,omitempty" maxLength:"500" doc:"Why, for the audit log."`
	}
}

// CreditGrantOutput is the grant: its PayIn and the customer's credits after it.
type CreditGrantOutput struct {
	Body struct {
		PayIn        PayIn `json:"payin"`
		BalanceAfter int64 `json:"balance_after" doc:"The customer's credits balance after the grant."`
	}
}

// PayInStatisticsInput chooses the range and customer of statistics.
type PayInStatisticsInput struct {
	From       time.Time `query:"from" doc:"Start of the range, inclusive (RFC 3339); default: the beginning."`
	To         time.Time `query:"to" doc:"End of the range, exclusive (RFC 3339); default: now."`
	CustomerID string    `query:"customer_id" format:"uuid" doc:"One customer's statistics; default: the whole tenant's."`
}

// PayInSpent is what PayIns of one type PAID in the range cost, and what paid it.
type PayInSpent struct {
	Type        string `json:"type" enum:"license_purchase,subscription_renewal,tier_upgrade,credit_purchase,credit_grant"`
	PayIns      int64  `json:"payins"`
	CostSats    int64  `json:"cost_sats" doc:"credits + reward_sats + invoice_sats + granted_sats."`
	Credits     int64  `json:"credits" doc:"Sats paid from credits."`
	RewardSats  int64  `json:"reward_sats" doc:"Sats paid from reward sats."`
	InvoiceSats int64  `json:"invoice_sats" doc:"Sats paid by invoice (its amount; any overpayment is an overpay_spillover payout)."`
	GrantedSats int64  `json:"granted_sats" doc:"Sats funded by the tenant: credit grants."`
}

// PayOutEarned is what payouts of one type in one asset paid in the range.
type PayOutEarned struct {
	Type    string `json:"type" enum:"tenant_revenue,referral_reward,overpay_spillover,credit_purchase,credit_grant,underpayment_refund,late_payment_credit" doc:"underpayment_refund: what an underpaid invoice received, credited when its PayIn failed; late_payment_credit: money that reached the invoice of a PayIn already failed or paid, credited to the payer."`
	Asset   string `json:"asset" enum:"sats,credits,reward_sats"`
	PayOuts int64  `json:"payouts"`
	Amount  int64  `json:"amount"`
}

// PayInStatisticsOutput is spending and earning over a time range.
type PayInStatisticsOutput struct {
	Body struct {
		From       time.Time      `json:"from"`
		To         time.Time      `json:"to"`
		CustomerID *uuid.UUID     `json:"customer_id,omitempty"`
		Spent      []PayInSpent   `json:"spent" doc:"PayIns PAID in the range, by type."`
		Earned     []PayOutEarned `json:"earned" doc:"Payouts made in the range, by type and asset: the customer's earnings, or all of the tenant's payouts."`
	}
}

// PayInListInput filters a list of PayIns.
type PayInListInput struct {
	PageParams
	CustomerID string `query:"customer_id" format:"uuid"`
	State      string `query:"state" enum:"PENDING_INVOICE_CREATION,PENDING,PAID,FAILED"`
}

// PayInListOutput is a page of PayIns.
type PayInListOutput struct {
	Body Page[PayIn]
}

func (s *Server) registerPayIns() {
	huma.Register(s.api, optionalAdminOperation(buyerOperation(purchaseOperation, s.tenantOfSlug)), s.purchase)
	huma.Register(s.api, buyerOperation(payInGetOperation, s.tenantOfPayIn), s.payInGet)
	huma.Register(s.api, buyerOperation(payInCancelOperation, s.tenantOfPayIn), s.payInCancel)
	huma.Register(s.api, optionalAdminOperation(buyerOperation(payInRetryOperation, s.tenantOfPayIn)), s.payInRetry)
	huma.Register(s.api, adminOperation(creditGrantOperation), s.creditGrant)
	huma.Register(s.api, adminOperation(payInStatisticsOperation), s.payInStatistics)
	huma.Register(s.api, adminOperation(payInGetAdminOperation), s.payInGetAdmin)
	huma.Register(s.api, adminOperation(payInListOperation), s.payInList)
}

var payInTags = []string{"Payments"}

var purchaseOperation = huma.Operation{
	OperationID:   "purchase",
	Method:        http.MethodPost,
	Path:          "/v1/purchase",
	Summary:       "Buy a licence",
	Description:   purchaseDescription,
	Tags:          payInTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity},
}

// purchase creates a licence_purchase PayIn (purchasePayIn).
func (s *Server) purchase(ctx context.Context, in *PurchaseInput) (*PayInOutput, error) {
	payin, err := s.purchasePayIn(ctx, in)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return s.payInOutput(ctx, payin)
}

var payInGetOperation = huma.Operation{
	OperationID: "payin-get",
	Method:      http.MethodGet,
	Path:        "/v1/payins/{id}",
	Summary:     "Poll a PayIn",
	Description: "The PayIn id is the buyer's handle on the payment: poll until PENDING for the checkout URL, then until PAID for the licence key. A server with a read replica may answer from it, up to its staleness bound (TESSERA_READ_MAX_LAG, default 1 s) behind; a PayIn it does not have yet is read on the primary.",
	Tags:        payInTags,
	Errors:      []int{http.StatusNotFound},
}

// payInGet reads a PayIn by its id alone, the buyer's capability. It may read a replica
// (s.read): a PayIn the replica does not have yet is read again on the primary.
func (s *Server) payInGet(ctx context.Context, in *PayInIDInput) (*PayInOutput, error) {
	var view PayIn
	err := s.read(ctx, func(ctx context.Context) (bool, error) {
		payin, err := s.queries.PayInGetAnyTenant(ctx, s.conn(ctx), in.ID)
		if err != nil {
			return false, err
		}
		view, err = s.payInView(ctx, payin)
		return true, err
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &PayInOutput{Body: view}, nil
}

var payInCancelOperation = huma.Operation{
	OperationID: "payin-cancel",
	Method:      http.MethodPost,
	Path:        "/v1/payins/{id}/cancel",
	Summary:     "Cancel an unpaid PayIn",
	Description: "Fails a PayIn that is not PAID yet with USER_CANCELLED and refunds its custodial parts; its invoice is then marked invalid at the provider, and money that reaches it all the same is credited to the buyer as credits (payin.late_payment_credited). A PAID or FAILED PayIn is 409.",
	Tags:        payInTags,
	Errors:      []int{http.StatusNotFound, http.StatusConflict},
}

// payInCancel makes the buyer's core.PayInMoveCancel move.
func (s *Server) payInCancel(ctx context.Context, in *PayInIDInput) (*PayInOutput, error) {
	payin, err := s.queries.PayInGetAnyTenant(ctx, tx(ctx), in.ID)
	if err != nil {
		return nil, problem(ctx, err)
	}
	who := core.Actor{Type: core.ActorBuyer, ID: payin.CustomerID.String(), RequestID: requestInfoFrom(ctx).id}
	payin, err = core.PayInFail(ctx, tx(ctx), s.step(ctx, who), core.PayInFailParams{TenantID: payin.TenantID, ID: payin.ID, Move: core.PayInMoveCancel})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return s.payInOutput(ctx, payin)
}

var payInRetryOperation = huma.Operation{
	OperationID:   "payin-retry",
	Method:        http.MethodPost,
	Path:          "/v1/payins/{id}/retry",
	Summary:       "Retry a FAILED PayIn",
	Description:   payInRetryDescription,
	Tags:          payInTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

// payInRetry creates the successor of a FAILED PayIn (payInSuccessor).
func (s *Server) payInRetry(ctx context.Context, in *PayInRetryInput) (*PayInOutput, error) {
	payin, err := s.payInSuccessor(ctx, in)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return s.payInOutput(ctx, payin)
}

var creditGrantOperation = huma.Operation{
	OperationID:   "credit-grant",
	Method:        http.MethodPost,
	Path:          "/v1/admin/customers/{id}/credits",
	Summary:       "Give a customer credits",
	Description:   "Creates a credit_grant PayIn funded by the tenant (nothing is debited or invoiced), PAID at once: the customer's credits grow by amount, paid out as a credit_grant payout with the balance after. Audited as credit.grant; emits payin.paid.",
	Tags:          payInTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusNotFound, http.StatusUnprocessableEntity},
}

// creditGrant gives one of the tenant's customers credits (core.CreditGrant).
func (s *Server) creditGrant(ctx context.Context, in *CreditGrantInput) (*CreditGrantOutput, error) {
	if _, err := s.customer(ctx, in.ID); err != nil {
		return nil, problem(ctx, err)
	}
	payin, after, err := core.CreditGrant(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.CreditGrantParams{
		TenantID: tenantID(ctx), CustomerID: in.ID, Amount: in.Body.Amount, Reason: in.Body.Reason,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &CreditGrantOutput{}
	if out.Body.PayIn, err = s.payInView(ctx, payin); err != nil {
		return nil, problem(ctx, err)
	}
	out.Body.BalanceAfter = after
	return out, nil
}

var payInStatisticsOperation = huma.Operation{
	OperationID: "payin-statistics",
	Method:      http.MethodGet,
	Path:        "/v1/admin/payins/statistics",
	Summary:     "Spending and earning over a time range",
	Description: "Spent: PayIns PAID in [from, to), by type, with the sats paid from credits, reward sats, invoices and (credit grants) the tenant. " +
		"Earned: payouts made in [from, to), by type and asset. For one customer with customer_id, else for the whole tenant.",
	Tags:   payInTags,
	Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
}

// payInStatistics sums what was spent and earned in a time range.
func (s *Server) payInStatistics(ctx context.Context, in *PayInStatisticsInput) (*PayInStatisticsOutput, error) {
	out := &PayInStatisticsOutput{}
	out.Body.From, out.Body.To, out.Body.CustomerID = in.From, in.To, optionalUUID(in.CustomerID)
	if out.Body.To.IsZero() {
		out.Body.To = s.now(ctx)
	}
	if !out.Body.From.Before(out.Body.To) {
		return nil, invalid("query.from", "from must be before to", in.From)
	}
	if out.Body.CustomerID != nil {
		if _, err := s.customer(ctx, *out.Body.CustomerID); err != nil {
			return nil, problem(ctx, err)
		}
	}
	db := s.conn(ctx)
	spent, err := s.queries.PayInStatisticsSpent(ctx, db, sql.PayInStatisticsSpentParams{
		TenantID: tenantID(ctx), CustomerID: out.Body.CustomerID, FromTime: out.Body.From, ToTime: out.Body.To,
	})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("spent statistics: %w", err))
	}
	earned, err := s.queries.PayInStatisticsEarned(ctx, db, sql.PayInStatisticsEarnedParams{
		TenantID: tenantID(ctx), CustomerID: out.Body.CustomerID, FromTime: out.Body.From, ToTime: out.Body.To,
	})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("earned statistics: %w", err))
	}
	out.Body.Spent, out.Body.Earned = make([]PayInSpent, len(spent)), make([]PayOutEarned, len(earned))
	for i, r := range spent {
		out.Body.Spent[i] = PayInSpent{Type: r.Type, PayIns: r.PayIns, CostSats: r.CostSats, Credits: r.Credits,
			RewardSats: r.RewardSats, InvoiceSats: r.InvoiceSats, GrantedSats: r.GrantedSats}
	}
	for i, r := range earned {
		out.Body.Earned[i] = PayOutEarned{Type: r.Type, Asset: r.Asset, PayOuts: r.Payouts, Amount: r.Amount}
	}
	return out, nil
}

var payInGetAdminOperation = huma.Operation{
	OperationID: "payin-get-admin",
	Method:      http.MethodGet,
	Path:        "/v1/admin/payins/{id}",
	Summary:     "Read a PayIn",
	Description: "Any PayIn of the tenant. 404 when the tenant has no such PayIn.",
	Tags:        payInTags,
	Errors:      []int{http.StatusNotFound},
}

// payInGetAdmin reads one of the tenant's PayIns with its trail (payInLedger).
func (s *Server) payInGetAdmin(ctx context.Context, in *PayInIDInput) (*PayInOutput, error) {
	payin, err := s.queries.PayInGet(ctx, s.conn(ctx), sql.PayInGetParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	out, err := s.payInOutput(ctx, payin)
	if err != nil {
		return nil, err
	}
	if err := s.payInLedger(ctx, payin, &out.Body); err != nil {
		return nil, problem(ctx, err)
	}
	return out, nil
}

var payInListOperation = huma.Operation{
	OperationID: "payin-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/payins",
	Summary:     "List PayIns, newest first",
	Tags:        payInTags,
}

// payInList reads a page of the tenant's PayIns.
func (s *Server) payInList(ctx context.Context, in *PayInListInput) (*PayInListOutput, error) {
	after, fetch := in.cursor()
	params := sql.PayInListParams{TenantID: tenantID(ctx), After: after, RowLimit: fetch, CustomerID: optionalUUID(in.CustomerID)}
	if in.State != "" {
		params.State = &in.State
	}
	rows, err := s.queries.PayInList(ctx, s.conn(ctx), params)
	if err != nil {
		return nil, problem(ctx, err)
	}
	views, err := s.payInViews(ctx, rows)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &PayInListOutput{Body: page(views, fetch, func(v PayIn) PayIn { return v }, func(v PayIn) uuid.UUID { return v.ID })}, nil
}

const purchaseDescription = "Creates a licence_purchase PayIn for a policy at its listed price (fiat prices are converted to sats " +
	"at the current rate, rounded up to a whole sat, and the rate is stored). Custodial balances named in `assets` pay first " +
	"(that needs the tenant's admin key); fully covered, the PayIn is PAID at once and the licence issued. Otherwise it is " +
	"PENDING_INVOICE_CREATION while a job creates the provider invoice for the rest: poll GET /v1/payins/{id} for the checkout " +
	"URL. The licence (with its subscription, for a recurring policy) is issued when the invoice is paid."

const payInRetryDescription = "Creates the successor of a FAILED PayIn: same type, customer, price (a fiat price re-quoted at the " +
	"current rate), policy and add-ons, in the same chain (genesis_id) with retry_count + 1, paid by invoice unless the " +
	"tenant's admin key is given with `assets`. The PayIn id is the buyer's capability, as for cancel. A PayIn that is not " +
	"FAILED, or was already retried, is 409: of concurrent retries of one PayIn exactly one succeeds."

// payInSuccessor resolves a retry's PayIn and rate and retries it (core.PayInRetry).
func (s *Server) payInSuccessor(ctx context.Context, in *PayInRetryInput) (sql.PayIn, error) {
	db := tx(ctx)
	failed, err := s.queries.PayInGetAnyTenant(ctx, db, in.ID)
	if err != nil {
		return sql.PayIn{}, err
	}
	p, authenticated := principalFrom(ctx)
	params := core.PayInRetryParams{Failed: failed}
	if in.Body != nil {
		for _, a := range in.Body.Assets.Items {
			params.Assets = append(params.Assets, sql.Asset(a))
		}
	}
	switch {
	case authenticated && p.tenantID != failed.TenantID:
		return sql.PayIn{}, newProblem(CodeNotFound, fmt.Sprintf("no payin %s", in.ID))
	case !authenticated && len(params.Assets) > 0:
		return sql.PayIn{}, newProblem(CodeCustodialNeedsAdminKey, "paying from custodial balances needs the tenant's API key")
	}
	// A PayIn that cannot be retried needs no rate: core.PayInRetry's guarded claim refuses it.
	if failed.State == sql.PayinStateFAILED && failed.SuccessorID == nil && failed.Type != sql.PayinTypeTierUpgrade {
		if params.Rate, err = s.rate(ctx, failed.PriceCurrency); err != nil {
			return sql.PayIn{}, err
		}
	}
	who := core.Actor{Type: core.ActorBuyer, ID: failed.CustomerID.String(), RequestID: requestInfoFrom(ctx).id}
	if authenticated {
		who = actor(ctx)
	}
	return core.PayInRetry(ctx, db, s.step(ctx, who), params)
}

// purchasePayIn resolves a purchase's tenant, policy and customer and creates its PayIn.
func (s *Server) purchasePayIn(ctx context.Context, in *PurchaseInput) (sql.PayIn, error) {
	db := tx(ctx)
	tenant, err := s.queries.TenantGetBySlug(ctx, db, in.Body.Tenant)
	if err != nil {
		return sql.PayIn{}, fmt.Errorf("tenant %q: %w", in.Body.Tenant, err)
	}
	p, authenticated := principalFrom(ctx)
	switch {
	case authenticated && p.tenantID != tenant.ID:
		return sql.PayIn{}, newProblem(CodeOtherTenantKey, "the API key belongs to another tenant")
	case !authenticated && len(in.Body.Assets.Items) > 0:
		return sql.PayIn{}, newProblem(CodeCustodialNeedsAdminKey, "paying from custodial balances needs the tenant's API key")
	case (in.Body.CustomerID == nil) == (in.Body.CustomerEmail == nil):
		return sql.PayIn{}, newProblem(CodeInvalid, "give exactly one of customer_id and customer_email")
	}
	// Only a missing (or archived) policy or customer is the buyer's mistake; any other
	// failure of these reads (a dropped connection, a timeout) is the server's, and says so.
	policy, err := s.queries.PolicyGetBySlug(ctx, db, sql.PolicyGetBySlugParams{TenantID: tenant.ID, Slug: in.Body.Policy})
	if errors.Is(err, core.ErrNotFound) || err == nil && policy.ArchivedAt != nil {
		return sql.PayIn{}, newProblem(CodeNotFound, fmt.Sprintf("tenant %q sells no policy %q", tenant.Slug, in.Body.Policy))
	} else if err != nil {
		return sql.PayIn{}, fmt.Errorf("read policy %q: %w", in.Body.Policy, err)
	}
	var customer sql.Customer
	if in.Body.CustomerID != nil {
		customer, err = s.queries.CustomerGet(ctx, db, sql.CustomerGetParams{TenantID: tenant.ID, ID: *in.Body.CustomerID})
	} else {
		customer, err = s.queries.CustomerGetByEmail(ctx, db, sql.CustomerGetByEmailParams{TenantID: tenant.ID, Email: *in.Body.CustomerEmail})
	}
	if errors.Is(err, core.ErrNotFound) {
		return sql.PayIn{}, newProblem(CodeUnknownCustomer, "no such customer of "+tenant.Slug+"; create customers with the admin API")
	} else if err != nil {
		return sql.PayIn{}, fmt.Errorf("read customer: %w", err)
	}
	params := core.PayInCreateParams{
		TenantID: tenant.ID, CustomerID: customer.ID, Type: sql.PayinTypeLicensePurchase, PriceCurrency: policy.ListedCurrency,
		PriceValue: policy.ListedValue, PolicyID: &policy.ID, AddonIDs: in.Body.AddonIDs,
	}
	for _, a := range in.Body.Assets.Items {
		params.Assets = append(params.Assets, sql.Asset(a))
	}
	if params.Rate, err = s.rate(ctx, policy.ListedCurrency); err != nil {
		return sql.PayIn{}, err
	}
	who := core.Actor{Type: core.ActorBuyer, ID: customer.ID.String(), RequestID: requestInfoFrom(ctx).id}
	if authenticated {
		who = actor(ctx)
	}
	return core.PayInCreate(ctx, db, s.step(ctx, who), params)
}

// rate is the current exchange rate of a fiat currency (nil for SAT, charged verbatim); an
// unavailable rate is 503.
func (s *Server) rate(ctx context.Context, currency sql.Currency) (*payment.Rate, error) {
	if currency == sql.CurrencySAT {
		return nil, nil
	}
	rate, err := s.cfg.Rates.Rate(ctx, string(currency))
	if err != nil {
		requestInfoFrom(ctx).logger().WarnContext(ctx, "exchange rate unavailable", "currency", currency, "error", err)
		return nil, newProblem(CodeRateUnavailable, "the exchange rate is unavailable; retry shortly")
	}
	return &rate, nil
}
