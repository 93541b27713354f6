#!/usr/bin/env bash
# test_map_cycle.sh NATKEEPER PROTOCOL - the whole life of the default profile over one
# protocol (natpmp or pcp): `--once --protocol P --json` maps all 108 ports and traffic
# from the internet reaches the LAN host; a second `--once` changes nothing; `--delete`
# (a new process) removes every rule - for PCP that proves the nonce of the mapping was
# used, since miniupnpd refuses a delete with another nonce.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$1"
PROTO=${2:?usage: $0 NATKEEPER natpmp|pcp}
TEST_NAME="$TEST_NAME-$PROTO"
lab_begin

nk_run once --once --protocol "$PROTO" --json
assert_rc 0
json_check "$NK_OUT" '
g = doc.get("gateway") or {}
check(g.get("method") == env["PROTO"], "gateway.method is %s (got %r)" % (env["PROTO"], g.get("method")))
check(g.get("external_ip") == "203.0.113.1", "gateway.external_ip is 203.0.113.1 (got %r)" % g.get("external_ip"))
' "PROTO=$PROTO" || fail "natkeeper's JSON gateway section is wrong"
json_expect_mappings "$NK_OUT" "$RING_SPECS" "$PROTO" || fail "natkeeper's JSON mappings are wrong"
gw_expect_rules "$RING_SPECS"
expect_reaches "${RING_PROBE[@]}" || fail "mapped ports are not reachable from the internet"
expect_blocked udp:16600 tcp:7076 || fail "ports outside the profile are reachable"
rules_before=$(gw_rules | sort)

nk_run again --once --protocol "$PROTO" --json
assert_rc 0
json_expect_mappings "$NK_OUT" "$RING_SPECS" "$PROTO" || fail "second run: JSON mappings are wrong"
[ "$(gw_rules | sort)" = "$rules_before" ] || fail "the DNAT rules changed between the runs"
pass "DNAT rules unchanged by the second run"

nk_run delete --delete --protocol "$PROTO"
assert_rc 0
assert_eq "$(gw_rule_count)" 0 "DNAT rules to $LAN_HOST after --delete"
expect_blocked udp:7076,16599 tcp:15063 || fail "ports still reachable after --delete"

e2e_pass
