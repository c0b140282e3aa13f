-- name: SandboxInvoiceOpen :one
-- SandboxInvoiceOpen opens the invoice of PayIn @payin_id for @amount_sats at Tessera's own
-- sandbox checkout when its tenant is a sandbox (clock_at set): a sandbox never reaches a
-- payment provider. Its id is the PayIn's, prefixed sbx_; its checkout is the path
-- /v1/sandbox/invoices/{id} on Tessera; it expires 15 minutes after @now (BTCPay's default)
-- by the tenant's clock. No row means the tenant is live: its invoice is the provider's
-- (payin.create_invoice).
INSERT INTO payin_invoices (tenant_id, payin_id, provider, provider_invoice_id, checkout_url, amount_sats, expires_at, created_at)
SELECT t.id, sqlc.arg(payin_id)::uuid, 'sandbox', 'sbx_' || replace(sqlc.arg(payin_id)::uuid::text, '-', ''),
       '/v1/sandbox/invoices/sbx_' || replace(sqlc.arg(payin_id)::uuid::text, '-', ''),
       sqlc.arg(amount_sats)::bigint, sqlc.arg(now)::timestamptz + interval '15 minutes', sqlc.arg(now)::timestamptz
FROM tenants t
WHERE t.id = sqlc.arg(tenant_id)::uuid AND t.clock_at IS NOT NULL
RETURNING *;

-- name: SandboxInvoiceFind :one
-- SandboxInvoiceFind reads a sandbox invoice by its id, with its tenant's clock and its
-- status at that clock, in BTCPay's words: Settled once paid; Invalid when it was made
-- unpayable before it expired (its PayIn failed); Expired once the clock reached its expiry;
-- else New, which takes payments (payin_invoices_provider_key). The invoice id is the
-- buyer's capability, as a provider's checkout link is.
SELECT sqlc.embed(i), t.clock_at,
       (CASE WHEN i.settled_at IS NOT NULL THEN 'Settled'
             WHEN i.invalidated_at < i.expires_at THEN 'Invalid'
             WHEN i.expires_at <= t.clock_at THEN 'Expired'
             ELSE 'New' END)::text AS status
FROM payin_invoices i
JOIN tenants t ON t.id = i.tenant_id
WHERE i.provider = 'sandbox' AND i.provider_invoice_id = sqlc.arg(id)::text;
