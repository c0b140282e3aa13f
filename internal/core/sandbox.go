package core

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/sql"
)

// SandboxProvider is the provider name of a sandbox tenant's invoices: Tessera's own
// checkout (SandboxInvoiceOpen), so a sandbox never reaches a payment provider and its
// invoices expire by its clock.
const SandboxProvider = "sandbox"

// sandboxInvoiceOpen invoices the rest of a sandbox tenant's new PayIn, invoiceSats, at the
// sandbox checkout (SandboxInvoiceOpen) and makes the PayInMoveInvoice move at once: no
// provider, no payin.create_invoice job.
func sandboxInvoiceOpen(ctx context.Context, tx pgx.Tx, st Step, payin sql.PayIn, invoiceSats int64) (sql.PayIn, error) {
	invoice, err := queries.SandboxInvoiceOpen(ctx, tx, sql.SandboxInvoiceOpenParams{TenantID: payin.TenantID, PayInID: payin.ID, AmountSats: invoiceSats, Now: st.Now})
	if err != nil {
		return sql.PayIn{}, fmt.Errorf("open the sandbox invoice of payin %s: %w", payin.ID, err)
	}
	payin, err = payInMove(ctx, tx, st, payInMoveParams{TenantID: payin.TenantID, ID: payin.ID, Move: PayInMoveInvoice, To: sql.PayinStatePENDING})
	if err != nil {
		return sql.PayIn{}, err
	}
	return payin, payInInvoicePending(ctx, tx, st, payin, invoice)
}

// SandboxInvoice is a sandbox invoice as its checkout shows it, in the provider's words.
type SandboxInvoice struct {
	Invoice sql.PayInInvoice
	// Status is New while it takes payments, Settled once paid, Expired once the tenant's
	// clock passed its expiry unpaid, Invalid when its PayIn failed otherwise.
	Status payment.InvoiceStatus
}

// SandboxInvoiceGet reads sandbox invoice id, with its status at its tenant's clock
// (SandboxInvoiceFind decides it). An unknown id is ErrNotFound.
func SandboxInvoiceGet(ctx context.Context, db sql.DBTX, id string) (SandboxInvoice, error) {
	row, err := queries.SandboxInvoiceFind(ctx, db, id)
	if err != nil {
		return SandboxInvoice{}, fmt.Errorf("sandbox invoice %s: %w", id, err)
	}
	return SandboxInvoice{Invoice: row.PayInInvoice, Status: payment.InvoiceStatus(row.Status)}, nil
}

// SandboxInvoicePayParams pays sandbox invoice ID with Sats (zero: its amount).
type SandboxInvoicePayParams struct {
	ID   string
	Sats int64
}

// SandboxInvoicePay pays a sandbox invoice as a buyer at its checkout would, at its tenant's
// clock (st.Now): the invoice is settled with p.Sats and its PENDING PayIn settled by what it
// received, as a provider's settled invoice would (PayInSettle: paid, the surplus credited,
// or failed for an amount mismatch with what it received credited). An invoice that takes no
// more payments — paid, expired at the clock, or whose PayIn failed — is
// ErrSandboxInvoiceClosed; the buyer retries the PayIn for a new one.
func SandboxInvoicePay(ctx context.Context, tx pgx.Tx, st Step, p SandboxInvoicePayParams) (SandboxInvoice, error) {
	found, err := queries.SandboxInvoiceFind(ctx, tx, p.ID)
	if err != nil {
		return SandboxInvoice{}, fmt.Errorf("sandbox invoice %s: %w", p.ID, err)
	}
	payin, err := queries.PayInLock(ctx, tx, sql.PayInLockParams{TenantID: found.PayInInvoice.TenantID, ID: found.PayInInvoice.PayInID})
	if err != nil {
		return SandboxInvoice{}, fmt.Errorf("lock payin %s: %w", found.PayInInvoice.PayInID, err)
	}
	invoice, err := SandboxInvoiceGet(ctx, tx, p.ID) // read again under the PayIn's lock
	if err != nil {
		return SandboxInvoice{}, err
	}
	if payin.State != sql.PayinStatePENDING || invoice.Status != payment.InvoiceNew {
		return invoice, fmt.Errorf("%w: sandbox invoice %s is %s (payin %s is %s); retry the PayIn for a new invoice",
			ErrSandboxInvoiceClosed, p.ID, invoice.Status, payin.ID, payin.State)
	}
	sats := p.Sats
	if sats == 0 {
		sats = invoice.Invoice.AmountSats
	}
	if sats < 0 {
		return invoice, fmt.Errorf("%w: a payment of %d sats", ErrInvalid, sats)
	}
	remote := payment.Invoice{ID: p.ID, Status: payment.InvoiceSettled, AmountSats: invoice.Invoice.AmountSats, PaidSats: sats, ConfirmedSats: sats}
	if err := PayInSettle(ctx, tx, st, PayInSettleParams{PayIn: payin, Invoice: invoice.Invoice, Remote: remote}); err != nil {
		return invoice, err
	}
	return SandboxInvoiceGet(ctx, tx, p.ID)
}
