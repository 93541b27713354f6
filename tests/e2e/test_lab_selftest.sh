#!/usr/bin/env bash
# test_lab_selftest.sh [NATKEEPER] - the lab itself, checked with the reference clients
# (upnpc, natpmpc) instead of natkeeper, so a broken lab is told apart from a broken agent.
# The natkeeper argument is accepted and ignored. Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init_lab_only
for t in upnpc natpmpc; do command -v "$t" >/dev/null || fail "missing $t (package miniupnpc / natpmpc)"; done
lab_begin
[ "$LAB_UP_MS" -lt 2000 ] || fail "lab up took $LAB_UP_MS ms (budget 2000 ms)"
pass "lab up in $LAB_UP_MS ms"

IGD=http://$LAN_GW:5000/rootDesc.xml
upnp() { in_lan timeout 10 upnpc -u "$IGD" "$@" >>"$LAB_STATE/upnpc.log" 2>&1; }

# nothing is forwarded before anything is mapped
expect_blocked udp:7076 tcp:15063 || fail "traffic reaches lan without any mapping"

# UPnP-IGD: one UDP and one TCP mapping, protocol-exact
upnp -e e2e -r 7076 UDP 15063 TCP || fail "upnpc -r failed (see $LAB_STATE/upnpc.log)"
assert_eq "$(gw_rules | sort | paste -sd ';')" \
  "tcp 15063 $LAN_HOST:15063;udp 7076 $LAN_HOST:7076" "gateway DNAT rules after upnpc -r"
expect_reaches udp:7076 tcp:15063 || fail "UPnP mappings do not forward"
expect_blocked tcp:7076 udp:15063 udp:7077 || fail "an unmapped proto/port is forwarded"

# re-adding the same mapping replaces it, no duplicate rule
upnp -e e2e -r 7076 UDP || fail "upnpc -r (again) failed"
assert_eq "$(gw_rule_count)" 2 "DNAT rules after mapping udp 7076 twice"

# NAT-PMP
in_lan timeout 10 natpmpc -g "$LAN_GW" -a 20000 20000 udp 3600 >>"$LAB_STATE/natpmpc.log" 2>&1 ||
  fail "natpmpc -a failed (see $LAB_STATE/natpmpc.log)"
assert_eq "$(gw_rule_count)" 3 "DNAT rules after natpmpc"
expect_udp_reaches 20000 || fail "NAT-PMP mapping does not forward"

# a gateway restart keeps (and reloads, without duplicates) the rules
t0=$(now_us)
"$LAB_SH" restart-gateway 2>>"$LAB_STATE/lab.log" || fail "restart-gateway failed"
pass "restart-gateway in $((($(now_us) - t0) / 1000)) ms"
assert_eq "$(gw_rule_count)" 3 "DNAT rules after a gateway restart"
expect_reaches udp:7076,20000 tcp:15063 || fail "mappings do not forward after a gateway restart"

# a deleted mapping stops forwarding at once for new flows (fresh source ports)
upnp -d 7076 UDP || fail "upnpc -d failed"
assert_eq "$(gw_rule_count)" 2 "DNAT rules after upnpc -d"
expect_udp_blocked 7076 || fail "udp 7076 still forwarded after its deletion"

# many ports in one go (listeners + senders in one process)
t0=$(now_us)
expect_udp_blocked 16500-16599 || fail "RTP range forwarded without mappings"
pass "100 ports checked in $((($(now_us) - t0) / 1000)) ms"

# without the daemon nobody answers on the LAN side
"$LAB_SH" stop-gateway || fail "stop-gateway failed"
"$LAB_SH" status >/dev/null && fail "status reports a stopped gateway as up"
pass "status reports the stopped gateway"
if in_lan timeout 5 natpmpc -g "$LAN_GW" >/dev/null 2>&1; then fail "natpmpc got an answer from a stopped gateway"; fi
pass "no NAT-PMP answer from the stopped gateway"
"$LAB_SH" start-gateway || fail "start-gateway failed"
"$LAB_SH" status >/dev/null || fail "status after start-gateway"
pass "start-gateway"

e2e_pass
