#!/usr/bin/env bash
# test_upnp_delete.sh NATKEEPER - after `--once --protocol upnp`, `--delete --protocol upnp`
# removes every mapping of this host: no DNAT/filter rule for 10.77.0.2 is left on the
# gateway, and new traffic from the internet no longer reaches the LAN host.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin

nk_run once --once --protocol upnp --json
assert_rc 0
assert_eq "$(gw_rule_count)" "$RING_COUNT" "DNAT rules to $LAN_HOST after --once"
expect_reaches udp:7076,16599 tcp:15063 || fail "mappings do not forward before the delete"

nk_run delete --delete --protocol upnp
assert_rc 0
assert_eq "$(gw_rule_count)" 0 "DNAT rules to $LAN_HOST after --delete"
assert_eq "$(gw_filter_rule_count)" 0 "forward-accept rules in the gateway's miniupnpd chain"
assert_eq "$(gw_lease_count)" 0 "entries in miniupnpd's lease file"
# fresh source ports: the flows probed above stay in conntrack (DNATed) for a while
expect_blocked udp:7076,16599 tcp:15063 || fail "ports still reachable after --delete"

e2e_pass
