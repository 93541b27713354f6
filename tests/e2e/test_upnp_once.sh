#!/usr/bin/env bash
# test_upnp_once.sh NATKEEPER - `natkeeper --once --protocol upnp --json` maps the whole
# built-in Ring profile (108 mappings) through miniupnpd, reports it in JSON, and traffic
# from the internet really reaches the LAN host; nothing outside the profile does.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin

nk_run once --once --protocol upnp --json
assert_rc 0
json_check "$NK_OUT" '
g = doc.get("gateway") or {}
check(g.get("address") == "10.77.0.1", "gateway.address is 10.77.0.1 (got %r)" % g.get("address"))
check(g.get("method") == "upnp", "gateway.method is upnp (got %r)" % g.get("method"))
check(g.get("external_ip") == "203.0.113.1", "gateway.external_ip is 203.0.113.1 (got %r)" % g.get("external_ip"))
check(isinstance(doc.get("nat"), str), "nat is reported (%r)" % doc.get("nat"))
' || fail "natkeeper's JSON gateway section is wrong"
json_expect_mappings "$NK_OUT" "$RING_SPECS" upnp || fail "natkeeper's JSON mappings are wrong"

gw_expect_rules "$RING_SPECS"
assert_eq "$(gw_rule_count)" "$RING_COUNT" "DNAT rules to $LAN_HOST"

# every non-RTP port and the first and last RTP port, UDP and TCP, in one go
expect_reaches "${RING_PROBE[@]}" || fail "mapped ports are not reachable from the internet"
# outside the profile: the next RTP port, the one before, and TCP where only UDP is mapped
expect_blocked udp:16600 udp:16499 tcp:7076 || fail "ports outside the profile are reachable"

e2e_pass
