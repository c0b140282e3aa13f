#!/usr/bin/env bash
# Upstream revocation against the fake store: licences sold by a Jinxxy-style store are imported,
# one is refunded at the store, and Tessera's background checks find it gone, revoke it and send
# license.upstream_revoked to a webhook receiver. Checks run once per TESSERA_REVOCATION_INTERVAL
# (60s by default: start Tessera with `TESSERA_REVOCATION_INTERVAL=5s make run` to watch it).
source "$(dirname "$0")/lib.sh"
STORE_ADDR=${FAKE_STORE_ADDR:-127.0.0.1:9090}
RECEIVER=${WEBHOOK_RECEIVER_ADDR:-127.0.0.1:9092}
TMP=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  if [ -n "${ENDPOINT_ID:-}" ]; then admin DELETE /v1/admin/webhook-endpoints/$ENDPOINT_ID >/dev/null; fi
  if [ -n "${STORE:-}" ]; then admin PATCH /v1/admin/upstream-stores/$STORE '{"enabled":false}' >/dev/null; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
build_receiver "$TMP"

# A fake store selling 3 licences, and the file that imports them (one JSON row per line).
$BIN fake-store --addr $STORE_ADDR &
await "the fake store" curl -sf http://$STORE_ADDR/_fake/licenses
for n in 1 2 3; do
  curl -sS --fail-with-body -X PUT http://$STORE_ADDR/_fake/licenses/lic-$RUN-$n
  echo '{"external_license_id":"lic-'$RUN-$n'","owner":"user-'$RUN-$n'","acquired_at":"'$(date -u -d "$n days ago" +%FT%TZ)'",
    "activations":[{"fingerprint":"fp-'$RUN-$n'"}]}' | jq -c .
done >"$TMP/licences.ndjson"

PRODUCT=$(admin POST /v1/admin/products '{"slug":"app-'$RUN'","name":"App"}' | jq -r .id)
POLICY=$(admin POST /v1/admin/policies '{"product_id":"'$PRODUCT'","slug":"store-'$RUN'","name":"Store",
  "listed_currency":"USD","listed_value":500,"is_recurring":false}' | jq -r .id)
STORE=$(admin POST /v1/admin/upstream-stores '{"kind":"jinxxy","name":"Fake","base_url":"http://'$STORE_ADDR'",
  "api_key":"demo-store-key","policy_id":"'$POLICY'","revoke_on_gone":true}' | jq -r .id)
# (for a large file: tessera import licenses --tenant demo --store $STORE FILE, with the database's settings)
curl -sS --fail-with-body -H "Authorization: Bearer $KEY" -H "Content-Type: application/x-ndjson" \
  "$API/v1/admin/upstream-stores/$STORE/imports" --data-binary @"$TMP/licences.ndjson" | jq -c .

# A refund at the store: nobody tells Tessera.
curl -sS --fail-with-body -X DELETE http://$STORE_ADDR/_fake/licenses/lic-$RUN-2 >/dev/null

# Checks run for tenants listening to license.upstream_revoked: a receiver verifies the event.
ENDPOINT=$(admin POST /v1/admin/webhook-endpoints '{"url":"http://'$RECEIVER'/tessera","event_types":["license.upstream_revoked"]}')
ENDPOINT_ID=$(jq -r .id <<<"$ENDPOINT")
receiver $RECEIVER "$(jq -r .secret <<<"$ENDPOINT")" 1 "$TMP"
admin GET "/v1/admin/revocation/queue?limit=3" | jq -c '.items[] | {external_license_id, score}'

# Within a few intervals the refunded licence is checked, found gone and revoked.
LICENSE=$(admin GET "/v1/admin/licenses?policy_id=$POLICY" | jq -r '.items[] | select(.external_license_id == "lic-'$RUN'-2") | .id')
revoked() { admin GET /v1/admin/licenses/$LICENSE | jq -e '.status == "revoked"'; }
await "licence 2 to be revoked" revoked
admin GET /v1/admin/licenses/$LICENSE/checks | jq -c '.items[] | {outcome, upstream_status}'
await "the receiver to verify the event" bash -c "! kill -0 $RECEIVER_PID"
cut -d' ' -f3- "$TMP/events" | jq -c '{type, data}'
curl -sS http://$STORE_ADDR/_fake/licenses | jq -c '{requests}'
