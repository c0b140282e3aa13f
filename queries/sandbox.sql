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
-- SandboxInvoiceFind reads a sandbox invoice by its id, with its PayIn's state and its
-- tenant's clock (payin_invoices_provider_key). The invoice id is the buyer's capability,
-- as a provider's checkout link is.
SELECT sqlc.embed(i), p.state AS payin_state, t.clock_at
FROM payin_invoices i
JOIN payins p ON p.tenant_id = i.tenant_id AND p.id = i.payin_id
JOIN tenants t ON t.id = i.tenant_id
WHERE i.provider = 'sandbox' AND i.provider_invoice_id = sqlc.arg(id)::text;
