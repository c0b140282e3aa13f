-- name: PayInCreate :one
-- PayInCreate inserts a PayIn in PENDING_INVOICE_CREATION and converts its price to sats:
-- SAT prices verbatim (no rate); fiat prices at the given rate (minor units per BTC),
-- rounded UP to a whole sat, so $25.00 at $50,000.00/BTC is exactly 50,000 sats. A retry
-- names the genesis of its chain.
INSERT INTO payins (tenant_id, id, customer_id, type, state, price_currency, price_value, rate_minor_per_btc, rate_source,
                    cost_sats, policy_id, addon_ids, genesis_id, retry_count, state_changed_at, created_at, updated_at)
VALUES (sqlc.arg(tenant_id)::uuid, sqlc.arg(id)::uuid, sqlc.arg(customer_id)::uuid, sqlc.arg(type)::payin_type, 'PENDING_INVOICE_CREATION',
        sqlc.arg(price_currency)::currency, sqlc.arg(price_value)::bigint, sqlc.narg(rate_minor_per_btc)::bigint, sqlc.narg(rate_source)::text,
        CASE WHEN sqlc.arg(price_currency)::currency = 'SAT' THEN sqlc.arg(price_value)::bigint
             ELSE ceil(100000000::numeric * sqlc.arg(price_value)::bigint / sqlc.narg(rate_minor_per_btc)::bigint)::bigint END,
        sqlc.narg(policy_id)::uuid, sqlc.arg(addon_ids)::uuid[], coalesce(sqlc.narg(genesis_id)::uuid, sqlc.arg(id)::uuid), sqlc.arg(retry_count)::int,
        sqlc.arg(now)::timestamptz, sqlc.arg(now)::timestamptz, sqlc.arg(now)::timestamptz)
RETURNING *;

-- name: PayInLogCreated :exec
-- PayInLogCreated records a PayIn's first state in its transitions.
INSERT INTO payin_transitions (tenant_id, payin_id, from_state, to_state, at)
VALUES (sqlc.arg(tenant_id)::uuid, sqlc.arg(payin_id)::uuid, NULL, 'PENDING_INVOICE_CREATION', sqlc.arg(now)::timestamptz);

-- name: PayInDebitCustodial :one
-- PayInDebitCustodial pays what it can of a PayIn from the payer's custodial balances: it
-- locks them, takes from each asset in the order given (credits then reward_sats unless the
-- request says otherwise) until the cost is covered, and records each part with the balance
-- after. It returns custodial_sats, what the parts paid, and invoice_sats, the rest of the
-- cost that an invoice must ask (0: fully covered). Concurrent PayIns of one payer take
-- turns on the row locks, so a balance is never overdrawn and no debit is lost
-- (balances_not_negative is the last line).
WITH bal AS (
    SELECT b.asset, b.amount, array_position(sqlc.arg(assets)::text[], b.asset::text) AS ord
    FROM balances b
    WHERE b.tenant_id = sqlc.arg(tenant_id)::uuid AND b.customer_id = sqlc.arg(customer_id)::uuid AND b.asset::text = ANY(sqlc.arg(assets)::text[])
    FOR UPDATE
), running AS (
    SELECT asset, amount, coalesce(sum(amount) OVER (ORDER BY ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::bigint AS covered
    FROM bal
), plan AS (
    SELECT asset, LEAST(amount, GREATEST(sqlc.arg(cost_sats)::bigint - covered, 0))::bigint AS debit
    FROM running
), debited AS (
    UPDATE balances b SET amount = b.amount - plan.debit, updated_at = sqlc.arg(now)::timestamptz
    FROM plan
    WHERE b.tenant_id = sqlc.arg(tenant_id)::uuid AND b.customer_id = sqlc.arg(customer_id)::uuid AND b.asset = plan.asset AND plan.debit > 0
    RETURNING b.asset, b.amount AS balance_after
), parts AS (
    INSERT INTO payin_custodial_parts (tenant_id, payin_id, asset, amount, balance_after)
    SELECT sqlc.arg(tenant_id)::uuid, sqlc.arg(payin_id)::uuid, d.asset, plan.debit, d.balance_after
    FROM debited d JOIN plan ON plan.asset = d.asset
    RETURNING amount
)
SELECT coalesce(sum(amount), 0)::bigint AS custodial_sats,
       (sqlc.arg(cost_sats)::bigint - coalesce(sum(amount), 0))::bigint AS invoice_sats
FROM parts;

-- name: PayInTransition :one
-- PayInTransition makes one move of the PayIn state machine (core.PayInMoves names them):
-- it moves a PayIn to @to_state if and only if its state is one of @from_states, records
-- the transition with its time, and sets the failure reason (only with FAILED). With
-- @first, the PayIn was inserted in this transaction and its first state was never
-- recorded: the transition is recorded as its first (from no state), the path it really
-- took (a fully custodial payment goes straight to PAID). It locks the PayIn and returns it
-- with moved: true and its new state, or, when its state does not allow the move, with
-- moved: false and the state it is in (read under the lock, so a concurrent move that
-- committed first is what it reports): the caller explains a refusal without reading the
-- PayIn again. No row means no such PayIn (primary key).
WITH locked AS (
    SELECT * FROM payins
    WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid
    FOR UPDATE
), moved AS (
    UPDATE payins p
    SET state = sqlc.arg(to_state)::payin_state, failure_reason = sqlc.narg(reason)::payin_failure_reason,
        state_changed_at = sqlc.arg(now)::timestamptz, updated_at = sqlc.arg(now)::timestamptz
    FROM locked c
    WHERE p.tenant_id = c.tenant_id AND p.id = c.id AND c.state::text = ANY(sqlc.arg(from_states)::text[])
    RETURNING p.*
), logged AS (
    INSERT INTO payin_transitions (tenant_id, payin_id, from_state, to_state, reason, at)
    SELECT m.tenant_id, m.id, CASE WHEN NOT sqlc.arg(first)::boolean THEN c.state END, m.state, m.failure_reason, sqlc.arg(now)::timestamptz
    FROM moved m JOIN locked c ON c.tenant_id = m.tenant_id AND c.id = m.id
)
SELECT sqlc.embed(payins), EXISTS (SELECT 1 FROM moved)::boolean AS moved
FROM (SELECT * FROM moved
      UNION ALL
      SELECT * FROM locked WHERE NOT EXISTS (SELECT 1 FROM moved)) AS payins;

-- name: PayInRefundCustodial :many
-- PayInRefundCustodial gives a failed PayIn's custodial parts back to the payer, with the
-- balances after. It runs in the transaction that moved the PayIn to FAILED, so once.
WITH parts AS (
    SELECT asset, amount FROM payin_custodial_parts WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND payin_id = sqlc.arg(payin_id)::uuid
), refunded AS (
    UPDATE balances b SET amount = b.amount + parts.amount, updated_at = sqlc.arg(now)::timestamptz
    FROM parts
    WHERE b.tenant_id = sqlc.arg(tenant_id)::uuid AND b.customer_id = sqlc.arg(customer_id)::uuid AND b.asset = parts.asset
    RETURNING b.asset, b.amount AS balance_after
)
INSERT INTO payin_refunds (tenant_id, payin_id, asset, amount, balance_after, created_at)
SELECT sqlc.arg(tenant_id)::uuid, sqlc.arg(payin_id)::uuid, r.asset, parts.amount, r.balance_after, sqlc.arg(now)::timestamptz
FROM refunded r JOIN parts ON parts.asset = r.asset
RETURNING *;

-- name: BalanceCredit :one
-- BalanceCredit adds to a customer's balance of an asset, creating it, and returns the
-- balance after.
INSERT INTO balances AS b (tenant_id, customer_id, asset, amount, updated_at)
VALUES (sqlc.arg(tenant_id)::uuid, sqlc.arg(customer_id)::uuid, sqlc.arg(asset)::asset, sqlc.arg(amount)::bigint, sqlc.arg(now)::timestamptz)
ON CONFLICT (tenant_id, customer_id, asset) DO UPDATE
SET amount = b.amount + EXCLUDED.amount, updated_at = EXCLUDED.updated_at
RETURNING amount;

-- name: PayoutCreate :exec
-- PayoutCreate records what someone earned from a PayIn.
INSERT INTO payouts (tenant_id, id, payin_id, type, earner_customer_id, asset, amount, balance_after, created_at)
VALUES (sqlc.arg(tenant_id)::uuid, sqlc.arg(id)::uuid, sqlc.arg(payin_id)::uuid, sqlc.arg(type)::payout_type, sqlc.narg(earner_customer_id)::uuid,
        sqlc.arg(asset)::text, sqlc.arg(amount)::bigint, sqlc.narg(balance_after)::bigint, sqlc.arg(now)::timestamptz);

-- name: PayInSetLicense :exec
-- PayInSetLicense records the licence a PAID licence purchase produced.
UPDATE payins SET license_id = sqlc.arg(license_id)::uuid, updated_at = sqlc.arg(now)::timestamptz
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid;

-- name: PayInGet :one
-- PayInGet reads one of a tenant's PayIns (primary key).
SELECT * FROM payins WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid;

-- name: PayInLock :one
-- PayInLock reads one of a tenant's PayIns and locks it until the transaction ends, so that
-- what is decided from its state (settle it, credit a late payment, record an invoice) is
-- not raced by a cancel or another settle (primary key).
SELECT * FROM payins WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid FOR UPDATE;

-- name: PayInParts :many
-- PayInParts lists a PayIn's custodial parts.
SELECT * FROM payin_custodial_parts WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND payin_id = sqlc.arg(payin_id)::uuid ORDER BY asset;

-- name: PayInDetails :many
-- PayInDetails reads what the API shows of PayIns @ids besides their rows, one row per
-- PayIn and one statement whatever their number (a page of PayIns costs no query per
-- PayIn): its custodial parts as a JSON array of {asset, amount, balance_after} by asset
-- (empty when none), its invoice when it has one, and its licence's key when it has a
-- licence. Served by the primary keys of payins, payin_custodial_parts, payin_invoices and
-- licenses.
SELECT p.id,
       coalesce((SELECT jsonb_agg(jsonb_build_object('asset', c.asset, 'amount', c.amount, 'balance_after', c.balance_after)
                                  ORDER BY c.asset)
                 FROM payin_custodial_parts c
                 WHERE c.tenant_id = p.tenant_id AND c.payin_id = p.id), '[]')::jsonb AS parts,
       i.provider AS invoice_provider, i.provider_invoice_id AS invoice_id, i.checkout_url AS invoice_checkout_url,
       i.amount_sats AS invoice_amount_sats, i.paid_sats AS invoice_paid_sats, i.expires_at AS invoice_expires_at,
       l.key AS license_key
FROM payins p
LEFT JOIN payin_invoices i ON i.tenant_id = p.tenant_id AND i.payin_id = p.id
LEFT JOIN licenses l ON l.tenant_id = p.tenant_id AND l.id = p.license_id
WHERE p.tenant_id = sqlc.arg(tenant_id)::uuid AND p.id = ANY(sqlc.arg(ids)::uuid[]);

-- name: PayInForInvoiceMany :many
-- PayInForInvoiceMany reads, in one round trip, what the invoice jobs need of PayIns across
-- tenants (payin.create_invoice's one, payin.create_invoices' batch): each named PayIn that
-- exists, what its invoice must ask (its cost less what its custodial parts paid) and its
-- tenant's clock (NULL: a live tenant). Primary keys of payins, tenants and
-- payin_custodial_parts.
SELECT sqlc.embed(p),
       (p.cost_sats - coalesce((SELECT sum(c.amount) FROM payin_custodial_parts c
                                WHERE c.tenant_id = p.tenant_id AND c.payin_id = p.id), 0))::bigint AS invoice_sats,
       t.clock_at
FROM (SELECT unnest(sqlc.arg(tenant_ids)::uuid[]) AS tenant_id, unnest(sqlc.arg(ids)::uuid[]) AS id) AS r
JOIN payins p ON p.tenant_id = r.tenant_id AND p.id = r.id
JOIN tenants t ON t.id = p.tenant_id;

-- name: PayInLockMany :many
-- PayInLockMany is PayInLock for a batch of PayIns across tenants (the payin.create_invoices
-- job records its invoices under these locks): the named PayIns that exist, locked until the
-- transaction ends, in primary-key order, so batches sharing PayIns lock without deadlocking
-- (primary key).
SELECT p.* FROM payins p
WHERE (p.tenant_id, p.id) IN (SELECT unnest(sqlc.arg(tenant_ids)::uuid[]), unnest(sqlc.arg(ids)::uuid[]))
ORDER BY p.tenant_id, p.id
FOR UPDATE OF p;

-- name: PayInTransitions :many
-- PayInTransitions lists a PayIn's state changes in order.
SELECT * FROM payin_transitions WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND payin_id = sqlc.arg(payin_id)::uuid ORDER BY seq;

-- name: PayInPayouts :many
-- PayInPayouts lists what a PayIn paid out (payouts_payin_idx).
SELECT * FROM payouts WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND payin_id = sqlc.arg(payin_id)::uuid ORDER BY id;

-- name: PayInRefunds :many
-- PayInRefunds lists what a failed PayIn gave back.
SELECT * FROM payin_refunds WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND payin_id = sqlc.arg(payin_id)::uuid ORDER BY asset;

-- name: PayInInvariantViolations :many
-- PayInInvariantViolations checks SPEC 3's invariants over a tenant's PayIns and returns
-- the ones that break them (tests run it after every scenario):
--   - custodial parts plus the invoice amount equal the cost (when the PayIn has left
--     PENDING_INVOICE_CREATION, or is fully custodial);
--   - a PAID PayIn's payouts, the payer's credits aside (overpay_spillover,
--     underpayment_refund, late_payment_credit), equal its cost, and those credits equal
--     what the invoice received beyond its amount;
--   - a FAILED PayIn refunded every custodial part, paid nothing out, and credited the payer
--     everything its invoice received: money is never dropped;
--   - a credit_grant has no pay-in parts at all, and is PAID: the tenant funds it (it is
--     credits given, not a payment by the customer), so nothing is debited from the customer
--     and nothing is invoiced; the parts rule above does not apply to it, but its payouts
--     (the credits granted) must still sum to its cost.
WITH totals AS (
    SELECT p.tenant_id, p.id, p.type, p.state, p.cost_sats,
           coalesce((SELECT sum(amount) FROM payin_custodial_parts c WHERE c.tenant_id = p.tenant_id AND c.payin_id = p.id), 0) AS custodial,
           i.amount_sats AS invoiced, i.paid_sats AS received,
           coalesce((SELECT sum(amount) FROM payouts o WHERE o.tenant_id = p.tenant_id AND o.payin_id = p.id
                     AND o.type NOT IN ('overpay_spillover', 'underpayment_refund', 'late_payment_credit')), 0) AS paid_out,
           coalesce((SELECT sum(amount) FROM payouts o WHERE o.tenant_id = p.tenant_id AND o.payin_id = p.id
                     AND o.type IN ('overpay_spillover', 'underpayment_refund', 'late_payment_credit')), 0) AS payer_credits,
           coalesce((SELECT sum(amount) FROM payin_refunds r WHERE r.tenant_id = p.tenant_id AND r.payin_id = p.id AND r.asset IN (
               SELECT c.asset FROM payin_custodial_parts c WHERE c.tenant_id = p.tenant_id AND c.payin_id = p.id)), 0) AS refunded
    FROM payins p
    LEFT JOIN payin_invoices i ON i.tenant_id = p.tenant_id AND i.payin_id = p.id
    WHERE p.tenant_id = sqlc.arg(tenant_id)::uuid
)
SELECT id, state, violation FROM (
    SELECT id, state::text AS state,
           (CASE
               WHEN type = 'credit_grant' AND (custodial <> 0 OR invoiced IS NOT NULL OR state <> 'PAID')
                   THEN 'credit grant not funded by the tenant alone'
               WHEN type <> 'credit_grant' AND (state <> 'PENDING_INVOICE_CREATION' OR invoiced IS NOT NULL) AND state <> 'FAILED'
                    AND custodial + coalesce(invoiced, 0) <> cost_sats THEN 'parts do not sum to the cost'
               WHEN state = 'PAID' AND paid_out <> cost_sats THEN 'payouts do not sum to the cost'
               WHEN state = 'PAID' AND payer_credits <> GREATEST(coalesce(received, 0) - coalesce(invoiced, 0), 0)
                   THEN 'credits to the payer differ from the overpayment'
               WHEN state = 'FAILED' AND (paid_out <> 0 OR refunded <> custodial) THEN 'failed without a full refund'
               WHEN state = 'FAILED' AND payer_credits <> coalesce(received, 0) THEN 'money received by a failed PayIn not credited'
           END)::text AS violation
    FROM totals) v
WHERE violation IS NOT NULL;

-- name: PayInInvoiceAttach :one
-- PayInInvoiceAttach records the provider invoice that pays the rest of a PayIn.
INSERT INTO payin_invoices (tenant_id, payin_id, provider, provider_invoice_id, checkout_url, amount_sats, expires_at, created_at)
VALUES (sqlc.arg(tenant_id)::uuid, sqlc.arg(payin_id)::uuid, sqlc.arg(provider)::text, sqlc.arg(provider_invoice_id)::text,
        sqlc.arg(checkout_url)::text, sqlc.arg(amount_sats)::bigint, sqlc.narg(expires_at)::timestamptz, sqlc.arg(now)::timestamptz)
RETURNING *;

-- name: PayInInvoiceGet :one
-- PayInInvoiceGet reads a PayIn's invoice (primary key).
SELECT * FROM payin_invoices WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND payin_id = sqlc.arg(payin_id)::uuid;

-- name: PayInLockByInvoice :one
-- PayInLockByInvoice finds the PayIn of the invoice a provider names, across tenants (the
-- provider's invoice id is unique: payin_invoices_provider_key), and locks the PayIn until
-- the transaction ends, as PayInLock does; with it come the invoice and the tenant's clock
-- (a sandbox tenant's time, else null), so a settle reads what it decides from in one
-- statement. The invoice's columns a settle reads (ids, amount) never change. Served by
-- payin_invoices_provider_key and the primary keys of payins and tenants.
SELECT sqlc.embed(p), sqlc.embed(i), t.clock_at AS tenant_clock_at
FROM payin_invoices i
JOIN payins p ON p.tenant_id = i.tenant_id AND p.id = i.payin_id
JOIN tenants t ON t.id = i.tenant_id
WHERE i.provider = sqlc.arg(provider)::text AND i.provider_invoice_id = sqlc.arg(provider_invoice_id)::text
FOR UPDATE OF p;

-- name: PayInInvoiceClose :exec
-- PayInInvoiceClose records how an invoice ended: what it received and when it settled, or
-- when it was cancelled (expired, invalid, or its PayIn failed).
UPDATE payin_invoices
SET paid_sats = sqlc.narg(paid_sats)::bigint,
    settled_at = CASE WHEN sqlc.arg(settled)::boolean THEN sqlc.arg(now)::timestamptz END,
    cancelled_at = CASE WHEN NOT sqlc.arg(settled)::boolean THEN sqlc.arg(now)::timestamptz END
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND payin_id = sqlc.arg(payin_id)::uuid;

-- name: PayInInvoiceAccount :one
-- PayInInvoiceAccount records that the invoice of a PayIn that can no longer use money
-- (FAILED, or PAID already) has received @paid_sats in all, as its provider says, and returns
-- late_sats: what it received beyond what was accounted for before (paid_sats: what the
-- settle saw, or nothing for an invoice whose PayIn failed unpaid), which the caller credits
-- to the payer. It locks the invoice row, so of two re-confirmations of one payment the
-- second finds it accounted for (0): late money is credited exactly once. paid_sats never
-- goes down; a PENDING PayIn's invoice is the settle's business (0).
WITH inv AS (
    SELECT i.tenant_id, i.payin_id, coalesce(i.paid_sats, 0) AS accounted
    FROM payin_invoices i
    JOIN payins p ON p.tenant_id = i.tenant_id AND p.id = i.payin_id
    WHERE i.tenant_id = sqlc.arg(tenant_id)::uuid AND i.payin_id = sqlc.arg(payin_id)::uuid AND p.state IN ('FAILED', 'PAID')
    FOR UPDATE OF i
), accounted AS (
    UPDATE payin_invoices i SET paid_sats = sqlc.arg(paid_sats)::bigint
    FROM inv
    WHERE i.tenant_id = inv.tenant_id AND i.payin_id = inv.payin_id AND sqlc.arg(paid_sats)::bigint > inv.accounted
    RETURNING sqlc.arg(paid_sats)::bigint - inv.accounted AS late_sats
)
SELECT coalesce((SELECT late_sats FROM accounted), 0)::bigint AS late_sats;

-- name: PayInInvoiceMarkInvalidated :exec
-- PayInInvoiceMarkInvalidated records that the invoice of a FAILED PayIn is unpayable at its
-- provider (the payin.invalidate_invoice job made it so, or found it settled or invalid
-- already).
UPDATE payin_invoices SET invalidated_at = sqlc.arg(now)::timestamptz
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND payin_id = sqlc.arg(payin_id)::uuid AND invalidated_at IS NULL;

-- name: PayInListOrphanedAllTenants :many
-- PayInListOrphanedAllTenants returns, across all tenants, PayIns waiting in
-- PENDING_INVOICE_CREATION since before @before with no live job creating their invoice — a
-- payin.create_invoice job of theirs, or a payin.create_invoices batch naming them (available,
-- pending, retryable, running or scheduled): their job was lost (a crash after River marked it
-- completed, a delete in River UI) or cancelled by an operator, which cancelled says. The
-- payin.reconcile_sweep re-enqueues the first and fails the second.
-- Oldest first, locked, skipping PayIns another transaction holds (a job recording their
-- invoice). Served by payins_invoice_creation_idx and River's river_job_args_index.
-- Live tenants only: a sandbox tenant's (clock_at set) run by its own clock, not this sweep's
-- (tenants primary key, probed per candidate row in index order).
SELECT p.tenant_id, p.id,
       EXISTS (SELECT 1 FROM river_job j
               WHERE j.state = 'cancelled'
                 AND (j.kind = 'payin.create_invoice' AND j.args @> jsonb_build_object('tenant_id', p.tenant_id, 'payin_id', p.id)
                      OR j.kind = 'payin.create_invoices'
                         AND j.args @> jsonb_build_object('payins', jsonb_build_array(jsonb_build_object('tenant_id', p.tenant_id, 'payin_id', p.id)))))::boolean AS cancelled
FROM payins p
WHERE p.state = 'PENDING_INVOICE_CREATION' AND p.state_changed_at <= sqlc.arg(before)::timestamptz
  AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = p.tenant_id AND t.clock_at IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM river_job j
                  WHERE j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
                    AND (j.kind = 'payin.create_invoice' AND j.args @> jsonb_build_object('tenant_id', p.tenant_id, 'payin_id', p.id)
                         OR j.kind = 'payin.create_invoices'
                            AND j.args @> jsonb_build_object('payins', jsonb_build_array(jsonb_build_object('tenant_id', p.tenant_id, 'payin_id', p.id)))))
ORDER BY p.state_changed_at
LIMIT sqlc.arg(batch)::int
FOR UPDATE OF p SKIP LOCKED;

-- name: PayInInvoiceListUninvalidatedAllTenants :many
-- PayInInvoiceListUninvalidatedAllTenants returns, across all tenants, FAILED PayIns whose
-- invoice is still to be made unpayable (invalidated_at unset) and that have no live
-- payin.invalidate_invoice job: the job was lost, deleted, cancelled or discarded. Only
-- PayIns that failed in (@since, @before]: past @since (a day, BTCPay's payment monitoring)
-- invalidating no longer matters, and before @before the job enqueued with the failure has
-- its chance. The payin.reconcile_sweep re-enqueues their jobs. Oldest first; served by
-- payins_failed_idx and River's river_job_args_index.
-- Live tenants only: a sandbox tenant's (clock_at set) run by its own clock, not this sweep's
-- (tenants primary key, probed per candidate row in index order).
SELECT p.tenant_id, p.id
FROM payins p
JOIN payin_invoices i ON i.tenant_id = p.tenant_id AND i.payin_id = p.id
WHERE p.state = 'FAILED' AND p.state_changed_at > sqlc.arg(since)::timestamptz AND p.state_changed_at <= sqlc.arg(before)::timestamptz
  AND i.invalidated_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = p.tenant_id AND t.clock_at IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM river_job j
                  WHERE j.kind = 'payin.invalidate_invoice' AND j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
                    AND j.args @> jsonb_build_object('tenant_id', p.tenant_id, 'payin_id', p.id))
ORDER BY p.state_changed_at
LIMIT sqlc.arg(batch)::int;

-- name: ProviderWebhookRecord :one
-- ProviderWebhookRecord records a verified provider webhook delivery once: false means the
-- delivery was recorded before (a redelivery or a duplicate) and needs no processing. It is
-- received at the time of the invoice's PayIn's tenant: a sandbox tenant's clock, else @now
-- (payin_invoices_provider_key, tenants primary key).
WITH inserted AS (
    INSERT INTO provider_webhook_deliveries (provider, delivery_id, type, invoice_id, received_at)
    VALUES (sqlc.arg(provider)::text, sqlc.arg(delivery_id)::text, sqlc.arg(type)::text, sqlc.arg(invoice_id)::text,
            coalesce((SELECT t.clock_at
                      FROM payin_invoices i JOIN tenants t ON t.id = i.tenant_id
                      WHERE i.provider = sqlc.arg(provider)::text AND i.provider_invoice_id = sqlc.arg(invoice_id)::text),
                     sqlc.arg(now)::timestamptz))
    ON CONFLICT (provider, delivery_id) DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM inserted) AS recorded;

-- name: PayInGetAnyTenant :one
-- PayInGetAnyTenant reads a PayIn by id alone, for the buyer's poll: the PayIn id is the
-- buyer's capability. Reads across tenants by primary key suffix; ids are UUIDv7 and unique.
SELECT * FROM payins WHERE id = sqlc.arg(id)::uuid;

-- name: PayInList :many
-- PayInList pages through a tenant's PayIns, newest first, optionally by customer
-- (payins_customer_idx) and state.
SELECT * FROM payins
WHERE tenant_id = sqlc.arg(tenant_id)::uuid
  AND (sqlc.narg(customer_id)::uuid IS NULL OR customer_id = sqlc.narg(customer_id)::uuid)
  AND (sqlc.narg(state)::text IS NULL OR state::text = sqlc.narg(state)::text)
  AND (sqlc.narg(after)::uuid IS NULL OR id < sqlc.narg(after)::uuid)
ORDER BY id DESC
LIMIT sqlc.arg(row_limit)::int;

-- name: PayInListPendingAllTenants :many
-- PayInListPendingAllTenants returns, across all tenants, PENDING PayIns whose state has not
-- changed since @before, oldest first, with their invoices (the payin.reconcile_sweep job
-- asks the provider about them). Served by payins_pending_idx.
-- Live tenants only: a sandbox tenant's (clock_at set) run by its own clock, not this sweep's
-- (tenants primary key, probed per candidate row in index order).
SELECT i.provider, i.provider_invoice_id
FROM payins p
JOIN payin_invoices i ON i.tenant_id = p.tenant_id AND i.payin_id = p.id
WHERE p.state = 'PENDING' AND p.state_changed_at <= sqlc.arg(before)::timestamptz
  AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = p.tenant_id AND t.clock_at IS NOT NULL)
ORDER BY p.state_changed_at
LIMIT sqlc.arg(batch)::int;

-- name: PayInRetryClaim :one
-- PayInRetryClaim records @successor_id as the retry of a FAILED PayIn that has none yet,
-- before the successor is inserted (payins_successor_fkey is deferred). It is the guard of a
-- retry: of two concurrent retries of one PayIn, the second waits on the row lock, then finds
-- successor_id set. It locks the PayIn and returns it with claimed: true, or, when it is not
-- FAILED or was already retried, with claimed: false as it is (its state and successor, read
-- under the lock), so the caller explains the refusal without reading it again. No row means
-- no such PayIn (primary key).
WITH locked AS (
    SELECT * FROM payins
    WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid
    FOR UPDATE
), claimed AS (
    UPDATE payins p SET successor_id = sqlc.arg(successor_id)::uuid, updated_at = sqlc.arg(now)::timestamptz
    FROM locked c
    WHERE p.tenant_id = c.tenant_id AND p.id = c.id AND c.state = 'FAILED' AND c.successor_id IS NULL
    RETURNING p.*
)
SELECT sqlc.embed(payins), EXISTS (SELECT 1 FROM claimed)::boolean AS claimed
FROM (SELECT * FROM claimed
      UNION ALL
      SELECT * FROM locked WHERE NOT EXISTS (SELECT 1 FROM claimed)) AS payins;

-- name: PayInStatisticsSpent :many
-- PayInStatisticsSpent sums what was spent through PayIns PAID in [@from_time, @to_time), by
-- type: the number of PayIns, their cost, and what paid it — credits, reward sats, the
-- invoice (its amount; an overpayment is an overpay_spillover payout, in earned) and, for
-- credit grants, the tenant (granted_sats). So cost_sats = credits + reward_sats +
-- invoice_sats + granted_sats on every row. For one customer when @customer_id is given
-- (payins_customer_paid_idx), else for the whole tenant (payins_paid_idx): the two branches
-- are exclusive on the parameter, so each is planned with its own index.
WITH paid AS (
    SELECT p.tenant_id, p.id, p.type, p.cost_sats FROM payins p
    WHERE sqlc.narg(customer_id)::uuid IS NULL AND p.tenant_id = sqlc.arg(tenant_id)::uuid AND p.state = 'PAID'
      AND p.state_changed_at >= sqlc.arg(from_time)::timestamptz AND p.state_changed_at < sqlc.arg(to_time)::timestamptz
    UNION ALL
    SELECT p.tenant_id, p.id, p.type, p.cost_sats FROM payins p
    WHERE p.tenant_id = sqlc.arg(tenant_id)::uuid AND p.customer_id = sqlc.narg(customer_id)::uuid AND p.state = 'PAID'
      AND p.state_changed_at >= sqlc.arg(from_time)::timestamptz AND p.state_changed_at < sqlc.arg(to_time)::timestamptz
)
SELECT paid.type::text AS type,
       count(*)::bigint AS payins,
       sum(paid.cost_sats)::bigint AS cost_sats,
       coalesce(sum(parts.credits), 0)::bigint AS credits,
       coalesce(sum(parts.reward_sats), 0)::bigint AS reward_sats,
       coalesce(sum(i.amount_sats), 0)::bigint AS invoice_sats,
       coalesce(sum(paid.cost_sats) FILTER (WHERE paid.type = 'credit_grant'), 0)::bigint AS granted_sats
FROM paid
LEFT JOIN LATERAL (
    SELECT sum(c.amount) FILTER (WHERE c.asset = 'credits') AS credits,
           sum(c.amount) FILTER (WHERE c.asset = 'reward_sats') AS reward_sats
    FROM payin_custodial_parts c WHERE c.tenant_id = paid.tenant_id AND c.payin_id = paid.id
) parts ON true
LEFT JOIN payin_invoices i ON i.tenant_id = paid.tenant_id AND i.payin_id = paid.id
GROUP BY paid.type
ORDER BY paid.type;

-- name: PayInStatisticsEarned :many
-- PayInStatisticsEarned sums the payouts made in [@from_time, @to_time), by type and asset:
-- what one customer earned when @customer_id is given (payouts_earner_idx), else everything
-- paid out from the tenant's PayIns, the tenant's own revenue included (payouts_created_idx).
-- The branches are exclusive on the parameter, as in PayInStatisticsSpent.
WITH earned AS (
    SELECT o.type, o.asset, o.amount FROM payouts o
    WHERE sqlc.narg(customer_id)::uuid IS NULL AND o.tenant_id = sqlc.arg(tenant_id)::uuid
      AND o.created_at >= sqlc.arg(from_time)::timestamptz AND o.created_at < sqlc.arg(to_time)::timestamptz
    UNION ALL
    SELECT o.type, o.asset, o.amount FROM payouts o
    WHERE o.tenant_id = sqlc.arg(tenant_id)::uuid AND o.earner_customer_id = sqlc.narg(customer_id)::uuid
      AND o.created_at >= sqlc.arg(from_time)::timestamptz AND o.created_at < sqlc.arg(to_time)::timestamptz
)
SELECT earned.type::text AS type, earned.asset, count(*)::bigint AS payouts, sum(earned.amount)::bigint AS amount
FROM earned
GROUP BY earned.type, earned.asset
ORDER BY earned.type, earned.asset;
