#!/usr/bin/env bash
# Buy a licence as a buyer would: the seller creates a product, a policy and a customer; the
# buyer purchases, pays the invoice on the fake BTCPay, validates the key and activates a machine.
source "$(dirname "$0")/lib.sh"

PRODUCT=$(admin POST /v1/admin/products '{"slug":"resizer-'$RUN'","name":"Resizer"}' | jq -r .id)
admin POST /v1/admin/policies '{"product_id":"'$PRODUCT'","slug":"pro-'$RUN'","name":"Pro",
  "listed_currency":"USD","listed_value":2500,"is_recurring":false,"max_machines":3,"entitlements":["export"]}' | jq -c '{slug, listed_value}'
admin POST /v1/admin/customers '{"email":"buyer-'$RUN'@example.com"}' | jq -c '{email}'

# The buyer (no key): $25.00 at the fake's $50,000/BTC is 50,000 sats.
PAYIN=$(buyer POST /v1/purchase '{"tenant":"'$TENANT'","policy":"pro-'$RUN'","customer_email":"buyer-'$RUN'@example.com"}' | jq -r .id)
await "the invoice" payin_is $PAYIN PENDING
buyer GET /v1/payins/$PAYIN | jq -c '{state, cost_sats, checkout: .invoice.checkout_url}'

# Pay it on the fake BTCPay (or open the checkout URL and press "Mark paid"): it sends the signed webhook.
pay $PAYIN
LKEY=$(buyer GET /v1/payins/$PAYIN | jq -r .license_key)
buyer POST /v1/licenses/validate '{"key":"'$LKEY'","entitlement":"export"}' | jq -c '{valid, code}'
buyer POST /v1/machines/activate '{"key":"'$LKEY'","fingerprint":"laptop-'$RUN'"}' | jq -c '{fingerprint}'
buyer POST /v1/licenses/validate '{"key":"'$LKEY'","fingerprint":"laptop-'$RUN'"}' | jq -c '{valid, code}'
