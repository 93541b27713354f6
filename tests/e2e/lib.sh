# shellcheck shell=bash disable=SC2034  # (constants below are for the test scripts)
# lib.sh - helpers for natkeeper's end-to-end tests; source it from a test script:
#
#   . "$(dirname "$0")/lib.sh"
#   e2e_init "$@"            # root or skip (77); $1 = natkeeper binary -> $NK
#   lab_begin                # own lab (unique prefix + state dir), torn down on any exit
#                            # (lab_begin double, or LAB_TOPOLOGY=double: CGNAT in front)
#   nk_run once --once --json; assert_rc 0      # stdout in $NK_OUT, exit status in $NK_RC
#   expect_reaches udp:7076 tcp:15063 || fail "..."
#   nk_service_start -v; wait_log 10 'REGEX' || fail "..."   # natkeeper as a service
#   gw_reboot; gw_wait_rule_count 108 20 || fail "..."       # faults of the gateway
#   lab_begin_doorbell; doorbell_listen; expect_doorbell_reaches udp:7076 || fail "..."
#                            # (instead of lab_begin) a Ring doorbell on the LAN to map for
#   gw_stop_miniupnpd; scripted_igd_start --finite-lease-error 725   # a quirky router instead
#   e2e_pass
#
# Conventions: every check prints one line ("ok: ..."); `fail MSG` prints MSG, the last
# natkeeper output and the gateway's log tail, and exits 1. Bounded everywhere: natkeeper
# runs under `timeout`, probes wait at most 2 s, polls have a maximum count.
# Bash >= 5 (EPOCHREALTIME). No `set -e`: steps are checked explicitly.

set -u -o pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_SH=$E2E_DIR/lab.sh
PROBE_PY=$E2E_DIR/probe.py
# the distribution's python3 if present (a pyenv shim is slow and may differ)
if [ -z "${PYTHON:-}" ]; then
  if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
TEST_NAME=$(basename "$0" .sh)
NK_TIMEOUT=${NK_TIMEOUT:-60}      # seconds any single natkeeper run may take
NK_SVC_TIMEOUT=${NK_SVC_TIMEOUT:-300}   # seconds natkeeper may run as a service
E2E_CHECKS=0
E2E_T0=${EPOCHREALTIME//[!0-9]/}

# The built-in "Ring" profile: 4 + 2*2 + 100 = 108 mappings.
RING_SPECS="udp:7076 udp:7077 udp:9078 udp:9079 tcp+udp:15063 tcp+udp:15064 udp:16500-16599"
RING_COUNT=108
# what is probed of it: every non-RTP port and the first and last RTP port
RING_PROBE=(udp:7076 udp:7077 udp:9078 udp:9079 udp:15063 udp:15064 udp:16500 udp:16599 tcp:15063 tcp:15064)
LAN_HOST=10.77.0.2 LAN_GW=10.77.0.1 WAN_GW=203.0.113.1
# The lab's addresses, as seen from the internet (ns wan):
#   PUBLIC_IP   where the internet reaches the lab: gw's wan0 (single) or the ISP's (double);
#               expect_reaches/expect_blocked send there
#   GW_EXT_IP   the gateway's own external address, what it reports (set by lab_begin:
#               203.0.113.1 single, 100.64.0.2 double)
#   REFLECTOR, REFLECTOR_B  natkeeper-reflector's two endpoints in ns wan (UDP+TCP), once
#               started (LAB_REFLECTOR=PATH before lab_begin, or lab_start_reflector PATH)
#   STUN, STUN_B  coturn in ns wan (RFC 5780: other address STUN_B, alternate port 3479)
#   ISP_STUN    coturn inside the ISP (double only; what miniupnpd's startup check uses)
PUBLIC_IP=203.0.113.1 GW_EXT_IP=203.0.113.1
REFLECTOR=203.0.113.2:7000 REFLECTOR_B=203.0.113.3:7000
STUN=203.0.113.2:3478 STUN_B=203.0.113.3:3479 ISP_STUN=100.64.0.1:3478

now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }
say() { printf '%s\n' "$*"; }

# ---- verdicts --------------------------------------------------------------------------
pass() { E2E_CHECKS=$((E2E_CHECKS + 1)); say "ok: $*"; }

fail() {
  say "FAIL: $TEST_NAME: $*"
  e2e_diagnostics
  exit 1
}

e2e_pass() {
  say "PASS: $TEST_NAME ($E2E_CHECKS checks, $((($(now_us) - E2E_T0) / 1000)) ms)"
  exit 0
}

_show_tails() {   # FILE...: the last lines of each non-empty one
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    say "--- ${f##*/} (last 40 lines, cut at 1500 columns)"
    tail -n 40 "$f" | cut -c1-1500
  done
}

e2e_diagnostics() {
  local f
  if [ -n "${NK_LAST:-}" ]; then
    say "--- last natkeeper run: natkeeper ${NK_LAST_ARGS:-} (exit ${NK_RC:-?}, ${NK_MS:-?} ms)"
    _show_tails "$NK_OUT" "$NK_ERR"
  fi
  if [ -n "${NK_SVC_ERR:-}" ]; then
    if nk_service_running; then f="running, pid $NK_SVC_PID"
    else f="exit status $(cat "$_NK_SVC_RCFILE" 2>/dev/null || echo '?')"; fi
    say "--- natkeeper service: natkeeper $NK_SVC_ARGS ($f)"
    _show_tails "$NK_SVC_OUT" "$NK_SVC_ERR"
  fi
  if [ -n "${LAB_STATE:-}" ] && [ -s "$LAB_STATE/miniupnpd.log" ]; then
    # table_cb lines (one per existing rule per change) drown everything else
    say "--- $LAB_STATE/miniupnpd.log (last 40 lines, table_cb lines left out)"
    grep -v 'table_cb' "$LAB_STATE/miniupnpd.log" | tail -n 40
  fi
  if [ -n "${LAB_STATE:-}" ] && [ -s "$LAB_STATE/scripted-igd.log" ]; then
    say "--- $LAB_STATE/scripted-igd.log (last 40 lines, cut at 400 columns)"
    tail -n 40 "$LAB_STATE/scripted-igd.log" | cut -c1-400
  fi
  if [ -n "${LAB_STATE:-}" ] && [ -s "$LAB_STATE/reflector.log" ]; then
    say "--- $LAB_STATE/reflector.log (last 20 lines)"
    tail -n 20 "$LAB_STATE/reflector.log"
  fi
  if [ -n "${LAB_PREFIX:-}" ]; then
    say "--- lab status"
    "$LAB_SH" status 2>&1 | sed 's/^/  /'
  fi
  say "---"
}

# assert_eq ACTUAL EXPECTED WHAT
assert_eq() {
  [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
  pass "$3 = $1"
}
# assert_rc EXPECTED [WHAT]   (checks the last nk_run)
assert_rc() {
  [ "${NK_RC:-}" = "$1" ] || fail "${2:-natkeeper ${NK_LAST_ARGS:-}} exited ${NK_RC:-?}, expected $1"
  pass "${2:-natkeeper ${NK_LAST_ARGS:-}} exited $1 (${NK_MS} ms)"
}

# ---- setup -----------------------------------------------------------------------------
# e2e_init "$@": skip (77) unless root; NK = absolute path of the natkeeper binary ($1).
e2e_init() {
  e2e_init_lab_only
  if [ $# -lt 1 ] || [ -z "$1" ]; then say "usage: $0 PATH/TO/natkeeper"; exit 64; fi
  if [ ! -f "$1" ] || [ ! -x "$1" ]; then fail "natkeeper binary '$1' does not exist or is not executable"; fi
  NK=$(realpath "$1")
}
# e2e_init_lab_only: the same without a natkeeper binary (lab self-tests)
e2e_init_lab_only() {
  if [ "$(id -u)" != 0 ]; then
    say "SKIP: $TEST_NAME needs root (network namespaces)"
    exit 77
  fi
  local t
  for t in ip nft ss timeout turnserver setsid realpath; do
    command -v "$t" >/dev/null || fail "missing command '$t' (see contrib/install-deps.sh)"
  done
  [ -x /usr/sbin/miniupnpd ] || fail "missing /usr/sbin/miniupnpd (package miniupnpd-nftables)"
  "$PYTHON" -c 'import json, selectors' 2>/dev/null || fail "no usable python3 ($PYTHON)"
}

# lab_begin [single|double]: a lab of our own: unique prefix and state dir under
# ${TMPDIR:-/tmp}, torn down on every exit (EXIT/INT/TERM trap) and - should this shell be
# SIGKILLed, e.g. by a ctest timeout - by a detached reaper that notices the test shell is
# gone. The topology: the argument, else $LAB_TOPOLOGY, else single (see lab.sh's header).
# With LAB_REFLECTOR=PATH set, the reflector is started in ns wan as well.
# Sets LAB_PREFIX LAB_STATE LAB_TOPOLOGY (exported), LAB_NS_{LAN,GW,ISP,WAN}, GW_EXT_IP.
# shellcheck disable=SC2120  # (the argument is optional)
lab_begin() {
  local base=${TMPDIR:-/tmp}
  LAB_TOPOLOGY=${1:-${LAB_TOPOLOGY:-single}}
  case "$LAB_TOPOLOGY" in
    single) GW_EXT_IP=203.0.113.1 ;;
    double) GW_EXT_IP=100.64.0.2 ;;
    *) fail "lab topology '$LAB_TOPOLOGY' is neither single nor double" ;;
  esac
  export LAB_TOPOLOGY
  LAB_STATE=$(mktemp -d "$base/natkeeper-e2e.XXXXXXXX") || fail "cannot create a state dir in $base"
  # the mktemp suffix is [A-Za-z0-9] and unique while the directory exists
  LAB_PREFIX=nk${LAB_STATE##*.}
  export LAB_PREFIX LAB_STATE
  LAB_NS_LAN=$("$LAB_SH" ns lan) LAB_NS_GW=$("$LAB_SH" ns gw) LAB_NS_WAN=$("$LAB_SH" ns wan)
  LAB_NS_ISP=$("$LAB_SH" ns isp)
  trap lab_end EXIT
  trap 'lab_end 130' INT
  trap 'lab_end 143' TERM
  ( setsid "$LAB_SH" reap-after $$ </dev/null >>"$LAB_STATE/reaper.log" 2>&1 & )
  local t0; t0=$(now_us)
  if ! "$LAB_SH" up >"$LAB_STATE/up.log" 2>&1; then
    cat "$LAB_STATE/up.log"
    fail "lab did not come up"
  fi
  LAB_UP_MS=$((($(now_us) - t0) / 1000))
  say "lab $LAB_PREFIX ($LAB_TOPOLOGY) up in $LAB_UP_MS ms (state $LAB_STATE)"
  if [ -n "${LAB_REFLECTOR:-}" ]; then lab_start_reflector "$LAB_REFLECTOR"; fi
}

# lab_start_reflector PATH [ARG...]: run PATH --listen $REFLECTOR --listen $REFLECTOR_B
# [ARG...] in ns wan (log $LAB_STATE/reflector.log); returns once it listens on UDP and TCP
# on both (at most 5 s), fails the test otherwise. Stopped with the lab, or by
# lab_stop_reflector. Calling it again with the same PATH while it runs does nothing.
lab_start_reflector() {
  [ -n "${1:-}" ] || fail "lab_start_reflector: no reflector binary given"
  local t0; t0=$(now_us)
  if ! "$LAB_SH" reflector-start "$@" 2>>"$LAB_STATE/lab.log"; then
    tail -n 25 "$LAB_STATE/lab.log"
    fail "reflector $1 did not come up"
  fi
  say "reflector up on $REFLECTOR and $REFLECTOR_B in $((($(now_us) - t0) / 1000)) ms"
}
lab_stop_reflector() {
  "$LAB_SH" reflector-stop 2>>"$LAB_STATE/lab.log" || fail "lab.sh reflector-stop failed"
}

# lab_end [STATUS]: tear the lab down (idempotent); keep the state dir when the test failed
# (or LAB_KEEP=1), remove it otherwise; exit with STATUS (default: the exit status so far).
lab_end() {
  local rc=${1:-$?} pid i
  trap - EXIT INT TERM
  if [ -n "${LAB_STATE:-}" ] && [ -d "$LAB_STATE" ]; then
    # our processes in the lab first (`down` would end them too, less gently)
    nk_service_stop 3 >/dev/null 2>&1
    notices_stop
    "$LAB_SH" down >>"$LAB_STATE/down.log" 2>&1 || say "warning: lab down failed, see $LAB_STATE/down.log"
    # then stop the reaper (after `down`: should this shell be killed meanwhile, the
    # reaper still finishes the job); by PID, checking its comm
    pid=$(cat "$LAB_STATE/reaper.pid" 2>/dev/null) || pid=
    for ((i = 0; i < 50; i++)); do   # it may not have written its pid yet
      [ -n "$pid" ] && break
      sleep 0.02; pid=$(cat "$LAB_STATE/reaper.pid" 2>/dev/null) || pid=
    done
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = lab.sh ]; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
    if [ "$rc" = 0 ] && [ "${LAB_KEEP:-0}" != 1 ]; then
      rm -rf -- "$LAB_STATE"
    else
      say "lab state kept in $LAB_STATE"
    fi
  fi
  exit "$rc"
}

# ---- running things in the lab ---------------------------------------------------------
in_lan() { ip netns exec "$LAB_NS_LAN" "$@"; }
in_gw() { ip netns exec "$LAB_NS_GW" "$@"; }
in_wan() { ip netns exec "$LAB_NS_WAN" "$@"; }
# in_isp CMD...: in the ISP's namespace (double topology only)
in_isp() {
  [ "${LAB_TOPOLOGY:-single}" = double ] || fail "in_isp: this lab is not the double topology"
  ip netns exec "$LAB_NS_ISP" "$@"
}

# nk_run NAME ARGS...: run natkeeper in the lan namespace, bounded by NK_TIMEOUT.
# stdout -> $NK_OUT ($LAB_STATE/nk-NAME.out), stderr -> $NK_ERR; sets NK_RC and NK_MS.
# Returns 0 (the exit status is in NK_RC), so that `nk_run ...; assert_rc 0` reads well.
nk_run() {
  local name=$1 t0; shift
  NK_LAST=$name NK_LAST_ARGS="$*"
  NK_OUT=$LAB_STATE/nk-$name.out NK_ERR=$LAB_STATE/nk-$name.err
  say "run: natkeeper $*"
  t0=$(now_us)
  timeout -k 2 "$NK_TIMEOUT" ip netns exec "$LAB_NS_LAN" "$NK" "$@" </dev/null >"$NK_OUT" 2>"$NK_ERR"
  NK_RC=$?
  NK_MS=$((($(now_us) - t0) / 1000))
  [ "$NK_RC" = 124 ] && fail "natkeeper $* did not finish within $NK_TIMEOUT s"
  return 0
}

# ---- waiting ---------------------------------------------------------------------------
# _secs_us SECONDS (N or N.N) -> microseconds
_secs_us() {
  local f
  [[ $1 =~ ^([0-9]{1,5})(\.([0-9]{1,6}))?$ ]] || return 1
  f=${BASH_REMATCH[3]}000000
  echo $((10#${BASH_REMATCH[1]} * 1000000 + 10#${f:0:6}))
}
# wait_for SECONDS CMD...: run CMD (in this shell) every 50 ms until it succeeds; 1 once
# SECONDS have passed (by the clock and by count). Prints nothing.
wait_for() {
  local us end i
  us=$(_secs_us "$1") || fail "wait_for: bad SECONDS '$1'"
  shift
  end=$(($(now_us) + us))
  for ((i = 0; i <= us / 50000 + 1; i++)); do
    "$@" && return 0
    [ "$(now_us)" -lt "$end" ] || return 1
    sleep 0.05
  done
  return 1
}
# _find_after FILE MARK REGEX: the first line after line MARK of FILE that matches REGEX
# (grep -E) -> _FOUND_LINE, _FOUND_AT (its line number)
_find_after() {
  local hit
  hit=$(grep -nE -m1 -- "$3" < <(tail -n "+$(($2 + 1))" "$1" 2>/dev/null)) || return 1
  _FOUND_AT=$(($2 + ${hit%%:*})) _FOUND_LINE=${hit#*:}
}

# ---- natkeeper as a long-running service, in the lan namespace --------------------------
# nk_service_start ARGS...: start "$NK" ARGS in ns lan in the background under `timeout`
# (NK_SVC_TIMEOUT, 300 s), as systemd would: STATE_DIRECTORY=$NK_STATE_DIR (kept from one
# start to the next, like a StateDirectory) and RUNTIME_DIRECTORY=$NK_RUNTIME_DIR (emptied
# at each start). stdout -> $NK_SVC_OUT, stderr -> $NK_SVC_ERR (nk-svc-N.out/.err in
# $LAB_STATE, N counting the starts); NK_SVC_PID is natkeeper's own PID (signals go to it,
# not to `timeout`). Returns 1 (NK_SVC_RC set) if natkeeper exits at once. The lab's
# teardown stops it (SIGTERM, then SIGKILL after 3 s).
nk_service_dirs() {   # create (once) and export NK_STATE_DIR NK_RUNTIME_DIR
  NK_STATE_DIR=${NK_STATE_DIR:-$LAB_STATE/nk-state} NK_RUNTIME_DIR=${NK_RUNTIME_DIR:-$LAB_STATE/nk-runtime}
  export NK_STATE_DIR NK_RUNTIME_DIR
  mkdir -p "$NK_STATE_DIR" "$NK_RUNTIME_DIR" || fail "cannot create $NK_STATE_DIR / $NK_RUNTIME_DIR"
}
nk_service_start() {
  local i wrap tpid npid comm c
  [ -n "${NK:-}" ] || fail "nk_service_start: no natkeeper binary (e2e_init)"
  [ -n "${LAB_NS_LAN:-}" ] || fail "nk_service_start: no lab (lab_begin)"
  nk_service_running && fail "nk_service_start: natkeeper already runs (pid $NK_SVC_PID)"
  NK_SVC_N=$((${NK_SVC_N:-0} + 1)) NK_SVC_ARGS="$*" NK_SVC_PID='' NK_SVC_RC='' NK_LOG_MARK=0
  NK_SVC_OUT=$LAB_STATE/nk-svc-$NK_SVC_N.out NK_SVC_ERR=$LAB_STATE/nk-svc-$NK_SVC_N.err
  _NK_SVC_RCFILE=$LAB_STATE/nk-svc-$NK_SVC_N.rc
  nk_service_dirs
  rm -rf -- "$NK_RUNTIME_DIR"
  mkdir -m 0755 "$NK_RUNTIME_DIR" || fail "cannot create $NK_RUNTIME_DIR"
  : >"$NK_SVC_OUT"; : >"$NK_SVC_ERR"
  comm=${NK##*/}; comm=${comm:0:15}
  # the subshell only records the exit status (timeout's: natkeeper's, 124 on timeout,
  # 128+N after signal N); `timeout` gives natkeeper default dispositions for SIGINT/QUIT,
  # which a background job of a script would otherwise ignore
  (
    export STATE_DIRECTORY=$NK_STATE_DIR RUNTIME_DIRECTORY=$NK_RUNTIME_DIR
    timeout -k 2 "$NK_SVC_TIMEOUT" ip netns exec "$LAB_NS_LAN" "$NK" "$@" </dev/null >"$NK_SVC_OUT" 2>"$NK_SVC_ERR"
    echo "$?" >"$_NK_SVC_RCFILE"
  ) 2>/dev/null &
  wrap=$!
  disown "$wrap"
  # natkeeper is timeout's child (`ip netns exec` execs, it does not fork); its comm is
  # the binary's name - or, after 0.5 s, whatever runs there (a script's interpreter)
  for ((i = 0; i < 200; i++)); do   # <= 2 s
    [ -e "$_NK_SVC_RCFILE" ] && break
    tpid=$(cat "/proc/$wrap/task/$wrap/children" 2>/dev/null) && tpid=${tpid%% *} && [ -n "$tpid" ] &&
      npid=$(cat "/proc/$tpid/task/$tpid/children" 2>/dev/null) && npid=${npid%% *} && [ -n "$npid" ] &&
      c=$(cat "/proc/$npid/comm" 2>/dev/null) &&
      if [ "$c" = "$comm" ] || { [ "$i" -ge 50 ] && [ "$c" != ip ] && [ "$c" != timeout ]; }; then NK_SVC_PID=$npid NK_SVC_COMM=$c; break; fi
    sleep 0.01
  done
  if [ -z "$NK_SVC_PID" ]; then
    wait_for 3 test -s "$_NK_SVC_RCFILE"
    NK_SVC_RC=$(cat "$_NK_SVC_RCFILE" 2>/dev/null) || NK_SVC_RC=
    say "service: natkeeper $* did not start or exited at once (status ${NK_SVC_RC:-?})"
    return 1
  fi
  say "service: natkeeper $* (pid $NK_SVC_PID)"
}
# nk_service_running: the service natkeeper still runs
nk_service_running() {
  [ -n "${NK_SVC_PID:-}" ] && [ ! -e "$_NK_SVC_RCFILE" ] &&
    [ "$(cat "/proc/$NK_SVC_PID/comm" 2>/dev/null)" = "$NK_SVC_COMM" ]
}
# nk_service_signal SIG: send SIG (TERM, HUP, INT, USR1, KILL...) to natkeeper; 1 if it
# does not run
nk_service_signal() {
  local sig=${1#SIG}
  nk_service_running || { say "service: natkeeper does not run (SIG$sig not sent)"; return 1; }
  kill -s "$sig" "$NK_SVC_PID" || return 1
  say "service: SIG$sig sent to natkeeper (pid $NK_SVC_PID)"
}
# nk_service_wait_exit SECONDS: wait for the service to end; sets NK_SVC_RC (natkeeper's
# exit status, 128+N if signal N ended it, 124 if NK_SVC_TIMEOUT did); 1 if it still runs
nk_service_wait_exit() {
  local t0
  [ -n "${_NK_SVC_RCFILE:-}" ] || fail "nk_service_wait_exit: no service was started"
  t0=$(now_us)
  if ! wait_for "$1" test -s "$_NK_SVC_RCFILE"; then
    say "service: natkeeper (pid $NK_SVC_PID) still runs after $1 s"
    return 1
  fi
  NK_SVC_RC=$(<"$_NK_SVC_RCFILE")
  say "service: natkeeper exited with status $NK_SVC_RC (waited $((($(now_us) - t0) / 1000)) ms)"
}
# nk_service_stop [SECONDS]: SIGTERM, and SIGKILL if it still runs after SECONDS (5);
# sets NK_SVC_RC. Nothing if no service runs.
nk_service_stop() {
  nk_service_running || return 0
  nk_service_signal TERM
  nk_service_wait_exit "${1:-5}" && return 0
  nk_service_signal KILL
  nk_service_wait_exit 3
}
# wait_log SECONDS REGEX: wait for a line of the service's stderr matching REGEX (grep -E)
# after the lines already looked at (NK_LOG_MARK, 0 at each start). Found: prints it,
# sets NK_LOG_LINE and moves NK_LOG_MARK past it, so successive calls find successive
# events. Returns 1 after SECONDS, or at once when natkeeper has exited without it.
_wait_log_step() {
  _find_after "$NK_SVC_ERR" "$NK_LOG_MARK" "$1" && return 0
  nk_service_running && return 1
  _find_after "$NK_SVC_ERR" "$NK_LOG_MARK" "$1" && return 0   # its last words
  _WAIT_LOG_GONE=1
}
wait_log() {
  local t0
  [ -n "${NK_SVC_ERR:-}" ] || fail "wait_log: no natkeeper service was started"
  t0=$(now_us) _WAIT_LOG_GONE=0
  if wait_for "$1" _wait_log_step "$2" && [ "$_WAIT_LOG_GONE" = 0 ]; then
    NK_LOG_LINE=$_FOUND_LINE NK_LOG_MARK=$_FOUND_AT
    pass "natkeeper logged (after $((($(now_us) - t0) / 1000)) ms): $(cut -c1-300 <<<"$NK_LOG_LINE")"
    return 0
  fi
  if [ "$_WAIT_LOG_GONE" = 1 ]; then say "natkeeper exited without logging a line matching /$2/"
  else say "natkeeper logged no line matching /$2/ within $1 s"; fi
  return 1
}
# nk_log_mark: from now on wait_log looks only at lines logged later
nk_log_mark() { NK_LOG_MARK=$(grep -c '' "$NK_SVC_ERR" 2>/dev/null) || NK_LOG_MARK=0; }
# nk_status_json: the service's --status --json into $LAB_STATE/status.json; natkeeper's status
nk_status_json() {
  ip netns exec "$LAB_NS_LAN" env RUNTIME_DIRECTORY="$NK_RUNTIME_DIR" "$NK" --status --json >"$LAB_STATE/status.json"
}

# ---- the gateway's view ----------------------------------------------------------------
# gw_rules: "proto port addr:port" per DNAT rule miniupnpd installed, e.g. "udp 7076 10.77.0.2:7076"
gw_rules() { "$LAB_SH" rules --brief; }
# gw_rules_are EXPECTED WHAT: the gateway's DNAT rules, sorted and joined with ';', are EXPECTED
gw_rules_are() { assert_eq "$(gw_rules | sort | paste -sd ';')" "$1" "$2"; }
# gw_rule_count: DNAT rules pointing at the lan host
gw_rule_count() { gw_rules | awk -v a="$LAN_HOST:" 'index($3, a) == 1' | wc -l; }
# gw_lease_count: entries in miniupnpd's lease file (it rewrites the file on every change)
gw_lease_count() { if [ -s "$LAB_STATE/upnp.leases" ]; then grep -c . "$LAB_STATE/upnp.leases"; else echo 0; fi; }
# gw_filter_rule_count: accept rules in the forward chain's miniupnpd chain
gw_filter_rule_count() { in_gw nft list chain inet filter miniupnpd | grep -c ' accept' || true; }
# gw_drop_dnat PROTO PORT: delete the DNAT rule for external PORT (udp|tcp) and its accept
# rule from the gateway's nftables behind miniupnpd's back (by rule handle): miniupnpd still
# reports the mapping, the gateway no longer forwards it. Returns 1 if there was no such
# rule. A NAT-PMP/PCP request for the mapping re-adds the rules; a UPnP AddPortMapping
# usually does not ("updating existing port mapping": miniupnpd goes by its cached rule list,
# which it re-reads only after a change of its own). Probe afterwards from fresh source
# ports (expect_* do): an established conntrack flow keeps being forwarded.
gw_drop_dnat() {
  [ $# -eq 2 ] || fail "usage: gw_drop_dnat udp|tcp PORT"
  if ! "$LAB_SH" drop-dnat "$1" "$2" 2>>"$LAB_STATE/lab.log"; then
    tail -n 3 "$LAB_STATE/lab.log"
    return 1
  fi
  say "gateway: $1 $2 DNAT + accept rule deleted behind miniupnpd's back"
}

# ---- faults of the gateway ---------------------------------------------------------------
# (what miniupnpd sends at these moments: see lab.sh, "gateway faults")
_lab_do() {   # WHAT lab.sh-ARGS...: run it, its messages to lab.log; fail the test if it fails
  local what=$1; shift
  if ! "$LAB_SH" "$@" 2>>"$LAB_STATE/lab.log"; then
    tail -n 25 "$LAB_STATE/lab.log"
    fail "$what failed"
  fi
}
# gw_reboot [--kill]: stop miniupnpd (SIGTERM, or SIGKILL: no ssdp:byebye), delete its
# rules and lease file, start it again; returns once it answers. Sets GW_DOWN_MS.
gw_reboot() {
  _lab_do "gateway reboot" gw-reboot "$@"
  GW_DOWN_MS=$(cat "$LAB_STATE/gw-down-ms")
  say "gateway rebooted${1:+ ($1)}: its mappings are gone; down for $GW_DOWN_MS ms"
}
# gw_stop [--kill] [--drop]: the gateway goes down, losing its state (as gw_reboot); with
# --drop it also drops everything it receives (no answer, no routing) until gw_start.
# gw_start: it comes back; sets GW_DOWN_MS (since gw_stop).
gw_stop() {
  _lab_do "gateway stop" gw-stop "$@"
  say "gateway down${*:+ ($*)}: miniupnpd stopped, its mappings gone"
}
gw_start() {
  _lab_do "gateway start" gw-start
  GW_DOWN_MS=$(cat "$LAB_STATE/gw-down-ms" 2>/dev/null) || GW_DOWN_MS=
  say "gateway up again${GW_DOWN_MS:+ after $GW_DOWN_MS ms}"
}
# gw_set_wan_address ADDR[/LEN]: renumber the gateway's WAN side (default /24), as after a
# new DHCP lease; miniupnpd notices by itself (one NAT-PMP notice with the old address as
# the address goes, one with the new as it comes, each with a PCP ANNOUNCE; epoch 0).
# Returns once miniupnpd reports ADDR. Sets GW_EXT_IP (and PUBLIC_IP in the single
# topology: where expect_reaches sends). Existing mappings stay.
gw_set_wan_address() {
  [ $# -eq 1 ] || fail "usage: gw_set_wan_address ADDR[/LEN]"
  _lab_do "gw-wan-address $1" gw-wan-address "$1"
  GW_EXT_IP=$(cat "$LAB_STATE/gw-wan-address")
  [ "${LAB_TOPOLOGY:-single}" = double ] || PUBLIC_IP=$GW_EXT_IP
  say "gateway's WAN address is now $1; miniupnpd has checked it by STUN"
}
# gw_announce: SIGUSR1 to miniupnpd: the same address announced again (NAT-PMP notice +
# PCP ANNOUNCE) and its epoch back at 0 - as a gateway does that restarted its NAT
gw_announce() {
  _lab_do "gateway announce" gw-announce
  say "gateway re-announced its address (SIGUSR1)"
}
# gw_wait_rule_count N SECONDS: wait until the gateway has N DNAT rules to the lan host
_gw_rule_count_is() { [ "$(gw_rule_count)" = "$1" ]; }
gw_wait_rule_count() {
  local t0; t0=$(now_us)
  if wait_for "$2" _gw_rule_count_is "$1"; then
    pass "gateway has $1 DNAT rules to $LAN_HOST (after $((($(now_us) - t0) / 1000)) ms)"
    return 0
  fi
  say "gateway has $(gw_rule_count) DNAT rules to $LAN_HOST, not $1, after $2 s"
  return 1
}

# ---- what the gateway announces on the lan ------------------------------------------------
# notices_start [SECONDS]: record in $NOTICES, one line per datagram, what reaches the lan
# host on UDP 5350 (NAT-PMP notices, PCP ANNOUNCE; 224.0.0.1) and 1900 (SSDP NOTIFY;
# 239.255.255.250) - format in notice_listener.py. Binds 0.0.0.0:5350 and :1900 with
# SO_REUSEADDR (a natkeeper listening there too must set it as well). Runs SECONDS (300)
# at most; stopped with the lab or by notices_stop.
# wait_notice SECONDS REGEX: like wait_log, on $NOTICES (NOTICE_MARK, NOTICE_LINE).
# notices_count REGEX: lines of $NOTICES after NOTICE_MARK matching REGEX.
notices_start() {
  local i
  NOTICES=$LAB_STATE/notices.txt NOTICE_MARK=0
  rm -f "$LAB_STATE/notices.ready"
  : >"$NOTICES"
  timeout -k 1 $((${1:-300} + 5)) ip netns exec "$LAB_NS_LAN" "$PYTHON" "$E2E_DIR/notice_listener.py" \
    --iface-addr "$LAN_HOST" --duration "${1:-300}" --out "$NOTICES" \
    --ready "$LAB_STATE/notices.ready" </dev/null >/dev/null 2>"$LAB_STATE/notices.err" &
  _NOTICES_PID=$!
  disown "$_NOTICES_PID"
  for ((i = 0; i < 300; i++)); do   # <= 3 s
    [ -e "$LAB_STATE/notices.ready" ] && { say "listening in lan for NAT-PMP/PCP/SSDP announcements"; return 0; }
    kill -0 "$_NOTICES_PID" 2>/dev/null || break
    sleep 0.01
  done
  cat "$LAB_STATE/notices.err"
  fail "notice_listener.py did not come up"
}
notices_stop() {
  [ -n "${_NOTICES_PID:-}" ] || return 0
  # timeout passes SIGTERM on to the listener; only while it is still our timeout
  [ "$(cat "/proc/$_NOTICES_PID/comm" 2>/dev/null)" = timeout ] && kill -TERM "$_NOTICES_PID" 2>/dev/null
  _NOTICES_PID=
  return 0
}
wait_notice() {
  local t0; t0=$(now_us)
  [ -n "${NOTICES:-}" ] || fail "wait_notice: notices_start first"
  if wait_for "$1" _find_after "$NOTICES" "$NOTICE_MARK" "$2"; then
    NOTICE_LINE=$_FOUND_LINE NOTICE_MARK=$_FOUND_AT
    pass "lan got (after $((($(now_us) - t0) / 1000)) ms): $(cut -c1-400 <<<"$NOTICE_LINE")"
    return 0
  fi
  say "lan got nothing matching /$2/ within $1 s"
  return 1
}
notices_count() { tail -n "+$((${NOTICE_MARK:-0} + 1))" "${NOTICES:-/dev/null}" | grep -cE -- "$1"; }
# notices_mark: wait_notice / notices_count look only at what arrives from now on
notices_mark() { NOTICE_MARK=$(grep -c '' "${NOTICES:-/dev/null}"); }

# ---- reachability from the "internet" ------------------------------------------------------
# expect_reaches SPEC...  : each token sent from wan to 203.0.113.1:PORT (fresh source port)
#                           arrives at a listener on 0.0.0.0:PORT in lan within 2 s.
# expect_blocked SPEC...  : nothing arrives within 1 s.
# SPEC: udp:PORT, tcp:PORT, tcp+udp:PORT, udp:LOW-HIGH, udp:P1,P2,...  All in one process:
# a list of ports takes as long as one. Prints a line per port; returns 0/1 (2: setup error).
# In the double topology they send to the ISP's 203.0.113.1 ($PUBLIC_IP);
# expect_reaches_from_isp / expect_blocked_from_isp send from inside the ISP (100.64.0.1)
# to the gateway's own 100.64.0.2 instead: does the gateway itself forward?
_probe() {   # from(wan|isp) expect SPEC...
  local from=$1 expect=$2 rc ns dst src; shift 2
  if [ "$from" = isp ]; then
    [ "${LAB_TOPOLOGY:-single}" = double ] || fail "probing from the ISP needs the double topology"
    ns=$LAB_NS_ISP dst=$GW_EXT_IP src=100.64.0.1
  else
    ns=$LAB_NS_WAN dst=$PUBLIC_IP src=203.0.113.2
  fi
  timeout -k 1 15 "$PYTHON" "$PROBE_PY" --lan "$LAB_NS_LAN" --wan "$ns" --dst "$dst" --src "$src" \
    --expect "$expect" --used-ports "$LAB_STATE/probe-source-ports" "$@"
  rc=$?
  if [ "$rc" = 0 ]; then
    if [ "$expect" = reach ]; then pass "arrives in lan from $from: $*"; else pass "does not arrive in lan from $from: $*"; fi
  fi
  return "$rc"
}
expect_reaches() { _probe wan reach "$@"; }
expect_blocked() { _probe wan blocked "$@"; }
expect_reaches_from_isp() { _probe isp reach "$@"; }
expect_blocked_from_isp() { _probe isp blocked "$@"; }
_specs() { local proto=$1 p out=(); shift; for p in "$@"; do out+=("$proto:$p"); done; printf '%s\n' "${out[@]}"; }
expect_udp_reaches() { mapfile -t _s < <(_specs udp "$@"); expect_reaches "${_s[@]}"; }
expect_tcp_reaches() { mapfile -t _s < <(_specs tcp "$@"); expect_reaches "${_s[@]}"; }
expect_udp_blocked() { mapfile -t _s < <(_specs udp "$@"); expect_blocked "${_s[@]}"; }
expect_tcp_blocked() { mapfile -t _s < <(_specs tcp "$@"); expect_blocked "${_s[@]}"; }

# ---- natkeeper's JSON --------------------------------------------------------------------
# json_check FILE PYTHON-CODE [NAME=VALUE...]
# Runs the code with: doc (the parsed JSON), maps (doc["mappings"]), specs(str) -> set of
# (proto, port) from SPEC words like RING_SPECS, env (the NAME=VALUE pairs), and
# check(cond, what) which prints "ok: what" or "FAIL: what". Returns 1 if any check failed
# or the file is not exactly one JSON object.
json_check() {
  local file=$1 code=$2 out rc; shift 2
  out=$(_json_check "$file" "$code" "$@"); rc=$?
  [ -n "$out" ] && say "$out"
  E2E_CHECKS=$((E2E_CHECKS + $(grep -c '^ok: ' <<<"$out")))
  return "$rc"
}
_json_check() {
  "$PYTHON" - "$@" <<'PY'
import json, sys
path, code, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
env = dict(p.split("=", 1) for p in pairs)
text = ""
try:
    with open(path) as f:
        text = f.read()
    doc = json.loads(text)
except (OSError, ValueError) as e:
    print(f"FAIL: natkeeper's stdout is not one JSON document: {e}")
    print("  stdout was: " + repr(text[:300]))
    sys.exit(1)
if not isinstance(doc, dict):
    print("FAIL: natkeeper's JSON is not an object"); sys.exit(1)
failed = []
def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failed.append(what)
    return bool(cond)
def specs(words):
    out = set()
    for w in words.split():
        protos, ports = w.split(":", 1)
        for part in ports.split(","):
            lo, _, hi = part.partition("-")
            for p in range(int(lo), int(hi or lo) + 1):
                for proto in protos.split("+"):
                    out.add((proto, p))
    return out
maps = doc.get("mappings", [])   # --discover and --delete print no mappings
if not isinstance(maps, list):
    check(False, '"mappings" is a list'); sys.exit(1)
try:
    exec(code, {"doc": doc, "maps": maps, "check": check, "specs": specs, "env": env})
except Exception as e:  # a malformed document shows up here, e.g. a missing key
    check(False, f"JSON checks ran through ({type(e).__name__}: {e})")
sys.exit(1 if failed else 0)
PY
}

# json_expect_mappings FILE SPECS [METHOD]: natkeeper's JSON reports exactly the mappings in
# SPECS (words like RING_SPECS), each "mapped" (or "verified"), error null, external port =
# internal port, a positive lifetime and, if given, method METHOD.
json_expect_mappings() {
  json_check "$1" "$_NK_MAPPINGS_PY" "SPECS=$2" "METHOD=${3:-}"
}
read -r -d '' _NK_MAPPINGS_PY <<'PY'
def show(ms, n=5):
    s = "; ".join(f"{m.get('proto')} {m.get('internal_port')}: state={m.get('state')} "
                  f"method={m.get('method')} error={m.get('error')}" for m in ms[:n])
    return s + (f"; ... {len(ms) - n} more" if len(ms) > n else "")
want = specs(env["SPECS"])
got = [(m.get("proto"), m.get("internal_port")) for m in maps]
check(len(maps) == len(want), f"{len(maps)} mappings reported (expected {len(want)})")
missing, extra = sorted(want - set(got)), sorted(set(got) - want)
dups = sorted({g for g in got if got.count(g) > 1})
check(not missing and not extra and not dups,
      f"the mappings are exactly {env['SPECS']}"
      + (f" (missing {missing[:8]}, unexpected {extra[:8]}, duplicated {dups[:8]})"
         if missing or extra or dups else ""))
bad = [m for m in maps if m.get("state") not in ("mapped", "verified")]
states = sorted({str(m.get("state")) for m in maps})
check(not bad, f"every mapping is mapped/verified (states seen: {', '.join(states)})"
      + (f": {show(bad)}" if bad else ""))
err = [m for m in maps if m.get("error") is not None]
check(not err, "no mapping reports an error" + (f": {show(err)}" if err else ""))
if env.get("METHOD"):
    other = [m for m in maps if m.get("method") != env["METHOD"]]
    check(not other, f"every mapping has method {env['METHOD']}" + (f": {show(other)}" if other else ""))
moved = [m for m in maps if m.get("external_port") != m.get("internal_port")]
check(not moved, "every external port equals its internal port"
      + (": " + ", ".join(f"{m.get('proto')} {m.get('internal_port')}->{m.get('external_port')}"
                          for m in moved[:8]) if moved else ""))
short = [m for m in maps if not isinstance(m.get("lifetime"), int) or m.get("lifetime") <= 0]
check(not short, "every lifetime is a positive integer" + (f": {show(short)}" if short else ""))
PY

# gw_expect_rules SPECS: the gateway's DNAT rules are exactly SPECS, each to the lan host's
# same port, no duplicates. Shows the difference otherwise.
gw_expect_rules() {
  local want have
  want=$("$PYTHON" - "$1" "$LAN_HOST" <<'PY'
import sys
for w in sys.argv[1].split():
    protos, ports = w.split(":", 1)
    for part in ports.split(","):
        lo, _, hi = part.partition("-")
        for p in range(int(lo), int(hi or lo) + 1):
            for proto in protos.split("+"):
                print(f"{proto} {p} {sys.argv[2]}:{p}")
PY
)
  want=$(sort <<<"$want")
  have=$(gw_rules | sort) || fail "cannot list the gateway's rules"
  if [ "$have" != "$want" ]; then
    say "--- gateway DNAT rules: diff expected actual"
    diff <(echo "$want") <(echo "$have") | head -n 30
    fail "the gateway's DNAT rules are not exactly $1 ($(grep -c . <<<"$have") rules)"
  fi
  pass "gateway has exactly $(grep -c . <<<"$want") DNAT rules to $LAN_HOST: $1"
}

# ---- a hostile device on the LAN (lab.sh: LAB_ROGUE=1) ---------------------------------------
# lab_begin_rogue [single|double]: lab_begin, with the rogue namespace bridged to the
# gateway's LAN (10.77.0.66). Sets LAB_NS_ROGUE.
# rogue_start [ARG...]: rogue_device.py in ns rogue (ARG: its rogue-mode options) and the
# traps on 127.0.0.1:8000 in ns lan and 203.0.113.3:8080 in ns wan; fails the test if one
# does not come up. rogue_counts: refresh $ROGUE_COUNTS, $TRAP_LAN_COUNTS, $TRAP_WAN_COUNTS
# (JSON, see rogue_device.py). Both are stopped with the lab.
ROGUE_IP=10.77.0.66 ROGUE_HTTP_BASE=8000  # as lab.sh starts it
# shellcheck disable=SC2120  # (the argument is optional)
lab_begin_rogue() {
  LAB_ROGUE=1
  export LAB_ROGUE
  lab_begin "$@"
  LAB_NS_ROGUE=$("$LAB_SH" ns rogue)
  ROGUE_COUNTS=$LAB_STATE/rogue-device.json
  TRAP_LAN_COUNTS=$LAB_STATE/rogue-trap-lan.json TRAP_WAN_COUNTS=$LAB_STATE/rogue-trap-wan.json
}
in_rogue() { ip netns exec "$LAB_NS_ROGUE" "$@"; }
rogue_start() {
  local t0; t0=$(now_us)
  _lab_do "rogue start" rogue-start "$@"
  say "rogue device up on $ROGUE_IP, traps listening, in $((($(now_us) - t0) / 1000)) ms"
}
rogue_counts() { _lab_do "rogue counts" rogue-counts; }

# nk_run_rss NAME ARGS...: nk_run, and natkeeper's peak resident set in NK_RSS_KB (from
# wait4's rusage: `ip netns exec` execs natkeeper, so the child is natkeeper itself)
# nk_sanitized: true when natkeeper is an AddressSanitizer build (slower, and some 60 MiB larger)
nk_sanitized() { grep -qa __asan_init "$NK"; }

nk_run_rss() {
  local name=$1 t0; shift
  NK_LAST=$name NK_LAST_ARGS="$*"
  NK_OUT=$LAB_STATE/nk-$name.out NK_ERR=$LAB_STATE/nk-$name.err NK_RSS_KB=
  say "run: natkeeper $*"
  t0=$(now_us)
  timeout -k 2 "$NK_TIMEOUT" "$PYTHON" -c '
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss}\n")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
' "$LAB_STATE/nk-$name.rss" ip netns exec "$LAB_NS_LAN" "$NK" "$@" </dev/null >"$NK_OUT" 2>"$NK_ERR"
  NK_RC=$?
  NK_MS=$((($(now_us) - t0) / 1000))
  [ "$NK_RC" = 124 ] && fail "natkeeper $* did not finish within $NK_TIMEOUT s"
  NK_RSS_KB=$(cat "$LAB_STATE/nk-$name.rss" 2>/dev/null) || NK_RSS_KB=
  return 0
}

# ---- a doorbell on the LAN (lab.sh: LAB_DOORBELL=1) --------------------------------------
# A Ring doorbell is its own LAN device: natkeeper (in ns lan) maps ports for it. What
# reaches the device is counted in ns doorbell, not probed in ns lan.
# lab_begin_doorbell [single|double]: lab_begin with the doorbell namespace bridged to the
# gateway's LAN (DOORBELL_IP, DOORBELL_MAC); the lan host's neighbour table knows it once
# the lab is up. LAB_THIRD_PARTY=open in the environment: the gateway maps ports for
# other hosts (default secure: it refuses, see lab.sh's header); LAB_ROGUE=1: the rogue
# too (lab_begin_rogue's variables set). Sets LAB_NS_DOORBELL, DOORBELL_COUNTS.
# in_doorbell CMD...: in ns doorbell.
# doorbell_listen [SPEC...]: count UDP datagrams and accepted TCP connections per port in
# ns doorbell (default: the Ring profile's 108 ports); restarts the counts at 0; fails the
# test if the listener does not come up. doorbell_stop: stop it (also done by the teardown).
# doorbell_count udp|tcp PORT: print the count (no fork: read from $DOORBELL_COUNTS, which
# the listener keeps current); 1 (nothing printed) if the port is not listened to.
# doorbell_wait_count udp|tcp PORT N SECONDS: wait until the count is at least N.
# wan_send udp|tcp PORT[-PORT][,...]: lab.sh wan-send to $PUBLIC_IP (one token per port, each
# from a fresh source port); prints its lines; 0 if all were sent / all TCP handshakes
# completed, 1 otherwise.
# expect_doorbell_reaches SPEC...: for each port a token sent from wan to $PUBLIC_IP is
# counted in ns doorbell within 2 s (and a TCP handshake completes).
# expect_doorbell_blocked SPEC...: nothing counted within 1 s. (SPEC as for expect_reaches.)
# doorbell_renumber ADDR: a new DHCP lease for the doorbell in 10.77.0.0/24; returns once
# the lan host's neighbour table knows ADDR (the old entry is left to the kernel). Sets
# DOORBELL_IP.
# lan_neigh ADDR: "MAC STATE" of the lan host's neighbour entry for ADDR, or nothing.
# gw_third_party open|secure: the gateway's third-party policy, by a restart of miniupnpd
# (its mappings stay).
DOORBELL_IP=10.77.0.50 DOORBELL_MAC=54:e0:19:00:00:50  # as lab.sh builds it
# shellcheck disable=SC2120  # (the argument is optional)
lab_begin_doorbell() {
  LAB_DOORBELL=1
  export LAB_DOORBELL
  if [ "${LAB_ROGUE:-0}" = 1 ]; then lab_begin_rogue "$@"; else lab_begin "$@"; fi
  LAB_NS_DOORBELL=$("$LAB_SH" ns doorbell)
  DOORBELL_COUNTS=$LAB_STATE/doorbell-counts.json
  say "doorbell $DOORBELL_IP ($DOORBELL_MAC) on the lan, third-party policy ${LAB_THIRD_PARTY:-secure}"
}
in_doorbell() { ip netns exec "$LAB_NS_DOORBELL" "$@"; }
# shellcheck disable=SC2120  # (the arguments are optional)
doorbell_listen() {
  local t0; t0=$(now_us)
  _lab_do "doorbell listener start" doorbell-listen "$@"
  say "doorbell counts ${*:-the Ring profile} (up in $((($(now_us) - t0) / 1000)) ms)"
}
doorbell_stop() { _lab_do "doorbell listener stop" doorbell-stop; }
# _doorbell_load: $DOORBELL_COUNTS into _DB_NOW["proto/port"] (bash builtins only: polls
# call it every 50 ms); 1 if there is no counts file
_doorbell_load() {
  local line k i=0
  _DB_NOW=()
  [ -s "${DOORBELL_COUNTS:-}" ] || return 1
  # a line per port, '"udp/7076": 3,' (see doorbell.py); at most every port twice over
  while IFS= read -r line && ((i++ < 131072)); do
    [[ $line =~ ^\"((udp|tcp)/[0-9]+)\":\ ([0-9]+),?$ ]] || continue
    k=${BASH_REMATCH[1]}
    _DB_NOW[$k]=${BASH_REMATCH[3]}
  done <"$DOORBELL_COUNTS"
}
declare -A _DB_NOW=() _DB_BEFORE=()
doorbell_count() {
  _doorbell_load || return 1
  [ -n "${_DB_NOW[$1/$2]:-}" ] || return 1
  echo "${_DB_NOW[$1/$2]}"
}
_doorbell_count_at_least() { local n; n=$(doorbell_count "$1" "$2") && [ "$n" -ge "$3" ]; }
doorbell_wait_count() {
  local t0; t0=$(now_us)
  if wait_for "$4" _doorbell_count_at_least "$1" "$2" "$3"; then
    pass "doorbell counted $1 $2 at least $3 times (after $((($(now_us) - t0) / 1000)) ms)"
    return 0
  fi
  say "doorbell counted $1 $2 $(doorbell_count "$1" "$2" || echo '(not listened to)') times, not $3, after $4 s"
  return 1
}
wan_send() {
  [ $# -eq 2 ] || fail "usage: wan_send udp|tcp PORT[-PORT][,...]"
  "$LAB_SH" wan-send "$1" "$2" "$PUBLIC_IP" 2>>"$LAB_STATE/lab.log"
}
# _doorbell_targets SPEC...: a line "proto lo hi" per protocol and range
_doorbell_targets() {
  local spec proto part parts
  for spec in "$@"; do
    [[ $spec =~ ^(udp|tcp|tcp\+udp|udp\+tcp):[0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?)*$ ]] ||
      fail "bad port spec '$spec' (want udp:PORT, tcp+udp:LOW-HIGH, udp:P1,P2...)"
    IFS=, read -r -a parts <<<"${spec#*:}"
    for proto in udp tcp; do
      [[ ${spec%%:*} == *"$proto"* ]] || continue
      for part in "${parts[@]}"; do echo "$proto $((10#${part%-*})) $((10#${part#*-}))"; done
    done
  done
}
# _doorbell_rose all|any: all / any of the counts in _DB_BEFORE are higher now
_doorbell_rose() {
  local k
  _doorbell_load || return 1
  for k in "${!_DB_BEFORE[@]}"; do
    if [ "${_DB_NOW[$k]:-0}" -gt "${_DB_BEFORE[$k]}" ]; then
      [ "$1" = all ] || return 0
    else
      [ "$1" = any ] || return 1
    fi
  done
  [ "$1" = all ]
}
# _doorbell_knock reach|blocked SPEC...: see expect_doorbell_reaches
_doorbell_knock() {
  local expect=$1 proto lo hi p out rc ok=1 t0 line k targets changed=()
  shift
  mapfile -t targets < <(_doorbell_targets "$@")
  [ "${#targets[@]}" -gt 0 ] || fail "expect_doorbell_$expect: no port spec given"
  _doorbell_load || fail "no doorbell counts (doorbell_listen first)"
  _DB_BEFORE=()
  for line in "${targets[@]}"; do
    read -r proto lo hi <<<"$line"
    [ "$lo" -le "$hi" ] || fail "bad port range $proto $lo-$hi"
    for ((p = lo; p <= hi; p++)); do
      [ -n "${_DB_NOW[$proto/$p]:-}" ] || fail "the doorbell does not listen on $proto $p (doorbell_listen)"
      _DB_BEFORE[$proto/$p]=${_DB_NOW[$proto/$p]}
    done
  done
  # one wan-send per protocol, all its ports at once
  local -A lists=()
  for line in "${targets[@]}"; do
    read -r proto lo hi <<<"$line"
    lists[$proto]+=${lists[$proto]:+,}$lo-$hi
  done
  t0=$(now_us)
  for proto in "${!lists[@]}"; do
    out=$(wan_send "$proto" "${lists[$proto]}"); rc=$?
    [ "$rc" -le 1 ] || { say "$out"; fail "wan-send $proto ${lists[$proto]} failed (see $LAB_STATE/lab.log)"; }
    # a TCP token counts only once its handshake completed - with the device
    if [ "$expect" = reach ] && [ "$rc" != 0 ]; then say "$out"; ok=0; fi
  done
  if [ "$expect" = reach ]; then
    wait_for 2 _doorbell_rose all || ok=0
  elif wait_for 1 _doorbell_rose any; then
    ok=0
  fi
  _doorbell_load
  for k in "${!_DB_BEFORE[@]}"; do
    if [ "${_DB_NOW[$k]:-0}" -gt "${_DB_BEFORE[$k]}" ]; then
      [ "$expect" = reach ] || changed+=("$k")
    else
      [ "$expect" = blocked ] || changed+=("$k")
    fi
  done
  if [ "$ok" = 1 ]; then
    if [ "$expect" = reach ]; then pass "counted in ns doorbell: $* ($((($(now_us) - t0) / 1000)) ms)"
    else pass "not counted in ns doorbell within 1 s: $*"; fi
    return 0
  fi
  if [ "${#changed[@]}" -gt 0 ]; then
    say "  $([ "$expect" = reach ] && echo 'not counted' || echo 'counted') in ns doorbell: $(printf '%s\n' "${changed[@]}" | sort -t/ -k1,1 -k2n | head -n 12 | paste -sd ' ')$([ "${#changed[@]}" -le 12 ] || echo " ... (${#changed[@]} in all)")"
  fi
  return 1
}
expect_doorbell_reaches() { _doorbell_knock reach "$@"; }
expect_doorbell_blocked() { _doorbell_knock blocked "$@"; }
doorbell_renumber() {
  [ $# -eq 1 ] || fail "usage: doorbell_renumber ADDR"
  _lab_do "doorbell-renumber $1" doorbell-renumber "$1"
  DOORBELL_IP=$1
  say "doorbell renumbered to $1; the lan host knows it"
}
lan_neigh() { in_lan ip neigh show to "$1" dev eth0 | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i+1), $NF}'; }
gw_third_party() {
  [ $# -eq 1 ] || fail "usage: gw_third_party open|secure"
  _lab_do "gw-third-party $1" gw-third-party "$1"
  say "gateway's third-party policy is now $1 (miniupnpd restarted)"
}

# ---- the scripted IGD: a UPnP IGD in ns gw that plays routers' quirks ------------------------
# (scripted_igd.py; its header lists the options.) miniupnpd holds tcp :5000 and udp :1900 on
# lan0: stop it first (gw_stop_miniupnpd), or run the scripted IGD beside it with
# --http-port P --no-ssdp. What it maps shows in gw_rules (and so gw_expect_rules,
# gw_rule_count) and is reachable from wan (expect_reaches), as with miniupnpd.
# scripted_igd_start [OPTION...]: start it, replacing a running one (whose mappings go);
# fails the test if it does not come up. Sets SCRIPTED_IGD_URL (its first igd LOCATION) and
# SCRIPTED_IGD_LOCATIONS (all, in the order its SSDP answers list them). Log:
# $LAB_STATE/scripted-igd.log, a line per request.
# scripted_igd_stop: SIGTERM: it deletes its nftables table. The teardown stops it too.
# scripted_igd_ctl COMMAND...: forget PROTO PORT | forget-all | unrule PROTO PORT | list
# (a silent loss behind the client's back) | trickle KIND:MS|off; prints the answer.
# scripted_igd_log: its log since its last start; scripted_igd_count REGEX: the lines of that
# matching REGEX (grep -E).
# upnpc_run ARGS...: the reference client upnpc in ns lan (10 s at most); its output in UPNPC_OUT
# (and $LAB_STATE/upnpc.log), its exit status returned. upnpc_igd ARGS...: the same with
# -u $SCRIPTED_IGD_URL -e e2e. upnpc_says REGEX WHAT: its last output has a line matching REGEX
# (grep -E), else the test fails.
# gw_stop_miniupnpd: stop miniupnpd (SIGTERM; its rules stay: none, unless something mapped).
# ssdp_search ST [SECONDS]: one M-SEARCH for ST from the lan host to 239.255.255.250:1900;
# prints a line "ST LOCATION" per answer that arrives within SECONDS (default 0.5).
gw_stop_miniupnpd() { _lab_do "miniupnpd stop" stop-gateway; }
scripted_igd_start() {
  local t0; t0=$(now_us)
  _lab_do "scripted IGD start" scripted-igd-start "$@"
  mapfile -t SCRIPTED_IGD_LOCATIONS < <(awk '{print $3}' "$LAB_STATE/scripted-igd.ready")
  SCRIPTED_IGD_URL=$(awk '$2 ~ /^igd/ {print $3; exit}' "$LAB_STATE/scripted-igd.ready")
  say "scripted IGD${*:+ ($*)} up in $((($(now_us) - t0) / 1000)) ms: ${SCRIPTED_IGD_LOCATIONS[*]}"
}
scripted_igd_stop() { _lab_do "scripted IGD stop" scripted-igd-stop; }
scripted_igd_ctl() {
  "$LAB_SH" scripted-igd-ctl "$@" 2>>"$LAB_STATE/lab.log" || { tail -n 3 "$LAB_STATE/lab.log"; fail "scripted-igd-ctl $* failed"; }
}
scripted_igd_log() { tac "$LAB_STATE/scripted-igd.log" | sed '/^=== lab.sh: starting/q' | tac; }
scripted_igd_count() { grep -cE -- "$1" < <(scripted_igd_log); }
upnpc_run() {
  local rc
  UPNPC_OUT=$(in_lan timeout 10 upnpc "$@" 2>&1); rc=$?
  printf '$ upnpc %s (exit %s)\n%s\n' "$*" "$rc" "$UPNPC_OUT" >>"$LAB_STATE/upnpc.log"
  return "$rc"
}
upnpc_igd() { upnpc_run -u "$SCRIPTED_IGD_URL" -e e2e "$@"; }
upnpc_says() {
  grep -qE -- "$1" <<<"$UPNPC_OUT" || { tail -n 8 <<<"$UPNPC_OUT"; fail "$2: upnpc printed no line matching /$1/"; }
  pass "$2"
}
ssdp_search() {
  in_lan timeout -k 1 5 "$PYTHON" - "$1" "${2:-0.5}" "$LAN_HOST" <<'PY'
import socket, sys, time
st, seconds, lan = sys.argv[1], float(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(lan))
s.bind((lan, 0))
s.sendto(f'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n'
         f"ST: {st}\r\n\r\n".encode(), ("239.255.255.250", 1900))
end = time.monotonic() + seconds
for _ in range(1000):
    left = end - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        data = s.recv(2048)
    except socket.timeout:
        break
    h = {}
    for line in data.decode("latin-1").split("\r\n")[1:]:
        k, sep, v = line.partition(":")
        if sep:
            h[k.strip().lower()] = v.strip()
    print(h.get("st", "?"), h.get("location", "?"))
PY
}
