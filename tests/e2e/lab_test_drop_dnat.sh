#!/usr/bin/env bash
# lab_test_drop_dnat.sh [NATKEEPER] - lib.sh's gw_drop_dnat, checked with the reference
# clients: it deletes a mapping's DNAT and accept rules behind miniupnpd's back, so the
# gateway still lists the mapping but no longer forwards it; the other mappings keep
# working; a NAT-PMP request for it puts the rules back. The natkeeper argument is ignored.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init_lab_only
for t in upnpc natpmpc; do command -v "$t" >/dev/null || fail "missing $t (package miniupnpc / natpmpc)"; done
lab_begin
IGD=http://$LAN_GW:5000/rootDesc.xml
upnp() { in_lan timeout 10 upnpc -u "$IGD" "$@" >>"$LAB_STATE/upnpc.log" 2>&1; }
natpmp_map() { in_lan timeout 10 natpmpc -g "$LAN_GW" -a "$1" "$1" udp 3600 >>"$LAB_STATE/natpmpc.log" 2>&1; }

natpmp_map 20000 || fail "natpmpc -a failed"
upnp -e e2e -r 7076 UDP 15063 TCP || fail "upnpc -r failed"
expect_reaches udp:7076,20000 tcp:15063 || fail "the mappings do not forward"

gw_drop_dnat udp 20000 || fail "gw_drop_dnat udp 20000"
gw_drop_dnat tcp 15063 || fail "gw_drop_dnat tcp 15063"
assert_eq "$(gw_rules | paste -sd ';')" "udp 7076 $LAN_HOST:7076" "DNAT rules left"
assert_eq "$(gw_filter_rule_count)" 1 "accept rules left"
if gw_drop_dnat udp 20000 >/dev/null; then fail "gw_drop_dnat of a rule already gone succeeded"; fi
pass "gw_drop_dnat of a rule already gone returns 1"
if gw_drop_dnat udp 15063 >/dev/null; then fail "gw_drop_dnat matched the wrong protocol"; fi
pass "gw_drop_dnat matches the protocol"

# miniupnpd still reports all three
in_lan timeout 10 upnpc -u "$IGD" -l >"$LAB_STATE/upnpc-l.out" 2>&1 || fail "upnpc -l failed"
assert_eq "$(grep -cE '^ *[0-9]+ (UDP|TCP) +[0-9]+->' "$LAB_STATE/upnpc-l.out")" 3 "mappings the gateway still lists"
assert_eq "$(gw_lease_count)" 3 "leases the gateway still keeps"

expect_blocked udp:20000 tcp:15063 || fail "a dropped mapping still forwards"
expect_reaches udp:7076 || fail "the untouched mapping stopped forwarding"

# a NAT-PMP request for it re-adds the rules
natpmp_map 20000 || fail "natpmpc -a (again) failed"
assert_eq "$(gw_rules | sort | paste -sd ';')" "udp 20000 $LAN_HOST:20000;udp 7076 $LAN_HOST:7076" "DNAT rules after NAT-PMP again"
expect_reaches udp:20000 || fail "udp 20000 not forwarded after NAT-PMP again"
e2e_pass
