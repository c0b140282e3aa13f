#!/usr/bin/env bash
# Three years in a sandbox: a sandbox tenant on its own clock sells a monthly
# subscription, paid at the sandbox's own checkout; its clock is advanced to the renewal, then
# past the grace days unpaid (the subscription lapses, the licence expires), the renewal is paid
# late, three years of renewals are paid from credits, and the cancel leaves a perpetual licence.
# The tenant and its key are made with the CLI, on Tessera's database: it reads DATABASE_URL and
# TESSERA_SECRET_KEY, by default make run's.
source "$(dirname "$0")/lib.sh"
export DATABASE_URL=${DATABASE_URL:-$("$ROOT/internal/devdb/devdb.sh" start)}
export TESSERA_SECRET_KEY=${TESSERA_SECRET_KEY:-$("$ROOT/internal/devdb/devdb.sh" secret)}

# advance BY: advance the sandbox's clock by BY (30d, 8d, 3y...); the answer counts what happened on the way.
advance() { admin POST /v1/admin/clock/advance '{"by":"'$1'"}'; }
# subscription: the buyer's subscription; validate [VERSION]: validate the licence key (for a build).
subscription() { admin GET "/v1/admin/subscriptions?customer_id=$CUSTOMER" | jq '.items[0]'; }
validate() { buyer POST /v1/licenses/validate "{\"key\":\"$LKEY\"${1:+,\"version\":\"$1\"}}"; }

# A sandbox tenant whose clock stands at 2030-01-01, and an admin key of it (tsk_test_...).
$BIN tenant create --slug sandbox-$RUN --name Sandbox --sandbox --clock 2030-01-01T00:00:00Z
KEY=$($BIN key create --tenant sandbox-$RUN --name walk-through)
admin GET /v1/admin/tenant | expect '.sandbox' '{slug, sandbox, clock}'

# A monthly subscription of 10,000 sats with 7 days of grace; cancelled after a year, it leaves a perpetual licence.
PRODUCT=$(admin POST /v1/admin/products '{"slug":"studio","name":"Studio"}' | jq -r .id)
admin POST /v1/admin/policies '{"product_id":"'$PRODUCT'","slug":"monthly","name":"Monthly","listed_currency":"SAT",
  "listed_value":10000,"is_recurring":true,"period_days":30,"grace_period_days":7,"perpetual_after_days":365}' |
  jq -c '{slug, period_days, grace_period_days, perpetual_after_days}'
CUSTOMER=$(admin POST /v1/admin/customers '{"email":"buyer@example.com"}' | jq -r .id)

# The buyer subscribes: the PayIn is invoiced at once at the sandbox's checkout, and paying there settles it.
PAYIN=$(buyer POST /v1/purchase '{"tenant":"sandbox-'$RUN'","policy":"monthly","customer_email":"buyer@example.com"}' | jq -r .id)
buyer GET /v1/payins/$PAYIN | expect '.invoice.checkout_url | startswith("/v1/sandbox/invoices/sbx_")' '{state, checkout_url: .invoice.checkout_url}'
buyer POST $(buyer GET /v1/payins/$PAYIN | jq -r .invoice.checkout_url)/pay | expect '.status == "Settled"' '{id, status, amount_sats}'
buyer GET /v1/payins/$PAYIN | expect '.state == "PAID"' '{state, license_key}'
LKEY=$(buyer GET /v1/payins/$PAYIN | jq -r .license_key)
validate | expect '.code == "VALID"' '{code, expires_at: .license.expires_at}'

# 30 days on: the renewal has started; its PayIn waits at the checkout, the subscription is past due.
advance 30d | expect '.renewals_started == 1' '{clock, renewals_started, renewals_paid}'
RENEWAL=$(admin GET "/v1/admin/payins?state=PENDING" | jq -r '.items[0].id')
buyer GET /v1/payins/$RENEWAL | expect '.type == "subscription_renewal" and .invoice.checkout_url != null' '{type, state, checkout_url: .invoice.checkout_url, expires_at: .invoice.expires_at}'
subscription | expect '.status == "past_due"' '{status, current_period_end}'

# 8 more days unpaid, past the 7 days of grace: the invoice has expired, the subscription lapsed and the licence expired.
advance 8d | expect '.subscriptions_lapsed == 1 and .licenses_expired == 1' '{clock, invoices_expired, subscriptions_lapsed, licenses_expired}'
subscription | expect '.status == "lapsed"' '{status}'
validate | expect '.code == "EXPIRED"' '{code, message}'

# The buyer pays the renewal late: a retry of its failed PayIn opens a new invoice; paid, the subscription is active again.
buyer GET /v1/payins/$RENEWAL | expect '.state == "FAILED"' '{state, failure_reason}'
RETRY=$(buyer POST /v1/payins/$RENEWAL/retry '{}' | jq -r .invoice.checkout_url)
buyer POST $RETRY/pay | expect '.status == "Settled"' '{id, status, amount_sats}'
subscription | expect '.status == "active"' '{status, current_period_end}'
validate | expect '.code == "VALID"' '{code, expires_at: .license.expires_at}'

# Three years of renewals, paid at once from the buyer's credits under auto-pay.
admin POST /v1/admin/customers/$CUSTOMER/credits '{"amount":1000000}' | jq -c '{balance_after}'
admin PUT /v1/admin/customers/$CUSTOMER/auto-pay '{"auto_pay":true}' | jq -c '{auto_pay}'
advance 3y | expect '.renewals_started == 36 and .renewals_paid == 36 and .subscriptions_lapsed == 0' '{clock, renewals_started, renewals_paid, subscriptions_lapsed}'
subscription | expect '.status == "active"' '{status, current_period_end}'

# Cancelled after more than a year, the subscription leaves a perpetual licence of the builds released until now, with its message.
admin POST /v1/admin/subscriptions/$(subscription | jq -r .id)/cancel | expect '.subscription.status == "cancelled" and .license.message != null' \
  '{status: .subscription.status, expires_at: .license.expires_at, subscription_expiration_date: .license.subscription_expiration_date, message: .license.message}'
validate | expect '.code == "VALID"' '{code, expires_at: .license.expires_at}'

# A build released a month later is not covered by it.
RELEASED=$(admin GET /v1/admin/tenant | jq -r '.clock | fromdate + 30 * 86400 | todate')
admin POST /v1/admin/products/$PRODUCT/releases '{"version":"9.0.0","released_at":"'$RELEASED'"}' | jq -c '{version, released_at}'
validate 9.0.0 | expect '.code == "BUILD_NOT_COVERED"' '{code, message}'
