#!/usr/bin/env bash
# Referral rewards: a referrer whose three referred customers subscribe to a qualifying policy
# earns a bonus of 5 machines and the verified_referrer badge; a fourth referral sharing the
# referrer's IP hash does not count. The recompute runs as a background job after each change.
source "$(dirname "$0")/lib.sh"

# Count referrals at once (the default cooldown is 7 days); 3 per batch, 5 machines per batch.
admin PATCH /v1/admin/referrals/settings '{"cooldown_days":0,"batch_size":3,"bonus_per_batch":5}' | jq -c '{cooldown_days, batch_size, bonus_per_batch}'
PRODUCT=$(admin POST /v1/admin/products '{"slug":"notes-'$RUN'","name":"Notes"}' | jq -r .id)
POLICY=$(admin POST /v1/admin/policies '{"product_id":"'$PRODUCT'","slug":"monthly-'$RUN'","name":"Monthly",
  "listed_currency":"USD","listed_value":500,"is_recurring":true,"period_days":30,"max_machines":1,
  "qualifies_for_referrals":true}' | jq -r .id)

# customer EMAIL IP_HASH [REFERRER]: a verified customer, registered from IP_HASH, subscribed to the policy.
customer() {
  local id
  id=$(admin POST /v1/admin/customers '{"email":"'$1'","is_verified":true'${3:+',"referred_by":"'$3'"'}'}' | jq -r .id)
  admin POST /v1/admin/customers/$id/events '{"type":"registered","ip_hash":"'$2'"}' >/dev/null
  admin POST /v1/admin/subscriptions '{"customer_id":"'$id'","policy_id":"'$POLICY'"}' >/dev/null
  echo $id
}
REFERRER=$(customer referrer-$RUN@example.com ip-referrer-$RUN)
for friend in 1 2 3; do customer friend$friend-$RUN@example.com ip-friend$friend-$RUN $REFERRER >/dev/null; done
customer flatmate-$RUN@example.com ip-referrer-$RUN $REFERRER >/dev/null   # the referrer's own IP: shared

# The live snapshot, then the stored reward once the recompute job has run.
admin GET /v1/admin/customers/$REFERRER/referrals | jq -c '{referred_total, qualified_total, disqualified_shared_ip, bonus_units, badge}'
rewarded() { admin GET /v1/admin/customers/$REFERRER/referrals | jq -e '.stored_bonus_units == 5'; }
await "the referral recompute" rewarded

# The referrer's licence now allows 1 + 5 machines.
LICENSE=$(admin GET "/v1/admin/licenses?customer_id=$REFERRER" | jq -r '.items[0].id')
LKEY=$(admin GET /v1/admin/licenses/$LICENSE | jq -r .key)
buyer POST /v1/licenses/validate '{"key":"'$LKEY'"}' | jq -c '{code, max_machines: .license.max_machines, bonus: .license.referral_bonus_machines}'
admin GET /v1/admin/referrals/leaderboard | jq -c '.items[] | select(.customer_id == "'$REFERRER'") | {email, qualified_total, bonus_units, badge}'
