#!/usr/bin/env bash
# Smoke-test a running test Swift (start.sh) through the container-keys protocol.
# Usage: smoke.sh [DIR]   (default /tmp/swiftdup-swift). Exits non-zero on any failure.
set -euo pipefail

DIR="${1:-/tmp/swiftdup-swift}"
# shellcheck source=/dev/null
source "$DIR/env"
C="$SWIFT_STORAGE_URL/$SWIFTDUP_TEST_CONTAINER"
FULL="X-Container-Meta-Full-Key: $SWIFTDUP_TEST_FULL_KEY"
READ="X-Container-Meta-Read-Key: $SWIFTDUP_TEST_READ_KEY"
failures=0
BODY=$(mktemp); trap 'rm -f "$BODY"' EXIT

# check DESCRIPTION EXPECTED_CODE_REGEX CURL_ARGS...: run curl, compare the status.
check() {
  local desc=$1 want=$2; shift 2
  local code
  code=$(curl -s -o "$BODY" -w '%{http_code}' --max-time 10 "$@") || code="curl-error"
  if [[ "$code" =~ ^($want)$ ]]; then
    echo "ok   $desc ($code)"
  else
    echo "FAIL $desc: got $code, want $want; body: $(head -c 200 "$BODY")"
    failures=$((failures + 1))
  fi
}
body_is() {  # the last response body must be exactly $2 (plus newline)
  if [ "$(cat "$BODY")" = "$2" ]; then echo "ok   $1"
  else echo "FAIL $1: body was '$(head -c 200 "$BODY")'"; failures=$((failures + 1)); fi
}

obj="$C/smoke-$$"
check "PUT object with full key"        201 -X PUT -H "$FULL" --data-binary 'hello swiftdup' "$obj"
check "GET object with full key"        200 -H "$FULL" "$obj"
body_is "GET returns the bytes written" 'hello swiftdup'
check "GET object with read key"        200 -H "$READ" "$obj"
check "HEAD object with read key"       200 -I -H "$READ" "$obj"
check "PUT object with read key refused" '401|403' -X PUT -H "$READ" --data-binary x "$C/smoke-ro-$$"
check "DELETE with read key refused"    '401|403' -X DELETE -H "$READ" "$obj"
check "wrong full key"                  401 -H 'X-Container-Meta-Full-Key: wrong' "$obj"
body_is "wrong key body" '401 Unauthorized: Auth Key invalid'
check "wrong read key"                  401 -H 'X-Container-Meta-Read-Key: wrong' "$obj"
check "rotated full key (Full-Key-1)"   200 -H "X-Container-Meta-Full-Key: $SWIFTDUP_TEST_ROTATED_KEY" "$obj"
check "JSON listing with a key"         200 -H "$READ" "$C?format=json&prefix=smoke-$$"
if grep -q "\"name\": *\"smoke-$$\"" "$BODY"; then echo "ok   listing names the object"
else echo "FAIL listing lacks smoke-$$: $(head -c 200 "$BODY")"; failures=$((failures + 1)); fi
check "other container's key is scoped" 401 -H "X-Container-Meta-Full-Key: $SWIFTDUP_TEST_OTHER_KEY" "$obj"
check "other container with its key"   '200|204' -H "X-Container-Meta-Full-Key: $SWIFTDUP_TEST_OTHER_KEY" \
  "$SWIFT_STORAGE_URL/$SWIFTDUP_TEST_OTHER_CONTAINER?format=json"
check "account GET with a key not 2xx"  '[013-9][0-9][0-9]' -H "$FULL" "$SWIFT_STORAGE_URL?format=json"
check "request without key"             401 "$obj"
check "DELETE object with full key"     204 -X DELETE -H "$FULL" "$obj"
check "GET after DELETE"                404 -H "$FULL" "$obj"
check "containerkeys in /info"          200 "${SWIFT_STORAGE_URL%/v1/*}/info"
if grep -q '"containerkeys": *{"max_keys_per_container": *3}' "$BODY"; then echo "ok   /info max_keys_per_container"
else echo "FAIL /info lacks containerkeys.max_keys_per_container"; failures=$((failures + 1)); fi

# Non-ASCII key (header bytes vs stored metadata are different str types in py3).
# Set up with the tempauth account (a token bypasses containerkeys), removed after.
TOKEN=$(curl -s -D - -o /dev/null -H "X-Storage-User: $SWIFT_USERNAME" \
  -H "X-Storage-Pass: $SWIFT_PASSWORD" "$SWIFT_AUTHURL" | tr -d '\r' \
  | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}') || true  # failures show below
U="$SWIFT_STORAGE_URL/swiftdup-smoke-utf8-$$"
check "create UTF-8 keyed container"    201 -X PUT -H "X-Auth-Token: $TOKEN" -H 'X-Container-Meta-Read-Key: clé-✓' "$U"
check "UTF-8 read key"                  204 -H 'X-Container-Meta-Read-Key: clé-✓' "$U"
check "UTF-8 read key, wrong"           401 -H 'X-Container-Meta-Read-Key: cle-✓' "$U"
check "remove UTF-8 container"          204 -X DELETE -H "X-Auth-Token: $TOKEN" "$U"

if [ "$failures" -ne 0 ]; then echo "smoke.sh: $failures check(s) failed"; exit 1; fi
echo "smoke.sh: all checks passed"
