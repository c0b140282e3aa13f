package jobargs

import (
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
)

// PayInCreateInvoiceMaxAttempts is how many times invoice creation is tried (with backoff,
// about an hour in all, see jobs.PayInCreateInvoiceWorker.NextRetry) before the PayIn fails
// with INVOICE_CREATION_FAILED and its custodial parts are refunded.
const PayInCreateInvoiceMaxAttempts = 8

// PayInCreateInvoice creates the provider invoice for the rest of a PayIn that custodial
// balances did not cover.
type PayInCreateInvoice struct {
	TenantID uuid.UUID `json:"tenant_id"`
	PayInID  uuid.UUID `json:"payin_id"`
}

// Kind is the job kind River UI shows.
func (PayInCreateInvoice) Kind() string { return "payin.create_invoice" }

// InsertOpts gives invoice creation its attempt budget; one job per PayIn.
func (PayInCreateInvoice) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: PayInCreateInvoiceMaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// PayInSettle re-confirms a provider invoice with its provider and settles or fails its
// PayIn by what the provider says. Webhooks and the reconcile sweep enqueue it. It names the
// invoice as the provider does, because a webhook can arrive before the invoice's row is
// committed: the job then retries until it is.
type PayInSettle struct {
	Provider  string `json:"provider"`
	InvoiceID string `json:"invoice_id"`
}

// Kind is the job kind River UI shows.
func (PayInSettle) Kind() string { return "payin.settle" }

// InsertOpts makes duplicate webhooks for one invoice, arriving together, one settle job.
func (PayInSettle) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: time.Minute}}
}

// PayInReconcileSweep asks the provider about PENDING PayIns whose webhook never came, by
// enqueueing a payin.settle for each.
type PayInReconcileSweep struct{}

// Kind is the job kind River UI shows.
func (PayInReconcileSweep) Kind() string { return "payin.reconcile_sweep" }
