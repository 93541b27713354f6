#!/usr/bin/env bash
# test_forged_replies.sh NATKEEPER - a LAN device (ns rogue) forges the gateway's NAT-PMP
# and PCP replies (forge_gateway.py, from 10.77.0.1:5351) at every ephemeral port natkeeper
# can have, while natkeeper maps and deletes:
#   NAT-PMP: mapping replies granting the port asked for 2^32-1 s and "Unsupported
#   Version" refusals, sprayed while `--once --protocol natpmp` maps and `--delete` removes;
#   PCP: UNSUPP_VERSION responses (no nonce) sprayed while `--once --protocol pcp` maps,
#   `--delete` removes, and a second `--delete` finds nothing left (miniupnpd: NO_RESOURCES).
# Every run exits 0, the gateway holds exactly the mappings asked for, each reported with
# its own port and a lifetime no longer than the one requested.
# Exit 0 pass, 1 fail, 77 skip (not root).
NK_TIMEOUT=${NK_TIMEOUT:-30}
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin_rogue

readonly LEASE=600
readonly SPECS="udp:7076-7079 tcp:15063 udp:16500-16531"
readonly MAP_ARGS=(--no-default-profile --map udp:7076-7079 --map tcp:15063 --map udp:16500-16531 --no-verify
                   --lease "$LEASE")
readonly EPHEMERAL=40000-40015
# 16 ephemeral ports in ns lan (the setting is per namespace), all of them sprayed
in_lan sysctl -qw net.ipv4.ip_local_port_range="${EPHEMERAL/-/ }" || fail "cannot narrow ns lan's port range"

FORGER_OUT=$LAB_STATE/forger.out
# forge_start KINDS INTERVAL: the forger in ns rogue, for at most 60 s
forge_start() {
  timeout -k 1 70 ip netns exec "$LAB_NS_ROGUE" "$PYTHON" "$E2E_DIR/forge_gateway.py" --gateway "$LAN_GW" \
    --host "$LAN_HOST" --ports "$EPHEMERAL" --specs "$SPECS" --kinds "$1" --round-interval "$2" --duration 60 \
    >"$FORGER_OUT" 2>&1 &
  FORGER_PID=$!
  sleep 0.5  # its first rounds are out before natkeeper starts
  kill -0 "$FORGER_PID" 2>/dev/null || fail "the forger did not start: $(cat "$FORGER_OUT")"
}
forge_stop() {
  kill -TERM "$FORGER_PID" 2>/dev/null
  wait "$FORGER_PID"
  grep -q '"sent"' "$FORGER_OUT" || fail "the forger said nothing: $(cat "$FORGER_OUT")"
  pass "the forger sent $(cat "$FORGER_OUT")"
}
# mappings_bounded METHOD: every reported lifetime is positive and at most the lease asked for
mappings_bounded() {
  json_check "$NK_OUT" '
lease = int(env["LEASE"])
poisoned = [m for m in maps if not isinstance(m.get("lifetime"), int) or not 0 < m["lifetime"] <= lease]
print("info: lifetimes reported: %s" % sorted({str(m.get("lifetime")) for m in maps}))
check(not poisoned, "%d of %d lifetimes beyond the %d s asked for (or none)%s" % (len(poisoned), len(maps), lease,
      "".join("; %s %s: %s" % (m.get("proto"), m.get("internal_port"), m.get("lifetime")) for m in poisoned[:3])))
check((doc.get("gateway") or {}).get("method") == env["METHOD"], "gateway.method is %s" % env["METHOD"])
' "LEASE=$LEASE" "METHOD=$1"
}
# expect_mapped METHOD WHAT: the last run mapped SPECS over METHOD, within the lease, and
# the gateway holds exactly them; else fail naming WHAT
expect_mapped() {
  mappings_bounded "$1" || fail "$2: lifetimes or method wrong"
  json_expect_mappings "$NK_OUT" "$SPECS" "$1" || fail "$2: the mappings are wrong"
  assert_rc 0
  gw_expect_rules "$SPECS"
}
# expect_deleted METHOD: --delete over METHOD exits 0 and leaves no rule
expect_deleted() {
  nk_run "$1-delete" --delete --protocol "$1" "${MAP_ARGS[@]}"
  assert_rc 0
  assert_eq "$(gw_rule_count)" 0 "DNAT rules to $LAN_HOST after --delete ($1)"
}

# ---- NAT-PMP: no nonce; forged grants and refusals ------------------------------------
# AddressSanitizer makes natkeeper read several times slower: a spray every 2 ms then outruns
# it and only tests the flood's denial of service, so a sanitized build gets one every 10 ms.
if nk_sanitized; then forge_start natpmp-grant,natpmp-refuse 0.01; else forge_start natpmp-grant,natpmp-refuse 0.002; fi
nk_run natpmp --once --protocol natpmp "${MAP_ARGS[@]}" --json -v
expect_mapped natpmp "forged NAT-PMP replies were believed"
expect_deleted natpmp
forge_stop

# ---- PCP: UNSUPP_VERSION has no nonce ---------------------------------------------------
# Discovery is where UNSUPP_VERSION is believed (a NAT-PMP-only gateway says so there); a
# round every 20 ms leaves it unlikely to hit the ANNOUNCE's round trip, while the mapping
# requests are pending for longer.
forge_start pcp-refuse 0.02
nk_run pcp --once --protocol pcp "${MAP_ARGS[@]}" --json -v
if grep -q "does not speak PCP version 2" "$NK_ERR"; then
  say "info: a forged UNSUPP_VERSION answered discovery's ANNOUNCE (believed there by design); once more"
  nk_run natpmp-fallback-delete --delete --protocol natpmp "${MAP_ARGS[@]}"
  nk_run pcp --once --protocol pcp "${MAP_ARGS[@]}" --json -v
fi
expect_mapped pcp "forged UNSUPP_VERSION failed PCP mappings"
nk_run pcp-delete --delete --protocol pcp "${MAP_ARGS[@]}"
if grep -q "does not speak PCP version 2" "$NK_ERR"; then
  say "info: a forged UNSUPP_VERSION answered --delete's ANNOUNCE too; once more"
  nk_run pcp-delete --delete --protocol pcp "${MAP_ARGS[@]}"
fi
assert_rc 0
assert_eq "$(gw_rule_count)" 0 "DNAT rules to $LAN_HOST after --delete (pcp)"
# miniupnpd answers a delete of a mapping it does not hold with NO_RESOURCES: nothing failed
nk_run pcp-delete-again --delete --protocol pcp "${MAP_ARGS[@]}" -v
assert_rc 0
forge_stop

e2e_pass
