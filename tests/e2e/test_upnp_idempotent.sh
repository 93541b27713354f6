#!/usr/bin/env bash
# test_upnp_idempotent.sh NATKEEPER - running `--once --protocol upnp` twice is harmless:
# the second run succeeds without errors and the gateway holds the same 108 rules (no
# duplicates in its DNAT chain, filter chain or lease file); forwarding still works.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin

nk_run first --once --protocol upnp --json
assert_rc 0
json_expect_mappings "$NK_OUT" "$RING_SPECS" upnp || fail "first run: JSON mappings are wrong"
gw_expect_rules "$RING_SPECS"
rules_before=$(gw_rules | sort)

nk_run second --once --protocol upnp --json
assert_rc 0
json_expect_mappings "$NK_OUT" "$RING_SPECS" upnp || fail "second run: JSON mappings are wrong"
gw_expect_rules "$RING_SPECS"
[ "$(gw_rules | sort)" = "$rules_before" ] || fail "the DNAT rules changed between the runs"
pass "DNAT rules unchanged by the second run"
assert_eq "$(gw_filter_rule_count)" "$RING_COUNT" "forward-accept rules in the gateway's miniupnpd chain"
# miniupnpd writes its lease file on every change: one line per mapping
assert_eq "$(gw_lease_count)" "$RING_COUNT" "entries in miniupnpd's lease file"

expect_reaches udp:7076,16500,16599 tcp:15063,15064 || fail "forwarding broken after the second run"

e2e_pass
