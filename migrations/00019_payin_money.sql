-- +goose Up
-- Money that reaches an invoice its PayIn can no longer use is credited, never dropped, and
-- the invoices of failed PayIns are made unpayable (issue 11).

-- INVOICE_NOT_FOUND: the provider no longer knows the PayIn's invoice (it answered 404 when
-- the settle job re-confirmed it).
ALTER TYPE payin_failure_reason ADD VALUE 'INVOICE_NOT_FOUND';
-- underpayment_refund: what an underpaid invoice received, credited to the payer when its
-- PayIn fails. late_payment_credit: money that reached an invoice after its PayIn was FAILED
-- or PAID (paid after a cancel, after expiry, or racing the invalidation), credited to the
-- payer.
ALTER TYPE payout_type ADD VALUE 'underpayment_refund';
ALTER TYPE payout_type ADD VALUE 'late_payment_credit';

-- invalidated_at: when the payin.invalidate_invoice job made the invoice of a FAILED PayIn
-- unpayable at the provider (or found it settled or invalid already). NULL while that is
-- still to do.
ALTER TABLE payin_invoices ADD COLUMN invalidated_at timestamptz;

-- PayInListOrphanedAllTenants: PayIns waiting for their invoice, by age.
CREATE INDEX payins_invoice_creation_idx ON payins (state_changed_at) WHERE state = 'PENDING_INVOICE_CREATION';
-- PayInInvoiceListUninvalidatedAllTenants: FAILED PayIns by when they failed.
CREATE INDEX payins_failed_idx ON payins (state_changed_at) WHERE state = 'FAILED';

-- +goose Down
-- Enum values cannot be dropped in Postgres; the three added above stay, unused.
DROP INDEX payins_failed_idx;
DROP INDEX payins_invoice_creation_idx;
ALTER TABLE payin_invoices DROP COLUMN invalidated_at;
