# What every walk-through shares: source it. It reads where Tessera is from the environment,
# with the defaults of `make run`, and sets
#   API     Tessera's base URL: TESSERA_URL, default http://localhost:8080
#   KEY     an admin API key: TESSERA_ADMIN_KEY, default the one make run wrote to .tessera/admin-key
#   TENANT  that key's tenant: TESSERA_TENANT, default demo
#   BTCPAY  the fake BTCPay Server: FAKE_BTCPAY_URL, default http://127.0.0.1:8081
#   BIN     the tessera binary: TESSERA_BIN, default the one make run built, ./tessera
#   RUN     a suffix keeping this run's slugs and emails apart from earlier runs'
#   ROOT    the repository's directory
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
API=${TESSERA_URL:-http://localhost:8080}
KEY=${TESSERA_ADMIN_KEY:-$(cat "$ROOT/.tessera/admin-key")}
TENANT=${TESSERA_TENANT:-demo}
BTCPAY=${FAKE_BTCPAY_URL:-http://127.0.0.1:8081}
BIN=${TESSERA_BIN:-$ROOT/tessera}
RUN=$(date +%s)$RANDOM

# admin METHOD PATH [JSON]: an admin request; prints the answer, or fails with it on an error status.
admin() { request "$1" "$2" "${3:-}" -H "Authorization: Bearer $KEY"; }

# buyer METHOD PATH [JSON]: a buyer's request, with no admin key.
buyer() { request "$1" "$2" "${3:-}"; }

# request METHOD PATH JSON [CURL_ARGS...]: what admin and buyer send.
request() {
	local answer status
	answer=$(curl -sS -w '\n%{http_code}' -X "$1" -H "Content-Type: application/json" "${@:4}" "$API$2" ${3:+--data "$3"})
	status=${answer##*$'\n'}
	answer=${answer%$'\n'*}
	if ((status >= 400)); then
		echo "$1 $2: $status $answer" >&2
		return 1
	fi
	printf '%s\n' "$answer"
}

# expect TEST VIEW: print the JSON answer on stdin as the jq filter VIEW shows it, and fail
# unless the jq condition TEST holds of it.
expect() {
	local answer
	answer=$(cat)
	jq -c "$2" <<<"$answer"
	if ! jq -e "$1" <<<"$answer" >/dev/null; then
		echo "expected $1 of $answer" >&2
		return 1
	fi
}

# await WHAT COMMAND...: run COMMAND every half second until it succeeds, for at most two minutes.
await() {
	local what=$1
	shift
	for _ in $(seq 240); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.5
	done
	echo "timed out waiting for $what" >&2
	return 1
}

# payin_is ID STATE: whether the PayIn is in STATE (PENDING once its invoice exists, PAID, ...).
payin_is() { buyer GET "/v1/payins/$1" | jq -e --arg state "$2" '.state == $state'; }

# pay ID: pay the PayIn's invoice in full on the fake BTCPay, which sends Tessera the signed
# webhook (a buyer would open the checkout URL instead), and wait until the PayIn is PAID.
pay() {
	await "the invoice of PayIn $1" payin_is "$1" PENDING
	local invoice
	invoice=$(buyer GET "/v1/payins/$1" | jq -r .invoice.invoice_id)
	curl -sS --fail-with-body -X POST "$BTCPAY/fake/invoices/$invoice/settle" | jq -c '{invoice: .invoice.id, status: .invoice.status}'
	await "PayIn $1 to be paid" payin_is "$1" PAID
}

# build_receiver DIR: build examples/webhook-receiver into DIR.
build_receiver() { go build -C "$ROOT" -o "$1/webhook-receiver" ./examples/webhook-receiver; }

# receiver ADDR SECRET COUNT DIR: run the receiver built into DIR in the background on ADDR with
# the endpoint's SECRET; it writes each verified event to DIR/events and exits after COUNT of
# them. RECEIVER_PID is its process.
receiver() {
	WEBHOOK_SECRET=$2 "$4/webhook-receiver" -addr "$1" -count "$3" >"$4/events" &
	RECEIVER_PID=$!
	await "the webhook receiver" curl -s "http://$1/"
}
