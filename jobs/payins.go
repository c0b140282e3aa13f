package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// payInCreateInvoiceRetries is the wait before each retry of invoice creation: about an
// hour in all over jobargs.PayInCreateInvoiceMaxAttempts attempts.
var payInCreateInvoiceRetries = []time.Duration{
	10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 40 * time.Minute,
}

// PayInCreateInvoiceWorker creates the provider invoice for the rest of a PayIn. The call to
// the provider happens outside any transaction; recording the invoice, moving the PayIn to
// PENDING and completing the job are one transaction, and a retry reuses an invoice an
// earlier attempt created but did not record (invoice). When the provider keeps failing, the
// last attempt fails the PayIn with INVOICE_CREATION_FAILED and refunds its custodial parts.
type PayInCreateInvoiceWorker struct {
	river.WorkerDefaults[jobargs.PayInCreateInvoice]
	cfg Config
}

// Timeout bounds one attempt: Config.JobTimeout.
func (w *PayInCreateInvoiceWorker) Timeout(*river.Job[jobargs.PayInCreateInvoice]) time.Duration {
	return w.cfg.jobTimeout()
}

// NextRetry backs off by payInCreateInvoiceRetries.
func (w *PayInCreateInvoiceWorker) NextRetry(job *river.Job[jobargs.PayInCreateInvoice]) time.Time {
	return w.cfg.Clock.Now().Add(payInCreateInvoiceRetries[min(job.Attempt, len(payInCreateInvoiceRetries))-1])
}

// Work creates the invoice, or fails the PayIn after the last attempt.
func (w *PayInCreateInvoiceWorker) Work(ctx context.Context, job *river.Job[jobargs.PayInCreateInvoice]) error {
	payin, err := queries.PayInGet(ctx, w.cfg.DB, sql.PayInGetParams{TenantID: job.Args.TenantID, ID: job.Args.PayInID})
	if err != nil {
		return fmt.Errorf("payin %s: %w", job.Args.PayInID, core.DBError(err))
	}
	step := w.cfg.step(ctx, job.JobRow)
	if payin.State != sql.PayinStatePENDINGINVOICECREATION {
		return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return complete(ctx, tx, job) })
	}
	parts, err := queries.PayInParts(ctx, w.cfg.DB, sql.PayInPartsParams{TenantID: payin.TenantID, PayinID: payin.ID})
	if err != nil {
		return fmt.Errorf("parts of payin %s: %w", payin.ID, err)
	}
	remainder := payin.CostSats
	for _, p := range parts {
		remainder -= p.Amount
	}
	invoice, createErr := w.invoice(ctx, job, payin, remainder)
	if createErr != nil && job.Attempt < job.MaxAttempts {
		return fmt.Errorf("create invoice for payin %s: %w", payin.ID, createErr)
	}
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		if createErr != nil {
			w.cfg.Log.WarnContext(ctx, "invoice creation failed for good", "payin", payin.ID, "error", createErr)
			_, err = core.PayInFail(ctx, tx, step, payin.TenantID, payin.ID,
				[]sql.PayInState{sql.PayinStatePENDINGINVOICECREATION}, sql.PayinFailureReasonINVOICECREATIONFAILED, 0)
		} else {
			_, _, err = core.PayInInvoiceCreated(ctx, tx, step, payin, w.cfg.Payments.Name(), invoice)
		}
		if err != nil && !errors.Is(err, core.ErrConflict) { // a conflict: the buyer cancelled meanwhile
			return err
		}
		return complete(ctx, tx, job)
	})
}

// invoice creates the provider invoice for remainder sats of payin — or, on a retry, reuses
// the one an earlier attempt created but could not record (a crash or a failed commit after
// the provider answered), found by the PayIn's id as its order id: one payable invoice per
// PayIn. A found invoice that expired, was invalidated or is for another amount is not
// reused.
func (w *PayInCreateInvoiceWorker) invoice(ctx context.Context, job *river.Job[jobargs.PayInCreateInvoice], payin sql.PayIn, remainder int64) (payment.Invoice, error) {
	if job.Attempt > 1 {
		found, err := w.cfg.Payments.FindInvoice(ctx, payin.ID.String())
		switch {
		case err != nil && !errors.Is(err, payment.ErrNotFound):
			return payment.Invoice{}, fmt.Errorf("find an earlier invoice for payin %s: %w", payin.ID, err)
		case err == nil && found.AmountSats == remainder &&
			slices.Contains([]payment.InvoiceStatus{payment.InvoiceNew, payment.InvoiceProcessing, payment.InvoiceSettled}, found.Status):
			w.cfg.Log.InfoContext(ctx, "reusing the invoice an earlier attempt created", "payin", payin.ID, "invoice", found.ID)
			return found, nil
		}
	}
	return w.cfg.Payments.CreateInvoice(ctx, payment.InvoiceRequest{
		OrderID: payin.ID.String(), AmountSats: remainder,
		Metadata: map[string]string{"tenantId": payin.TenantID.String(), "payinType": string(payin.Type)},
	})
}

// PayInSettleWorker re-confirms an invoice with its provider and settles its PayIn by what
// the provider says, whatever the webhook claimed:
//   - settled with at least the amount: PAID, with the surplus paid back as credits;
//   - settled with less: FAILED with AMOUNT_MISMATCH, custodial parts refunded and the sats
//     received credited;
//   - expired or invalid: FAILED with INVOICE_EXPIRED or INVOICE_INVALID, likewise;
//   - still open: nothing (a later webhook or the reconcile sweep asks again).
//
// An invoice the database does not know yet (a webhook faster than the commit of the
// invoice's row) is an error, so River retries. A PayIn no longer PENDING is left alone: a
// second settle changes nothing.
type PayInSettleWorker struct {
	river.WorkerDefaults[jobargs.PayInSettle]
	cfg Config
}

// Timeout bounds one attempt: Config.JobTimeout.
func (w *PayInSettleWorker) Timeout(*river.Job[jobargs.PayInSettle]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work settles the invoice's PayIn.
func (w *PayInSettleWorker) Work(ctx context.Context, job *river.Job[jobargs.PayInSettle]) error {
	invoice, err := queries.PayInInvoiceFind(ctx, w.cfg.DB, sql.PayInInvoiceFindParams{Provider: job.Args.Provider, ProviderInvoiceID: job.Args.InvoiceID})
	if err != nil {
		return fmt.Errorf("invoice %s/%s: %w", job.Args.Provider, job.Args.InvoiceID, core.DBError(err))
	}
	remote, err := w.cfg.Payments.GetInvoice(ctx, invoice.ProviderInvoiceID)
	if err != nil {
		return fmt.Errorf("re-confirm invoice %s: %w", invoice.ProviderInvoiceID, err)
	}
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		payin, err := queries.PayInGet(ctx, tx, sql.PayInGetParams{TenantID: invoice.TenantID, ID: invoice.PayinID})
		if err != nil {
			return fmt.Errorf("payin %s: %w", invoice.PayinID, core.DBError(err))
		}
		if err := w.settle(ctx, tx, w.cfg.step(ctx, job.JobRow), payin, invoice, remote); err != nil && !errors.Is(err, core.ErrConflict) {
			return err // a conflict: another settle got there first
		}
		return complete(ctx, tx, job)
	})
}

func (w *PayInSettleWorker) settle(ctx context.Context, tx pgx.Tx, st core.Step, payin sql.PayIn, invoice sql.PayInInvoice, remote payment.Invoice) error {
	pending := []sql.PayInState{sql.PayinStatePENDING}
	if payin.State != sql.PayinStatePENDING {
		return nil
	}
	var reason sql.PayInFailureReason
	switch remote.Status {
	case payment.InvoiceSettled:
		if remote.PaidSats >= invoice.AmountSats {
			if err := w.closeInvoice(ctx, tx, st, invoice, remote.PaidSats, true); err != nil {
				return err
			}
			_, err := core.PayInPaid(ctx, tx, st, payin, pending, remote.PaidSats-invoice.AmountSats)
			return err
		}
		reason = sql.PayinFailureReasonAMOUNTMISMATCH
	case payment.InvoiceExpired:
		reason = sql.PayinFailureReasonINVOICEEXPIRED
	case payment.InvoiceInvalid:
		reason = sql.PayinFailureReasonINVOICEINVALID
	default:
		return nil
	}
	if err := w.closeInvoice(ctx, tx, st, invoice, remote.PaidSats, false); err != nil {
		return err
	}
	_, err := core.PayInFail(ctx, tx, st, payin.TenantID, payin.ID, pending, reason, remote.PaidSats)
	return err
}

func (w *PayInSettleWorker) closeInvoice(ctx context.Context, tx pgx.Tx, st core.Step, invoice sql.PayInInvoice, paid int64, settled bool) error {
	err := queries.PayInInvoiceClose(ctx, tx, sql.PayInInvoiceCloseParams{
		TenantID: invoice.TenantID, PayinID: invoice.PayinID, PaidSats: &paid, Settled: settled, Now: st.Now,
	})
	if err != nil {
		return fmt.Errorf("close invoice %s: %w", invoice.ProviderInvoiceID, err)
	}
	return nil
}

// payInReconcileAfter is how long a PayIn stays PENDING before the reconcile sweep asks the
// provider about it, and payInReconcileBatch how many it asks about per sweep.
const (
	payInReconcileAfter = 10 * time.Minute
	payInReconcileBatch = 500
)

// PayInReconcileSweepWorker enqueues a payin.settle for every PayIn left PENDING longer than
// payInReconcileAfter, across tenants: the provider is asked again in case its webhook never
// came. Settles of invoices still open change nothing.
type PayInReconcileSweepWorker struct {
	river.WorkerDefaults[jobargs.PayInReconcileSweep]
	cfg Config
}

// Timeout bounds one sweep: Config.JobTimeout.
func (w *PayInReconcileSweepWorker) Timeout(*river.Job[jobargs.PayInReconcileSweep]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work enqueues the settles and completes the job in one transaction.
func (w *PayInReconcileSweepWorker) Work(ctx context.Context, job *river.Job[jobargs.PayInReconcileSweep]) error {
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		due, err := queries.PayInListPendingAllTenants(ctx, tx, sql.PayInListPendingAllTenantsParams{
			Before: w.cfg.Clock.Now().Add(-payInReconcileAfter), Batch: payInReconcileBatch,
		})
		if err != nil {
			return fmt.Errorf("list pending payins: %w", err)
		}
		params := make([]river.InsertManyParams, len(due))
		for i, d := range due {
			params[i] = river.InsertManyParams{Args: jobargs.PayInSettle{Provider: d.Provider, InvoiceID: d.ProviderInvoiceID}}
		}
		if len(params) > 0 {
			if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertManyTx(ctx, tx, params); err != nil {
				return fmt.Errorf("enqueue settles: %w", err)
			}
		}
		return complete(ctx, tx, job)
	})
}
