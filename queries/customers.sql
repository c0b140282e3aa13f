-- name: CustomerCreate :one
-- CustomerCreate stores a new customer. A taken email (case-insensitively), external id or
-- invite code violates customers_email_key, customers_external_id_key or
-- customers_invite_code_key; a referrer that is not the tenant's customer violates the
-- foreign key.
INSERT INTO customers (tenant_id, id, email, external_id, is_active, is_verified, invite_code, referred_by, created_at, updated_at)
VALUES (@tenant_id::uuid, @id::uuid, @email::text, sqlc.narg(external_id)::text, @is_active::bool, @is_verified::bool,
        @invite_code::text, sqlc.narg(referred_by)::uuid, @now::timestamptz, @now::timestamptz)
RETURNING *;

-- name: CustomerGet :one
-- CustomerGet reads one of a tenant's customers (primary key).
SELECT * FROM customers WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid;

-- name: CustomerGetForUpdate :one
-- CustomerGetForUpdate reads one of a tenant's customers and locks it against other
-- changes for the rest of the transaction (primary key). The lock is FOR NO KEY UPDATE:
-- rows referencing the customer (its referrals, licences) can still be written meanwhile.
SELECT * FROM customers WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid FOR NO KEY UPDATE;

-- name: CustomerGetByEmail :one
-- CustomerGetByEmail finds a tenant's customer by email, case-insensitively
-- (customers_email_key).
SELECT * FROM customers WHERE tenant_id = @tenant_id::uuid AND lower(email) = lower(@email::text);

-- name: CustomerList :many
-- CustomerList pages through a tenant's customers, oldest first, after the cursor id,
-- filtered by any of email (case-insensitive), external_id and referred_by. The email and
-- external_id filters hit customers_email_key and customers_external_id_key (one row at
-- most); referred_by uses customers_referred_by_idx; otherwise primary key order.
SELECT * FROM customers
WHERE tenant_id = @tenant_id::uuid
  AND (sqlc.narg(email)::text IS NULL OR lower(email) = lower(sqlc.narg(email)::text))
  AND (sqlc.narg(external_id)::text IS NULL OR external_id = sqlc.narg(external_id)::text)
  AND (sqlc.narg(referred_by)::uuid IS NULL OR referred_by = sqlc.narg(referred_by)::uuid)
  AND (sqlc.narg(after)::uuid IS NULL OR id > sqlc.narg(after)::uuid)
ORDER BY id
LIMIT @row_limit::int;

-- name: CustomerUpdate :one
-- CustomerUpdate changes the fields given: a NULL argument keeps the current value;
-- external_id changes only when set_external_id is true, so it can be cleared; referred_by
-- is only ever filled in, never changed once set. No row means the customer does not exist.
UPDATE customers SET
    email       = coalesce(sqlc.narg(email)::text, email),
    external_id = CASE WHEN @set_external_id::bool THEN sqlc.narg(external_id)::text ELSE external_id END,
    is_active   = coalesce(sqlc.narg(is_active)::bool, is_active),
    is_verified = coalesce(sqlc.narg(is_verified)::bool, is_verified),
    referred_by = coalesce(referred_by, sqlc.narg(referred_by)::uuid),
    updated_at  = @now::timestamptz
WHERE tenant_id = @tenant_id::uuid AND id = @id::uuid
RETURNING *;

-- name: CustomerReferralLock :exec
-- CustomerReferralLock serialises, per tenant and until the transaction ends, the changes
-- that set an existing customer's referrer, so that two of them cannot each pass the cycle
-- check and together close a cycle. Take it before locking the customer row. New customers
-- need no lock: nobody refers to them yet.
SELECT pg_advisory_xact_lock(hashtextextended('customer-referral:' || CAST(@tenant_id::uuid AS text), 0));

-- name: CustomerReferrerChainContains :one
-- CustomerReferrerChainContains decides whether customer_id is referrer_id or one of
-- referrer_id's referrers, up the referred_by chain: making referrer_id refer customer_id
-- would then close a referral cycle. Walks the primary key, one row per level.
WITH RECURSIVE chain (id, depth) AS (
    SELECT @referrer_id::uuid, 0
    UNION ALL
    SELECT c.referred_by, chain.depth + 1
    FROM chain JOIN customers c ON c.tenant_id = @tenant_id::uuid AND c.id = chain.id
    WHERE c.referred_by IS NOT NULL AND chain.depth < 10000
)
SELECT EXISTS (SELECT 1 FROM chain WHERE chain.id = @customer_id::uuid);

-- name: CustomerListExistingIDs :many
-- CustomerListExistingIDs returns which of customer_ids are the tenant's customers
-- (primary key); the batch event insert reports the others row by row.
SELECT id FROM customers WHERE tenant_id = @tenant_id::uuid AND id = ANY(@customer_ids::uuid[]);

-- name: CustomerEventCreate :one
-- CustomerEventCreate records an event of one of the tenant's customers; no row means the
-- customer does not exist.
INSERT INTO customer_events (tenant_id, id, customer_id, type, ip_hash, occurred_at, created_at)
SELECT c.tenant_id, @id::uuid, c.id, @type::text, sqlc.narg(ip_hash)::text, @occurred_at::timestamptz, @now::timestamptz
FROM customers c
WHERE c.tenant_id = @tenant_id::uuid AND c.id = @customer_id::uuid
RETURNING *;

-- name: CustomerEventCreateMany :execrows
-- CustomerEventCreateMany records many events in one statement, one per position of the
-- arrays (all the same length: the unnests of one select list advance together). An empty
-- ip_hash means none. Customers must be the tenant's (the foreign key refuses the whole
-- statement otherwise).
INSERT INTO customer_events (tenant_id, id, customer_id, type, ip_hash, occurred_at, created_at)
SELECT @tenant_id::uuid, e.id, e.customer_id, e.type, nullif(e.ip_hash, ''), e.occurred_at, @now::timestamptz
FROM (SELECT unnest(@event_ids::uuid[]) AS id, unnest(@customer_ids::uuid[]) AS customer_id, unnest(@types::text[]) AS type,
             unnest(@ip_hashes::text[]) AS ip_hash, unnest(@occurred_ats::timestamptz[]) AS occurred_at) AS e;

-- name: CustomerEventList :many
-- CustomerEventList pages through a customer's events, most recent first (ties by id), of
-- one type when type is given, after the cursor event. Served by
-- customer_events_customer_idx (tenant_id, customer_id, type, occurred_at).
SELECT e.* FROM customer_events e
WHERE e.tenant_id = @tenant_id::uuid AND e.customer_id = @customer_id::uuid
  AND (sqlc.narg(type)::text IS NULL OR e.type = sqlc.narg(type)::text)
  AND (sqlc.narg(after)::uuid IS NULL OR (e.occurred_at, e.id) < (
        SELECT c.occurred_at, c.id FROM customer_events c
        WHERE c.tenant_id = @tenant_id::uuid AND c.id = sqlc.narg(after)::uuid))
ORDER BY e.occurred_at DESC, e.id DESC
LIMIT @row_limit::int;

-- name: CustomerBalanceList :many
-- CustomerBalanceList reads a customer's balance in every asset, zero where the customer
-- has no row yet, in the asset enum's order. No rows means the customer does not exist.
-- Primary keys of customers and balances.
SELECT a.asset::asset AS asset, coalesce(b.amount, 0)::bigint AS amount
FROM customers c
CROSS JOIN unnest(enum_range(NULL::asset)) AS a (asset)
LEFT JOIN balances b ON b.tenant_id = c.tenant_id AND b.customer_id = c.id AND b.asset = a.asset
WHERE c.tenant_id = @tenant_id::uuid AND c.id = @customer_id::uuid
ORDER BY a.asset;

-- name: CustomerSetAutoPay :one
-- CustomerSetAutoPay turns a customer's auto-pay on or off: with it, renewals take credits
-- then reward_sats before invoicing the rest. No row means the customer does not exist for
-- the tenant. Primary key.
UPDATE customers SET auto_pay = sqlc.arg(auto_pay)::boolean, updated_at = sqlc.arg(now)::timestamptz
WHERE tenant_id = sqlc.arg(tenant_id)::uuid AND id = sqlc.arg(id)::uuid
RETURNING *;
