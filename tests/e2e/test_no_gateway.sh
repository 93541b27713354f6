#!/usr/bin/env bash
# test_no_gateway.sh NATKEEPER - with the gateway's daemon stopped (the router answers
# nothing: NAT-PMP/PCP get ICMP port unreachable, SSDP stays silent), `--once` gives up
# within 5 s with exit 69 (EX_UNAVAILABLE) and says why on stderr.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin
"$LAB_SH" stop-gateway 2>>"$LAB_STATE/lab.log" || fail "cannot stop the gateway daemon"
pass "gateway daemon stopped"

check_no_gateway() {   # NAME ARGS...
  local name=$1; shift
  nk_run "$name" "$@"
  assert_rc 69 "natkeeper $* without a gateway"
  [ "$NK_MS" -lt 5000 ] || fail "natkeeper $* took $NK_MS ms to give up (limit 5000 ms)"
  pass "gave up in $NK_MS ms (< 5000)"
  [ -s "$NK_ERR" ] || fail "natkeeper $* printed nothing on stderr"
  pass "stderr says: $(head -n 3 "$NK_ERR" | paste -sd '|' | cut -c1-200)"
}
check_no_gateway auto --once
check_no_gateway upnp --once --protocol upnp
assert_eq "$(gw_rule_count)" 0 "DNAT rules on the gateway"

e2e_pass
