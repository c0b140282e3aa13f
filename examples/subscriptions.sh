#!/usr/bin/env bash
# A subscription and its tier changes: two monthly tiers of one product, a Standard subscription
# bought and paid, a prorated upgrade to Pro paid on the fake BTCPay (same licence key), a
# downgrade scheduled for the next renewal and cancelled, and the subscription cancelled.
source "$(dirname "$0")/lib.sh"

PRODUCT=$(admin POST /v1/admin/products '{"slug":"studio-'$RUN'","name":"Studio"}' | jq -r .id)
for tier in 'standard 1 1000 ["export"]' 'pro 2 3000 ["export","batch"]'; do
  read -r slug rank price entitlements <<<"$tier"
  admin POST /v1/admin/policies '{"product_id":"'$PRODUCT'","slug":"'$slug-$RUN'","name":"'$slug'","tier_rank":'$rank',
    "listed_currency":"USD","listed_value":'$price',"is_recurring":true,"period_days":30,"grace_period_days":3,
    "max_machines":2,"entitlements":'$entitlements'}' | jq -c '{slug, tier_rank, listed_value, period_days}'
done

admin POST /v1/admin/customers '{"email":"subscriber-'$RUN'@example.com"}' | jq -c '{email}'

# The buyer subscribes to Standard ($10.00 every 30 days) and pays; the licence comes with its subscription.
PAYIN=$(buyer POST /v1/purchase '{"tenant":"'$TENANT'","policy":"standard-'$RUN'","customer_email":"subscriber-'$RUN'@example.com"}' | jq -r .id)
pay $PAYIN
LKEY=$(buyer GET /v1/payins/$PAYIN | jq -r .license_key)
buyer POST /v1/licenses/validate '{"key":"'$LKEY'"}' | jq -c '{code, tier: .license.policy_slug, subscription: .license.subscription_status}'

# Upgrade to Pro: the difference per day over the 30 days left, 2000 cents, paid now.
buyer POST /v1/upgrade-quote '{"key":"'$LKEY'","policy":"pro-'$RUN'"}' | jq -c '{direction, charge, effective, remaining_days}'
UPAY=$(buyer POST /v1/upgrade '{"key":"'$LKEY'","policy":"pro-'$RUN'"}' | jq -r .payin.id)
pay $UPAY
buyer POST /v1/licenses/validate '{"key":"'$LKEY'","entitlement":"batch"}' | jq -c '{code, tier: .license.policy_slug}'   # VALID, pro: same key

# A downgrade is free and waits for the next renewal; until then it can be cancelled.
buyer POST /v1/downgrade '{"key":"'$LKEY'","policy":"standard-'$RUN'"}' | jq -c '{kind, status, effective_at}'
buyer POST /v1/downgrade/cancel '{"key":"'$LKEY'"}' | jq -c '{kind, status}'

# Cancel the subscription: without a perpetual fallback the licence expires at the end of the paid period.
buyer POST /v1/subscriptions/cancel '{"key":"'$LKEY'"}' | jq -c '{status: .subscription.status, cancelled_at: .subscription.cancelled_at}'
buyer POST /v1/licenses/validate '{"key":"'$LKEY'"}' | jq -c '{code, subscription: .license.subscription_status, expires_at: .license.expires_at}'
