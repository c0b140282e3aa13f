#!/usr/bin/env bash
# Webhooks with a signature check: a receiver (examples/webhook-receiver) verifies every
# delivery with the endpoint's secret; a licence issued and a machine activated reach it
# signed, a forged request is refused, and the deliveries are listed as succeeded.
source "$(dirname "$0")/lib.sh"
RECEIVER=${WEBHOOK_RECEIVER_ADDR:-127.0.0.1:9092}
TMP=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  if [ -n "${ENDPOINT_ID:-}" ]; then admin DELETE /v1/admin/webhook-endpoints/$ENDPOINT_ID >/dev/null; fi   # nothing left to send
  rm -rf "$TMP"
}
trap cleanup EXIT
build_receiver "$TMP"

ENDPOINT=$(admin POST /v1/admin/webhook-endpoints '{"url":"http://'$RECEIVER'/tessera",
  "event_types":["license.issued","machine.activated"]}')   # make run allows loopback URLs
ENDPOINT_ID=$(jq -r .id <<<"$ENDPOINT")
# The receiver knows the endpoint's secret (shown once, when the endpoint is created).
receiver $RECEIVER "$(jq -r .secret <<<"$ENDPOINT")" 2 "$TMP"
curl -s -o /dev/null -w 'a forged request: %{http_code}\n' http://$RECEIVER/tessera -H 'webhook-id: msg_forged' \
  -H "webhook-timestamp: $(date +%s)" -H 'webhook-signature: v1,Zm9yZ2Vk' -d '{"type":"license.issued"}'

# Two events: a licence issued, then a machine activated on it.
PRODUCT=$(admin POST /v1/admin/products '{"slug":"hooks-'$RUN'","name":"Hooks"}' | jq -r .id)
POLICY=$(admin POST /v1/admin/policies '{"product_id":"'$PRODUCT'","slug":"hooks-'$RUN'","name":"Hooks",
  "listed_currency":"USD","listed_value":900,"is_recurring":false}' | jq -r .id)
CUSTOMER=$(admin POST /v1/admin/customers '{"email":"hooks-'$RUN'@example.com"}' | jq -r .id)
LICENSE=$(admin POST /v1/admin/licenses '{"policy_id":"'$POLICY'","customer_id":"'$CUSTOMER'"}' | jq -r .id)
admin POST /v1/admin/licenses/$LICENSE/machines '{"fingerprint":"desktop-'$RUN'"}' >/dev/null

# The receiver exits once it has verified both; each is one JSON line after its webhook-id.
await "the receiver to verify two events" bash -c "! kill -0 $RECEIVER_PID"
cut -d' ' -f3- "$TMP/events" | jq -c '{type, data}'
delivered() { admin GET "/v1/admin/webhook-deliveries?endpoint_id=$ENDPOINT_ID&state=succeeded" | jq -e '.items | length == 2'; }
await "both deliveries to be recorded as succeeded" delivered
admin GET "/v1/admin/webhook-deliveries?endpoint_id=$ENDPOINT_ID" | jq -c '.items[] | {event_type, state, attempts, last_status}'
