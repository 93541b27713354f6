#!/usr/bin/env bash
# test_forged_ssdp.sh NATKEEPER - a LAN device answers natkeeper's multicast SSDP search
# in the gateway's name (forged_ssdp.py in ns rogue: source 10.77.0.1:1900, at once, so
# before the gateway's own answer), with 20 IGD LOCATIONs on the gateway that all fail to
# open. natkeeper must still find the gateway's real IGD, every time: 10 runs each of
# `--discover --json` and `--once --protocol upnp` name http://10.77.0.1:5000/rootDesc.xml.
# Then the gateway ignores unicast searches (an nft drop in ns gw), so only answers to the
# multicast search come, the forged ones first: natkeeper must open forged LOCATIONs, give
# them up and still find the real IGD in 10 runs of `--once --protocol upnp`.
# Exit 0 pass, 1 fail, 77 skip (not root).
NK_TIMEOUT=${NK_TIMEOUT:-20}
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin_rogue

readonly RUNS=10 REAL_IGD=//$LAN_GW:5000/rootDesc.xml
FORGER_LOG=$LAB_STATE/forged-ssdp.log
rm -f "$LAB_STATE/forger.ready"
timeout -k 1 185 ip netns exec "$LAB_NS_ROGUE" "$PYTHON" "$E2E_DIR/forged_ssdp.py" --iface-addr "$ROGUE_IP" \
  --target "$LAN_HOST" --gateway "$LAN_GW" --locations 20 --duration 180 --log "$FORGER_LOG" \
  --ready "$LAB_STATE/forger.ready" </dev/null >/dev/null 2>"$LAB_STATE/forger.err" &
FORGER_PID=$!
wait_for 3 test -e "$LAB_STATE/forger.ready" || { cat "$LAB_STATE/forger.err"; fail "forged_ssdp.py did not come up"; }
pass "the forger listens for natkeeper's searches in ns rogue"

# names_real_igd FILE discover|once: natkeeper's JSON names the gateway's own IGD
names_real_igd() {
  "$PYTHON" - "$1" "$2" "$REAL_IGD" <<'PY'
import json, sys
path, kind, real = sys.argv[1:4]
try:
    doc = json.load(open(path))
except (OSError, ValueError):
    sys.exit(1)
if kind == "discover":
    details = [p.get("detail") or "" for p in doc.get("protocols", []) if p.get("method") == "upnp"]
else:
    details = [(doc.get("gateway") or {}).get("detail") or ""]
sys.exit(0 if any(real in d for d in details) else 1)
PY
}

line_count() { local n; n=$(grep -c '' "$1" 2>/dev/null) || true; echo "${n:-0}"; }

# runs KIND ARGS...: RUNS runs of natkeeper ARGS; FOUND = how many named the real IGD,
# FORGED_TRIED = how many opened a forged LOCATION first
runs() {
  local kind=$1 i searches_before searches; shift
  FOUND=0 FORGED_TRIED=0
  for ((i = 1; i <= RUNS; i++)); do
    searches_before=$(line_count "$FORGER_LOG")
    nk_run "$kind-$i" "$@"
    searches=$(($(line_count "$FORGER_LOG") - searches_before))
    [ "$searches" -gt 0 ] || fail "run $i: the forger answered none of natkeeper's searches"
    if [ "$NK_RC" = 0 ] && names_real_igd "$NK_OUT" "${kind%%-*}"; then FOUND=$((FOUND + 1)); fi
    if grep -qE "UPnP: http://$LAN_GW:(9/x|5000/forged-)" "$NK_ERR"; then FORGED_TRIED=$((FORGED_TRIED + 1)); fi
  done
  say "info: $kind: the real IGD found $FOUND of $RUNS times; a forged LOCATION opened in $FORGED_TRIED runs"
}

# both counted before either verdict: the figures are the point
runs discover --discover --json -v
DISCOVER_FOUND=$FOUND
runs once --once --protocol upnp --no-default-profile --map udp:7076 --no-verify --json -v
ONCE_FOUND=$FOUND
for verdict in "--discover:$DISCOVER_FOUND" "--once --protocol upnp:$ONCE_FOUND"; do
  [ "${verdict##*:}" = "$RUNS" ] || fail "${verdict%:*} found the gateway's IGD ${verdict##*:} of $RUNS times"
  pass "${verdict%:*} found the gateway's IGD $RUNS of $RUNS times despite the forged answers"
done
gw_expect_rules "udp:7076"

in_gw nft -f - <<'EOF' || fail "cannot make the gateway ignore unicast searches"
table ip ignore_unicast_ssdp {
  chain input {
    type filter hook input priority -10; policy accept;
    ip daddr 10.77.0.1 udp dport 1900 drop
  }
}
EOF
runs multicast-only --once --protocol upnp --no-default-profile --map udp:7076 --no-verify --json -v
[ "$FORGED_TRIED" -gt 0 ] || fail "no forged LOCATION was opened: the fallback was not exercised"
[ "$FOUND" = "$RUNS" ] || fail "with multicast answers only, the gateway's IGD was found $FOUND of $RUNS times"
pass "with multicast answers only, forged LOCATIONs opened in $FORGED_TRIED runs, and the gateway's IGD found $RUNS of $RUNS times"

kill -TERM "$FORGER_PID" 2>/dev/null
e2e_pass
