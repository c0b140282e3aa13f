package jobargs

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// PayInCreateInvoiceMaxAttempts is how many times invoice creation is tried (with backoff,
// about an hour in all, see jobs.PayInCreateInvoiceWorker.NextRetry) before the PayIn fails
// with INVOICE_CREATION_FAILED and its custodial parts are refunded.
const PayInCreateInvoiceMaxAttempts = 8

// PayInCreateInvoice creates the provider invoice for the rest of a PayIn that custodial
// balances did not cover. Retry says an earlier job may have created the invoice without
// recording it (a payin.create_invoices batch handing the PayIn over, a lost job enqueued
// again): the worker looks for it at the provider before creating one, as on a retry. The
// job is unique by the PayIn alone.
type PayInCreateInvoice struct {
	TenantID uuid.UUID `json:"tenant_id" river:"unique"`
	PayInID  uuid.UUID `json:"payin_id" river:"unique"`
	Retry    bool      `json:"retry,omitempty"`
}

// Kind is the job kind River UI shows.
func (PayInCreateInvoice) Kind() string { return "payin.create_invoice" }

// Tenant is the tenant the job belongs to (TenantJob).
func (a PayInCreateInvoice) Tenant() uuid.UUID { return a.TenantID }

// Hooks tags the job with its tenant as it is inserted (TenantJob).
func (PayInCreateInvoice) Hooks() []rivertype.Hook { return tenantHooks }

// InsertOpts gives invoice creation its attempt budget; one unfinished job per PayIn, so
// that the reconcile sweep can enqueue again the job of a PayIn whose job was lost.
func (PayInCreateInvoice) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: PayInCreateInvoiceMaxAttempts, UniqueOpts: uniqueWhileUnfinished()}
}

// PayInRef names PayIn PayInID of tenant TenantID.
type PayInRef struct {
	TenantID uuid.UUID `json:"tenant_id"`
	PayInID  uuid.UUID `json:"payin_id"`
}

// PayInCreateInvoices creates the provider invoices of a batch of PayIns, across tenants
// (the renewal sweep's batch enqueues one): the PayIns it could not invoice and record
// itself it hands over to a payin.create_invoice job each (with Retry).
type PayInCreateInvoices struct {
	PayIns []PayInRef `json:"payins"`
}

// Kind is the job kind River UI shows.
func (PayInCreateInvoices) Kind() string { return "payin.create_invoices" }

// InsertOpts gives a batch the attempt budget of one PayIn's invoice creation.
func (PayInCreateInvoices) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: PayInCreateInvoiceMaxAttempts}
}

// PayInSettle re-confirms a provider invoice with its provider and settles or fails its
// PayIn by what the provider says, or credits money that reached it after its PayIn failed
// or was paid. A webhook whose own settle could not be done (the provider unreachable, the
// invoice's row not committed yet, ...), the invalidation of an invoice and the reconcile
// sweep enqueue it.
// It names the invoice as the provider does, because a webhook can arrive before the
// invoice's row is committed: the job then retries until it is.
type PayInSettle struct {
	Provider  string `json:"provider"`
	InvoiceID string `json:"invoice_id"`
	// Trigger says what asked for the re-confirmation: the provider webhook delivery's id,
	// PayInSettleAfterInvalidation, or empty for the reconcile sweep.
	Trigger string `json:"trigger,omitempty"`
}

// PayInSettleAfterInvalidation is the Trigger of the settle a payin.invalidate_invoice job
// enqueues, to credit money that reached the invoice before it became invalid.
const PayInSettleAfterInvalidation = "invalidation"

// Kind is the job kind River UI shows.
func (PayInSettle) Kind() string { return "payin.settle" }

// InsertOpts makes settles unique by invoice and trigger among unfinished jobs: every
// recorded webhook delivery gets its own settle (a delivery that arrives while another's
// settle runs is never swallowed by it), while the reconcile sweep enqueues no second settle
// for an invoice whose sweep settle has not run yet.
func (PayInSettle) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: uniqueWhileUnfinished()}
}

// PayInInvalidateInvoice makes the provider invoice of a FAILED PayIn unpayable (BTCPay: marks
// it Invalid), then has it re-confirmed (payin.settle), so that money that reached it before
// is credited to the payer. PayInFail enqueues it in the transaction that fails the PayIn;
// the reconcile sweep enqueues it again when it was lost, deleted, cancelled or discarded.
type PayInInvalidateInvoice struct {
	TenantID uuid.UUID `json:"tenant_id"`
	PayInID  uuid.UUID `json:"payin_id"`
}

// Kind is the job kind River UI shows.
func (PayInInvalidateInvoice) Kind() string { return "payin.invalidate_invoice" }

// Tenant is the tenant the job belongs to (TenantJob).
func (a PayInInvalidateInvoice) Tenant() uuid.UUID { return a.TenantID }

// Hooks tags the job with its tenant as it is inserted (TenantJob).
func (PayInInvalidateInvoice) Hooks() []rivertype.Hook { return tenantHooks }

// InsertOpts makes the job unique by PayIn among unfinished jobs.
func (PayInInvalidateInvoice) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: uniqueWhileUnfinished()}
}

// PayInReconcileSweep asks the provider about PENDING PayIns whose webhook never came, by
// enqueueing a payin.settle for each, and heals PayIns whose job is gone: it enqueues again
// the lost payin.create_invoice and payin.invalidate_invoice jobs, and fails with
// SYSTEM_CANCELLED a PayIn whose invoice creation an operator cancelled.
type PayInReconcileSweep struct{}

// Kind is the job kind River UI shows.
func (PayInReconcileSweep) Kind() string { return "payin.reconcile_sweep" }
