package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
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
// PENDING and completing the job are one transaction, and a retry — or a job enqueued with
// Retry, taking over from a batch or a lost job — reuses an invoice an earlier attempt
// created but did not record (createInvoice). When the provider keeps failing, the
// last attempt fails the PayIn with INVOICE_CREATION_FAILED and refunds its custodial parts.
// A PayIn that failed meanwhile (the buyer cancelled) keeps no payable invoice: one the
// provider created for it anyway — by this attempt or a lost earlier one — is recorded on
// the FAILED PayIn and invalidated (core.PayInInvoiceAbandoned), so money paid to it is
// credited.
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
	rows, err := queries.PayInForInvoiceMany(ctx, w.cfg.DB, sql.PayInForInvoiceManyParams{
		TenantIds: []uuid.UUID{job.Args.TenantID}, IDs: []uuid.UUID{job.Args.PayInID},
	})
	if err == nil && len(rows) == 0 {
		err = core.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("payin %s: %w", job.Args.PayInID, err)
	}
	row := rows[0]
	payin, invoiceSats, step := row.PayIn, row.InvoiceSats, w.cfg.tenantStepAt(ctx, job.JobRow, row.ClockAt)
	switch payin.State {
	case sql.PayinStateFAILED:
		return w.abandoned(ctx, job, step, payin)
	case sql.PayinStatePENDINGINVOICECREATION:
	default:
		return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return complete(ctx, tx, job) })
	}
	invoice, createErr := createInvoice(ctx, w.cfg, job.Attempt > 1 || job.Args.Retry, payin, invoiceSats)
	if createErr != nil && job.Attempt < job.MaxAttempts {
		return fmt.Errorf("create invoice for payin %s: %w", payin.ID, createErr)
	}
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		payin, err := queries.PayInLock(ctx, tx, sql.PayInLockParams{TenantID: payin.TenantID, ID: payin.ID})
		if err != nil {
			return fmt.Errorf("lock payin %s: %w", job.Args.PayInID, err)
		}
		switch {
		case payin.State == sql.PayinStateFAILED && createErr == nil: // the buyer cancelled while BTCPay invoiced
			err = recordAbandoned(ctx, w.cfg, tx, step, payin, invoice)
		case payin.State != sql.PayinStatePENDINGINVOICECREATION:
		case createErr != nil:
			w.cfg.Log.WarnContext(ctx, "invoice creation failed for good", "payin", payin.ID, "error", createErr)
			_, err = core.PayInFail(ctx, tx, step, core.PayInFailParams{TenantID: payin.TenantID, ID: payin.ID, Move: core.PayInMoveFailInvoiceCreation})
		default:
			_, _, err = core.PayInInvoiceCreated(ctx, tx, step, core.PayInInvoiceParams{PayIn: payin, Provider: w.cfg.Payments.Name(), Invoice: invoice})
		}
		if err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}

// abandoned handles the job of a PayIn that failed before its invoice was recorded: an
// invoice the provider created for it all the same (an earlier attempt that crashed after
// the provider answered) is found by the PayIn's id and recorded and invalidated.
func (w *PayInCreateInvoiceWorker) abandoned(ctx context.Context, job *river.Job[jobargs.PayInCreateInvoice], step core.Step, payin sql.PayIn) error {
	_, err := queries.PayInInvoiceGet(ctx, w.cfg.DB, sql.PayInInvoiceGetParams{TenantID: payin.TenantID, PayInID: payin.ID})
	switch {
	case err == nil:
		return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return complete(ctx, tx, job) })
	case !errors.Is(err, core.ErrNotFound):
		return fmt.Errorf("invoice of payin %s: %w", payin.ID, err)
	}
	found, err := w.cfg.Payments.FindInvoice(ctx, payin.ID.String())
	if err != nil && !errors.Is(err, payment.ErrNotFound) {
		return fmt.Errorf("find an invoice of failed payin %s: %w", payin.ID, err)
	}
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		if err == nil {
			if err := recordAbandoned(ctx, w.cfg, tx, step, payin, found); err != nil {
				return err
			}
		}
		return complete(ctx, tx, job)
	})
}

// recordAbandoned records invoice on FAILED payin and enqueues its invalidation, unless the
// PayIn has its invoice recorded already.
func recordAbandoned(ctx context.Context, cfg Config, tx pgx.Tx, step core.Step, payin sql.PayIn, invoice payment.Invoice) error {
	_, err := queries.PayInInvoiceGet(ctx, tx, sql.PayInInvoiceGetParams{TenantID: payin.TenantID, PayInID: payin.ID})
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, core.ErrNotFound):
		return fmt.Errorf("invoice of payin %s: %w", payin.ID, err)
	}
	cfg.Log.InfoContext(ctx, "invoice of a failed payin recorded for invalidation", "payin", payin.ID, "invoice", invoice.ID)
	return core.PayInInvoiceAbandoned(ctx, tx, step, core.PayInInvoiceParams{PayIn: payin, Provider: cfg.Payments.Name(), Invoice: invoice})
}

// createInvoice creates the provider invoice for invoiceSats of payin — or, with find (a
// retry, or a job that took over from one that may have reached the provider), reuses the
// one an earlier attempt created but could not record (a crash or a failed commit after the
// provider answered), found by the PayIn's id as its order id: one payable invoice per PayIn.
// A found invoice that expired, was invalidated or is for another amount is not reused.
func createInvoice(ctx context.Context, cfg Config, find bool, payin sql.PayIn, invoiceSats int64) (payment.Invoice, error) {
	if find {
		found, err := cfg.Payments.FindInvoice(ctx, payin.ID.String())
		switch {
		case err != nil && !errors.Is(err, payment.ErrNotFound):
			return payment.Invoice{}, fmt.Errorf("find an earlier invoice for payin %s: %w", payin.ID, err)
		case err == nil && found.AmountSats == invoiceSats &&
			slices.Contains([]payment.InvoiceStatus{payment.InvoiceNew, payment.InvoiceProcessing, payment.InvoiceSettled}, found.Status):
			cfg.Log.InfoContext(ctx, "reusing the invoice an earlier attempt created", "payin", payin.ID, "invoice", found.ID)
			return found, nil
		}
	}
	return cfg.Payments.CreateInvoice(ctx, payment.InvoiceRequest{
		OrderID: payin.ID.String(), AmountSats: invoiceSats,
		Metadata: map[string]string{"tenantId": payin.TenantID.String(), "payinType": string(payin.Type)},
	})
}

// invoiceConcurrency is how many provider calls a payin.create_invoices job makes at once.
const invoiceConcurrency = 8

// PayInCreateInvoicesWorker creates the provider invoices of a batch of PayIns (the renewal
// sweep's), as PayInCreateInvoiceWorker does one's, with one job and one transaction for the
// batch. It reads the batch's PayIns in one statement; invoices each one still
// PENDING_INVOICE_CREATION at the provider — outside any transaction, invoiceConcurrency at
// a time, for at most half the job's timeout, and on a retry reusing an invoice an earlier
// attempt created but did not record (createInvoice); then, in one transaction with the
// job's completion, it locks the invoiced PayIns (PayInLockMany), records each invoice
// (PENDING; on a PayIn that failed meanwhile, recorded and invalidated) and hands each PayIn
// it could not invoice — the provider failed for it, it was not reached in time, or it
// failed before its invoice existed — over to its own payin.create_invoice job, with Retry
// (that job looks for an invoice first, retries with backoff and fails the PayIn after its
// last attempt). When that transaction fails, a second one hands every PayIn still waiting
// over to its own job: one PayIn the database refuses does not hold back the others.
type PayInCreateInvoicesWorker struct {
	river.WorkerDefaults[jobargs.PayInCreateInvoices]
	cfg Config
}

// Timeout bounds one attempt: Config.JobTimeout.
func (w *PayInCreateInvoicesWorker) Timeout(*river.Job[jobargs.PayInCreateInvoices]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work invoices the batch's PayIns, hands over those it could not, and completes the job.
func (w *PayInCreateInvoicesWorker) Work(ctx context.Context, job *river.Job[jobargs.PayInCreateInvoices]) error {
	var batch sql.PayInForInvoiceManyParams
	for _, r := range job.Args.PayIns {
		batch.TenantIds = append(batch.TenantIds, r.TenantID)
		batch.IDs = append(batch.IDs, r.PayInID)
	}
	rows, err := queries.PayInForInvoiceMany(ctx, w.cfg.DB, batch)
	if err != nil {
		return fmt.Errorf("payins of the batch: %w", err)
	}
	var waiting []sql.PayInForInvoiceManyRow
	var handOver []jobargs.PayInRef // each to its own payin.create_invoice job
	for _, row := range rows {
		switch row.PayIn.State {
		case sql.PayinStatePENDINGINVOICECREATION:
			waiting = append(waiting, row)
		case sql.PayinStateFAILED: // its own job finds and invalidates an invoice a lost attempt created
			handOver = append(handOver, jobargs.PayInRef{TenantID: row.PayIn.TenantID, PayInID: row.PayIn.ID})
		}
	}
	invoices, createErrs := w.createInvoices(ctx, job.Attempt > 1, waiting)
	restore := outcomesMark(ctx)
	err = pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		var created sql.PayInLockManyParams
		var locked []sql.PayIn
		byPayIn := map[jobargs.PayInRef]int{}
		more := slices.Clone(handOver)
		for i, row := range waiting {
			ref := jobargs.PayInRef{TenantID: row.PayIn.TenantID, PayInID: row.PayIn.ID}
			if createErrs[i] != nil {
				w.cfg.Log.WarnContext(ctx, "invoice creation failed in a batch; the payin's own job retries it", "payin", row.PayIn.ID, "error", createErrs[i])
				more = append(more, ref)
				continue
			}
			byPayIn[ref] = i
			created.TenantIds = append(created.TenantIds, ref.TenantID)
			created.IDs = append(created.IDs, ref.PayInID)
		}
		if len(created.IDs) > 0 {
			var err error
			if locked, err = queries.PayInLockMany(ctx, tx, created); err != nil {
				return fmt.Errorf("lock the payins of the batch: %w", err)
			}
		}
		for _, payin := range locked {
			i := byPayIn[jobargs.PayInRef{TenantID: payin.TenantID, PayInID: payin.ID}]
			step := w.cfg.tenantStepAt(ctx, job.JobRow, waiting[i].ClockAt)
			switch payin.State {
			case sql.PayinStateFAILED: // the buyer cancelled while BTCPay invoiced
				err = recordAbandoned(ctx, w.cfg, tx, step, payin, invoices[i])
			case sql.PayinStatePENDINGINVOICECREATION:
				_, _, err = core.PayInInvoiceCreated(ctx, tx, step, core.PayInInvoiceParams{PayIn: payin, Provider: w.cfg.Payments.Name(), Invoice: invoices[i]})
			}
			if err != nil {
				return err
			}
		}
		return handOverInvoices(ctx, tx, job, more)
	})
	if err == nil {
		return nil
	}
	restore()
	w.cfg.Log.WarnContext(ctx, "recording a batch of invoices failed; each payin's own job takes over", "payins", len(waiting), "error", err)
	for _, row := range waiting {
		handOver = append(handOver, jobargs.PayInRef{TenantID: row.PayIn.TenantID, PayInID: row.PayIn.ID})
	}
	if handErr := pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return handOverInvoices(ctx, tx, job, handOver) }); handErr != nil {
		return errors.Join(err, handErr)
	}
	return nil
}

// createInvoices creates (or, with find, reuses: createInvoice) the invoice of each PayIn of
// waiting at the provider, invoiceConcurrency at a time, and returns each one's invoice or
// error, in waiting's order. Calls not made within half the job's timeout fail, leaving the
// other half to record the batch.
func (w *PayInCreateInvoicesWorker) createInvoices(ctx context.Context, find bool, waiting []sql.PayInForInvoiceManyRow) ([]payment.Invoice, []error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.jobTimeout()/2)
	defer cancel()
	invoices, errs := make([]payment.Invoice, len(waiting)), make([]error, len(waiting))
	calls := make(chan struct{}, invoiceConcurrency)
	var wg sync.WaitGroup
	for i, row := range waiting {
		wg.Go(func() {
			calls <- struct{}{}
			defer func() { <-calls }()
			invoices[i], errs[i] = createInvoice(ctx, w.cfg, find, row.PayIn, row.InvoiceSats)
		})
	}
	wg.Wait()
	return invoices, errs
}

// handOverInvoices enqueues, in tx, a payin.create_invoice job with Retry for each PayIn of
// payins (unique by PayIn: one it has already is kept), and completes job.
func handOverInvoices(ctx context.Context, tx pgx.Tx, job *river.Job[jobargs.PayInCreateInvoices], payins []jobargs.PayInRef) error {
	if len(payins) > 0 {
		params := make([]river.InsertManyParams, 0, len(payins))
		for _, p := range payins {
			params = append(params, river.InsertManyParams{Args: jobargs.PayInCreateInvoice{TenantID: p.TenantID, PayInID: p.PayInID, Retry: true}})
		}
		if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertManyTx(ctx, tx, params); err != nil {
			return fmt.Errorf("hand payins over to their own invoice jobs: %w", err)
		}
	}
	return complete(ctx, tx, job)
}

// PayInSettleWorker re-confirms an invoice with its provider and settles its PayIn by what
// the provider says, whatever the webhook claimed: core.PayInSettleInvoice, the decision the
// webhook makes inline when it can. The webhook leaves it to this job when its own settle
// could not be done (the provider unreachable, the invoice's row not committed yet, ...); the
// reconcile sweep and the invalidation of an invoice enqueue it too. For a PENDING PayIn:
//   - settled with at least the amount: PAID, with the surplus paid back as credits;
//   - settled with less: FAILED with AMOUNT_MISMATCH, custodial parts refunded and the sats
//     received credited (underpayment_refund);
//   - expired or invalid: FAILED with INVOICE_EXPIRED or INVOICE_INVALID, likewise;
//   - unknown to the provider (404): FAILED with INVOICE_NOT_FOUND, custodial parts refunded;
//   - still open: nothing (a later webhook or the reconcile sweep asks again).
//
// For a PayIn that can no longer use money — FAILED (cancelled, expired, ...) or PAID — what
// the invoice's confirmed payments received beyond what was accounted for is a late
// payment, credited to the payer once (core.PayInLatePaymentCredit); an unconfirmed payment
// (which a double spend could undo) waits for its confirmation's webhook. The PayIn is locked while this is decided, so a
// payment racing a cancel is either settled or credited, never dropped.
//
// The provider is asked first, outside any transaction; then one transaction locks the
// invoice's PayIn, settles or credits, and completes the job. An invoice the database does
// not know yet (a webhook faster than the commit of the invoice's row) is an error, so River
// retries.
type PayInSettleWorker struct {
	river.WorkerDefaults[jobargs.PayInSettle]
	cfg Config
}

// Timeout bounds one attempt: Config.JobTimeout.
func (w *PayInSettleWorker) Timeout(*river.Job[jobargs.PayInSettle]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work settles the invoice's PayIn, or credits a late payment.
func (w *PayInSettleWorker) Work(ctx context.Context, job *river.Job[jobargs.PayInSettle]) error {
	remote, err := w.cfg.Payments.GetInvoice(ctx, job.Args.InvoiceID)
	gone := errors.Is(err, payment.ErrNotFound)
	if err != nil && !gone {
		return fmt.Errorf("re-confirm invoice %s: %w", job.Args.InvoiceID, err)
	}
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		payin, err := core.PayInSettleInvoice(ctx, tx, w.cfg.step(ctx, job.JobRow), core.PayInSettleInvoiceParams{
			Provider: job.Args.Provider, InvoiceID: job.Args.InvoiceID, Remote: remote, Gone: gone,
		})
		if err != nil {
			return err
		}
		if gone && payin.State == sql.PayinStatePENDING {
			w.cfg.Log.WarnContext(ctx, "the provider no longer knows the invoice of a pending payin", "payin", payin.ID, "invoice", job.Args.InvoiceID)
		}
		return complete(ctx, tx, job)
	})
}

// PayInInvalidateInvoiceWorker makes the invoice of a FAILED PayIn unpayable at its provider
// (payment.Provider.InvalidateInvoice; outside any transaction, retried while the provider
// fails). An invoice the provider says is settled or invalid already, or no longer knows,
// needs nothing more. Then, in one transaction, it records that the invoice is invalidated,
// enqueues a payin.settle for it — money that reached it before it became invalid, a payment
// racing the cancel, is credited to the payer by that settle — and completes. A PayIn that is
// not FAILED (a job enqueued by hand) is left alone: its invoice may still be paid.
type PayInInvalidateInvoiceWorker struct {
	river.WorkerDefaults[jobargs.PayInInvalidateInvoice]
	cfg Config
}

// Timeout bounds one attempt: Config.JobTimeout.
func (w *PayInInvalidateInvoiceWorker) Timeout(*river.Job[jobargs.PayInInvalidateInvoice]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work invalidates the invoice and has it re-confirmed.
func (w *PayInInvalidateInvoiceWorker) Work(ctx context.Context, job *river.Job[jobargs.PayInInvalidateInvoice]) error {
	payin, err := queries.PayInGet(ctx, w.cfg.DB, sql.PayInGetParams{TenantID: job.Args.TenantID, ID: job.Args.PayInID})
	if err != nil {
		return fmt.Errorf("payin %s: %w", job.Args.PayInID, err)
	}
	invoice, err := queries.PayInInvoiceGet(ctx, w.cfg.DB, sql.PayInInvoiceGetParams{TenantID: payin.TenantID, PayInID: payin.ID})
	if errors.Is(err, core.ErrNotFound) || err == nil && payin.State != sql.PayinStateFAILED {
		return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return complete(ctx, tx, job) })
	}
	if err != nil {
		return fmt.Errorf("invoice of payin %s: %w", payin.ID, err)
	}
	err = w.cfg.Payments.InvalidateInvoice(ctx, invoice.ProviderInvoiceID)
	if err != nil && !errors.Is(err, payment.ErrNotInvalidatable) && !errors.Is(err, payment.ErrNotFound) {
		return fmt.Errorf("invalidate invoice %s of payin %s: %w", invoice.ProviderInvoiceID, payin.ID, err)
	}
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		st, err := w.cfg.tenantStep(ctx, tx, job.JobRow, payin.TenantID)
		if err != nil {
			return err
		}
		err = queries.PayInInvoiceMarkInvalidated(ctx, tx, sql.PayInInvoiceMarkInvalidatedParams{TenantID: payin.TenantID, PayInID: payin.ID, Now: st.Now})
		if err != nil {
			return fmt.Errorf("record invalidation of the invoice of payin %s: %w", payin.ID, err)
		}
		_, err = st.Jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: jobargs.PayInSettle{
			Provider: invoice.Provider, InvoiceID: invoice.ProviderInvoiceID, Trigger: jobargs.PayInSettleAfterInvalidation,
		}}})
		if err != nil {
			return fmt.Errorf("enqueue the settle of invalidated invoice %s: %w", invoice.ProviderInvoiceID, err)
		}
		return complete(ctx, tx, job)
	})
}

// payInReconcileAfter is how long a PayIn stays PENDING before the reconcile sweep asks the
// provider about it, and how long a PayIn waits for its invoice creation or the invalidation
// of its invoice without a live job before the sweep heals it; payInInvalidateWithin is how
// long after a PayIn failed a lost invalidation of its invoice is still redone (BTCPay
// watches an invoice for payments for a day).
const (
	payInReconcileAfter   = 10 * time.Minute
	payInInvalidateWithin = 24 * time.Hour
)

// PayInReconcileSweepWorker heals PayIns, across tenants, up to Config.Batches.PayInReconcile
// of each kind below, in one transaction with its completion. It does not continue (see
// noContinuation): the next period's run heals what is left.
//   - a PayIn left PENDING longer than payInReconcileAfter gets a payin.settle: the provider
//     is asked again in case its webhook never came (settles of open invoices change nothing);
//   - a PayIn left PENDING_INVOICE_CREATION that long with no live job creating its invoice
//     (payin.create_invoice, or a payin.create_invoices batch naming it: lost to a crash,
//     deleted in River UI, discarded) gets a payin.create_invoice job, with Retry, since the
//     lost job may have reached the provider — unless an operator cancelled it, which fails
//     the PayIn with SYSTEM_CANCELLED and refunds its custodial parts;
//   - a PayIn FAILED that long (within payInInvalidateWithin) whose invoice is not invalidated
//     and has no live payin.invalidate_invoice job gets that job again.
type PayInReconcileSweepWorker struct {
	river.WorkerDefaults[jobargs.PayInReconcileSweep]
	cfg Config
}

// Timeout bounds one sweep: Config.JobTimeout.
func (w *PayInReconcileSweepWorker) Timeout(*river.Job[jobargs.PayInReconcileSweep]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work enqueues the settles and heals orphans, and completes the job in one transaction.
func (w *PayInReconcileSweepWorker) Work(ctx context.Context, job *river.Job[jobargs.PayInReconcileSweep]) error {
	batch := int32(w.cfg.batches().PayInReconcile)
	return sweep(ctx, w.cfg, job, noContinuation, func(tx pgx.Tx, st core.Step) (int, error) {
		before := st.Now.Add(-payInReconcileAfter)
		due, err := queries.PayInListPendingAllTenants(ctx, tx, sql.PayInListPendingAllTenantsParams{Before: before, Batch: batch})
		if err != nil {
			return 0, fmt.Errorf("list pending payins: %w", err)
		}
		var params []river.InsertManyParams
		for _, d := range due {
			params = append(params, river.InsertManyParams{Args: jobargs.PayInSettle{Provider: d.Provider, InvoiceID: d.ProviderInvoiceID}})
		}
		orphans, err := queries.PayInListOrphanedAllTenants(ctx, tx, sql.PayInListOrphanedAllTenantsParams{Before: before, Batch: batch})
		if err != nil {
			return 0, fmt.Errorf("list payins without their invoice job: %w", err)
		}
		for _, o := range orphans {
			if !o.Cancelled {
				w.cfg.Log.WarnContext(ctx, "payin lost its invoice creation job; enqueued again", "payin", o.ID)
				params = append(params, river.InsertManyParams{Args: jobargs.PayInCreateInvoice{TenantID: o.TenantID, PayInID: o.ID, Retry: true}})
				continue
			}
			w.cfg.Log.WarnContext(ctx, "payin's invoice creation was cancelled in River; failing it", "payin", o.ID)
			_, err := core.PayInFail(ctx, tx, st, core.PayInFailParams{TenantID: o.TenantID, ID: o.ID, Move: core.PayInMoveSystemCancel})
			if err != nil {
				return 0, err
			}
		}
		uninvalidated, err := queries.PayInInvoiceListUninvalidatedAllTenants(ctx, tx, sql.PayInInvoiceListUninvalidatedAllTenantsParams{
			Since: st.Now.Add(-payInInvalidateWithin), Before: before, Batch: batch,
		})
		if err != nil {
			return 0, fmt.Errorf("list failed payins whose invoice is not invalidated: %w", err)
		}
		for _, u := range uninvalidated {
			params = append(params, river.InsertManyParams{Args: jobargs.PayInInvalidateInvoice{TenantID: u.TenantID, PayInID: u.ID}})
		}
		if len(params) > 0 {
			if _, err := st.Jobs.InsertManyTx(ctx, tx, params); err != nil {
				return 0, fmt.Errorf("enqueue reconciliation: %w", err)
			}
		}
		return len(due) + len(orphans) + len(uninvalidated), nil
	})
}
