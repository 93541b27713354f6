# shellcheck shell=bash disable=SC2034  # (constants below are for the test scripts)
# lib.sh - helpers for natkeeper's end-to-end tests; source it from a test script:
#
#   . "$(dirname "$0")/lib.sh"
#   e2e_init "$@"            # root or skip (77); $1 = natkeeper binary -> $NK
#   lab_begin                # own lab (unique prefix + state dir), torn down on any exit
#                            # (lab_begin double, or LAB_TOPOLOGY=double: CGNAT in front)
#   nk_run once --once --json; assert_rc 0      # stdout in $NK_OUT, exit status in $NK_RC
#   expect_reaches udp:7076 tcp:15063 || fail "..."
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

e2e_diagnostics() {
  local f
  if [ -n "${NK_LAST:-}" ]; then
    say "--- last natkeeper run: natkeeper ${NK_LAST_ARGS:-} (exit ${NK_RC:-?}, ${NK_MS:-?} ms)"
    for f in "$NK_OUT" "$NK_ERR"; do
      [ -s "$f" ] || continue
      say "--- ${f##*/} (last 40 lines, cut at 1500 columns)"
      tail -n 40 "$f" | cut -c1-1500
    done
  fi
  if [ -n "${LAB_STATE:-}" ] && [ -s "$LAB_STATE/miniupnpd.log" ]; then
    # table_cb lines (one per existing rule per change) drown everything else
    say "--- $LAB_STATE/miniupnpd.log (last 40 lines, table_cb lines left out)"
    grep -v 'table_cb' "$LAB_STATE/miniupnpd.log" | tail -n 40
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

# ---- the gateway's view ----------------------------------------------------------------
# gw_rules: "proto port addr:port" per DNAT rule miniupnpd installed, e.g. "udp 7076 10.77.0.2:7076"
gw_rules() { "$LAB_SH" rules --brief; }
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
