#!/usr/bin/env bash
# Start a real single-replica Swift (Debian 12 swift 2.30.1) on 127.0.0.1 with the
# containerkeys middleware, create the test containers and write DIR/env.
# Usage: start.sh [DIR]   (default /tmp/swiftdup-swift; prerequisite: install.sh)
# Everything lives in DIR: config, rings, devices, logs, pids. Stop with stop.sh DIR.
set -euo pipefail
set +m  # no job control: background children stay non-leaders, so `setsid` execs
        # in place (no fork) and $! is the server's own pid.

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${1:-/tmp/swiftdup-swift}"
mkdir -p "$DIR" && DIR="$(cd "$DIR" && pwd)"
PY=/usr/bin/python3  # the Debian swift is importable only by the system python
# Skip setuptools' distutils shim and eventlet's greendns (dnspython) imports:
# they cost seconds per server start.
export SETUPTOOLS_USE_DISTUTILS=stdlib EVENTLET_NO_GREENDNS=yes
t0=$(date +%s.%N)

# Restart semantics: stop whatever this DIR started before, then start afresh.
"$HERE/stop.sh" "$DIR"
rm -rf "$DIR/srv" "$DIR/log" "$DIR/env" "$DIR"/*.ring.gz "$DIR"/*.conf
mkdir -p "$DIR/srv/d1" "$DIR/log"
: > "$DIR/pids"

# Five distinct free loopback ports (all held open together while choosing).
read -r P_ACC P_CON P_OBJ P_PROXY P_MC < <("$PY" -c '
import socket
s = [socket.socket() for _ in range(5)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

# --- configuration -----------------------------------------------------------
cat > "$DIR/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = swiftdup-test
[storage-policy:0]
name = Policy-0
default = yes
EOF

# Shared [DEFAULT]: loopback only, one process (workers = 0: no forked workers),
# don't drop to the "swift" user (it could not write DIR), plain directories as
# devices (no mount points, no fallocate). fallocate_reserve = 0: by default the
# account and container servers answer 507 once their disk is 99% full, and on a
# big shared CI disk 1% is gigabytes more than these tests write (a CI run failed on
# that with several GB free); a disk that is really full still fails with ENOSPC.
common() { cat <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $1
workers = 0
user = $(id -un)
swift_dir = $DIR
devices = $DIR/srv
mount_check = false
disable_fallocate = true
fallocate_reserve = 0
log_level = INFO
EOF
}
for kind in account container object; do
  port_var="P_${kind:0:3}"; port_var="${port_var^^}"
  { common "${!port_var}"
    printf '\n[pipeline:main]\npipeline = %s-server\n\n[app:%s-server]\nuse = egg:swift#%s\n' \
      "$kind" "$kind" "$kind"; } > "$DIR/$kind-server.conf"
done

# Proxy pipeline: containerkeys sits after `cache` (get_container_info uses memcache)
# and before tempauth: tempauth passes a request through untouched only if
# swift.authorize_override is already set; otherwise, for a tokenless request on an
# AUTH_ account, it installs its own (denying) swift.authorize. copy/dlo/
# versioned_writes are listed after tempauth (where the proxy would auto-insert them)
# so containerkeys sees a COPY as COPY and can refuse it for read keys.
{ common "$P_PROXY"; cat <<EOF

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats containerkeys tempauth copy dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:containerkeys]
paste.filter_factory = containerkeys:filter_factory
max_keys_per_container = 3

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$P_MC

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
EOF
} > "$DIR/proxy-server.conf"

"$PY" "$HERE/launch.py" rings "$DIR" account="$P_ACC" container="$P_CON" object="$P_OBJ"

# --- processes -----------------------------------------------------------------
# spawn NAME CMD...: own session (Swift servers answer SIGTERM by killing their
# process group), output to DIR/log/NAME.log, "NAME PID STARTTIME" to DIR/pids
# (the start time lets stop.sh tell our process from a later one reusing the pid).
spawn() {
  local name=$1; shift
  setsid "$@" >> "$DIR/log/$name.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$name $pid $(cut -d' ' -f22 "/proc/$pid/stat" 2>/dev/null || echo 0)" >> "$DIR/pids"
}
mc_user=(); [ "$(id -u)" -eq 0 ] && mc_user=(-u root)  # memcached refuses root without -u
spawn memcached memcached -l 127.0.0.1 -p "$P_MC" -U 0 "${mc_user[@]}"
for kind in account container object proxy; do
  spawn "$kind" "$PY" "$HERE/launch.py" serve "$DIR" "$DIR/$kind-server.conf" \
    "$kind-server" "$DIR/log/$kind.log"
done

fail() {
  echo "start.sh: $*" >&2
  echo "start.sh: free space where DIR is: $(df -h --output=avail,pcent "$DIR" | tail -n 1)" >&2
  for f in "$DIR"/log/*.log; do echo "--- $f (tail)" >&2; tail -n 20 "$f" >&2; done
  "$HERE/stop.sh" "$DIR" || true
  exit 1
}

# Bounded wait: every backend answers HTTP (any status) and the proxy's /info is 200.
PROXY="http://127.0.0.1:$P_PROXY"
deadline=$(( $(date +%s) + ${SWIFT_START_TIMEOUT:-30} ))
for url in "127.0.0.1:$P_ACC/" "127.0.0.1:$P_CON/" "127.0.0.1:$P_OBJ/" "$PROXY/info"; do
  until code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url") \
        && [ "$code" != 000 ] && { [ "$url" != "$PROXY/info" ] || [ "$code" = 200 ]; }; do
    while read -r name pid _; do
      kill -0 "$pid" 2>/dev/null || fail "$name (pid $pid) exited during start-up"
    done < "$DIR/pids"
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out waiting for $url"
    sleep 0.1
  done
done
curl -sf "$PROXY/info" | grep -q '"containerkeys"' || fail "containerkeys missing from /info"

# --- test containers (tempauth v1 auth; the token bypasses containerkeys) ---------
auth_headers=$(curl -sf -D - -o /dev/null -H 'X-Storage-User: test:tester' \
  -H 'X-Storage-Pass: testing' "$PROXY/auth/v1.0") || fail "tempauth login failed"
TOKEN=$(printf '%s' "$auth_headers" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}')
STORAGE_URL="$PROXY/v1/AUTH_test"
[ -n "$TOKEN" ] || fail "no X-Auth-Token from tempauth"
put_container() {  # NAME HEADER... ; 201 created (202 if it somehow existed)
  local name=$1; shift
  local args=() h code
  for h in "$@"; do args+=(-H "$h"); done
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "X-Auth-Token: $TOKEN" \
    "${args[@]}" "$STORAGE_URL/$name")
  [[ "$code" == 201 || "$code" == 202 ]] || fail "PUT container $name: HTTP $code"
}
put_container swiftdup-test 'X-Container-Meta-Full-Key: fullkey-AAAA' \
  'X-Container-Meta-Read-Key: readkey-BBBB' 'X-Container-Meta-Full-Key-1: fullkey-rotated-CCCC'
put_container swiftdup-other 'X-Container-Meta-Full-Key: otherkey-DDDD'

cat > "$DIR/env" <<EOF
export SWIFT_STORAGE_URL=$STORAGE_URL
export SWIFTDUP_TEST_CONTAINER=swiftdup-test
export SWIFTDUP_TEST_FULL_KEY=fullkey-AAAA
export SWIFTDUP_TEST_READ_KEY=readkey-BBBB
export SWIFTDUP_TEST_ROTATED_KEY=fullkey-rotated-CCCC
export SWIFTDUP_TEST_OTHER_CONTAINER=swiftdup-other
export SWIFTDUP_TEST_OTHER_KEY=otherkey-DDDD
export SWIFT_AUTHURL=$PROXY/auth/v1.0
export SWIFT_USERNAME=test:tester
export SWIFT_PASSWORD=testing
export SWIFT_AUTHVERSION=1
EOF
printf 'start.sh: Swift up at %s in %.1fs (env: %s/env, logs: %s/log)\n' \
  "$STORAGE_URL" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$DIR" "$DIR"
