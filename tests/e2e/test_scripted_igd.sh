#!/usr/bin/env bash
# test_scripted_igd.sh [NATKEEPER] - the lab's scripted IGD (scripted_igd.py), checked with the
# reference client upnpc in place of miniupnpd, so that a later test's failure against one of
# its quirks is told apart from a broken lab:
#   plain       SSDP answers; a UDP and a TCP mapping forward from wan and nothing else;
#               -l / -L list them; a delete, `unrule`, `forget` and SIGTERM remove the rules
#   --answer-st only a WANIPConnection:1 search is answered, and upnpc still discovers it
#   --two-wan   the first WAN connection is Disconnected, and upnpc's discovery takes the second
#   --finite-lease-error 402 / 725, --addany-error 401, --max-lease (shown by -l, then
#   expired with its rule), --reserved with a vendor's 501 text (and AddAny going around it),
#   --phantom-once (718 to the first add only), --garbled-add (both adds made all the same)
# The natkeeper argument is accepted and ignored. Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init_lab_only
command -v upnpc >/dev/null || fail "missing upnpc (package miniupnpc)"
lab_begin
gw_stop_miniupnpd

readonly IGD1=urn:schemas-upnp-org:device:InternetGatewayDevice:1 WANIP1=urn:schemas-upnp-org:service:WANIPConnection:1

# ---- plain: a well-behaved IGD:2
scripted_igd_start
assert_eq "$(ssdp_search "$IGD1")" "$IGD1 $SCRIPTED_IGD_URL" "the IGD:2 answers a search for IGD:1"
n=$(ssdp_search ssdp:all | grep -c " $SCRIPTED_IGD_URL$")
[ "$n" -ge 9 ] || fail "ssdp:all got $n answers naming $SCRIPTED_IGD_URL (want one per NT, 9)"
pass "ssdp:all: $n answers"

upnpc_igd -r 7076 UDP 15063 TCP || fail "upnpc -r failed"
upnpc_says "external 203\.0\.113\.1:15063 TCP is redirected to internal $LAN_HOST:15063 \(duration=0\)" "upnpc -r mapped udp 7076 and tcp 15063"
gw_rules_are "tcp 15063 $LAN_HOST:15063;udp 7076 $LAN_HOST:7076" "the scripted IGD's DNAT rules"
expect_reaches udp:7076 tcp:15063 || fail "the scripted IGD's mappings do not forward"
expect_blocked tcp:7076 udp:15063 || fail "an unmapped proto/port is forwarded"
upnpc_igd -l
upnpc_says "^ 0 UDP  7076->$LAN_HOST:7076  'e2e' '' 0$" "upnpc -l (GetGenericPortMappingEntry) lists udp 7076"
upnpc_says "^ 1 TCP 15063->$LAN_HOST:15063 'e2e' '' 0$" "upnpc -l lists tcp 15063"
upnpc_igd -L
upnpc_says "UDP  7076->$LAN_HOST:7076 " "upnpc -L (GetListOfPortMappings) lists udp 7076"
upnpc_igd -d 7076 UDP || fail "upnpc -d failed"
gw_rules_are "tcp 15063 $LAN_HOST:15063" "DNAT rules after upnpc -d 7076 UDP"
expect_udp_blocked 7076 || fail "udp 7076 still forwarded after its deletion"

# silent losses: the rule alone, then the whole mapping
scripted_igd_ctl unrule tcp 15063 >/dev/null
gw_rules_are "" "DNAT rules after unrule tcp 15063"
upnpc_igd -l
upnpc_says "^ 0 TCP 15063->$LAN_HOST:15063 " "upnpc -l still lists tcp 15063 without its rule"
expect_tcp_blocked 15063 || fail "tcp 15063 forwarded without its rule"
scripted_igd_ctl forget tcp 15063 >/dev/null
upnpc_igd -l
upnpc_says "^GetGenericPortMappingEntry\(\) returned 713 " "upnpc -l lists nothing once tcp 15063 is forgotten"

# SIGTERM: the table goes with the scripted IGD
upnpc_igd -r 7076 UDP || fail "upnpc -r failed"
gw_rules_are "udp 7076 $LAN_HOST:7076" "DNAT rules before SIGTERM"
scripted_igd_stop
in_gw nft list table ip scripted_igd >/dev/null 2>&1 && fail "table ip scripted_igd is still there after SIGTERM"
gw_rules_are "" "DNAT rules after SIGTERM"

# ---- answering only a search for WANIPConnection:1 (an IGD:1)
scripted_igd_start --locations igd1 --answer-st "$WANIP1"
for st in "$IGD1" ssdp:all upnp:rootdevice; do
  assert_eq "$(ssdp_search "$st" | wc -l)" 0 "answers to a search for $st"
done
assert_eq "$(ssdp_search "$WANIP1")" "$WANIP1 $SCRIPTED_IGD_URL" "the answer to a search for WANIPConnection:1"
# 203.0.113.1 is a reserved address to miniupnpc: -i to use the IGD it found all the same
t0=$(now_us)
upnpc_run -i -e e2e -r 7077 UDP || fail "upnpc -i -r (discovery) failed"
upnpc_says "^ desc: $SCRIPTED_IGD_URL$" "upnpc's discovery found $SCRIPTED_IGD_URL ($((($(now_us) - t0) / 1000)) ms)"
upnpc_says "^ st: $WANIP1$" "... through its search for WANIPConnection:1"
expect_reaches udp:7077 || fail "the mapping made through discovery does not forward"

# ---- two WAN connections, the first Disconnected; a public-looking external address, as
# miniupnpc only then takes a connection for a valid IGD
scripted_igd_start --two-wan --external-ip 192.88.0.7
upnpc_igd -s
upnpc_says "^Status : Disconnected, uptime=0s, LastConnectionError : ERROR_NO_CARRIER$" "upnpc -u (the first connection): Disconnected"
upnpc_run -e e2e -r 7078 UDP || fail "upnpc -r (discovery) failed"
upnpc_says "^Found valid IGD : ${SCRIPTED_IGD_URL%/*}/ctl/igd2/conn1$" "upnpc's discovery took the second, Connected, WAN connection"
expect_reaches udp:7078 || fail "the mapping through the second connection does not forward"

# ---- only permanent leases: 402, then 725
for code in 402:Invalid.Args 725:OnlyPermanentLeasesSupported; do
  scripted_igd_start --finite-lease-error "${code%%:*}"
  upnpc_igd -a "$LAN_HOST" 7076 7076 UDP 3600 && fail "a finite lease was granted"
  upnpc_says "^AddPortMapping\(7076, 7076, $LAN_HOST\) failed with code ${code%%:*} \(${code#*:}\)$" "lease 3600 refused with ${code%%:*}"
  gw_rules_are "" "DNAT rules after the refusal"
  upnpc_igd -a "$LAN_HOST" 7076 7076 UDP 0 || fail "lease 0 refused"
  upnpc_says "is redirected to internal $LAN_HOST:7076 \(duration=0\)$" "lease 0 granted"
done
expect_reaches udp:7076 || fail "the permanent mapping does not forward"

# ---- no AddAnyPortMapping although WANIPConnection:2
scripted_igd_start --addany-error 401
upnpc_igd -n "$LAN_HOST" 7076 7076 UDP && fail "AddAnyPortMapping succeeded"
upnpc_says "^AddAnyPortMapping\(7076, 7076, $LAN_HOST\) failed with code 401 \(Invalid Action\)$" "AddAnyPortMapping answered 401"
gw_rules_are "" "DNAT rules after the refused AddAnyPortMapping"
upnpc_igd -a "$LAN_HOST" 7076 7076 UDP || fail "AddPortMapping failed"
gw_rules_are "udp 7076 $LAN_HOST:7076" "DNAT rules after AddPortMapping"

# ---- a shortened lease, shown by the listing, then expired with its rule
scripted_igd_start --max-lease 3
upnpc_igd -a "$LAN_HOST" 7076 7076 UDP 3600 || fail "AddPortMapping failed"
upnpc_says "\(duration=[23]\)$" "GetSpecificPortMappingEntry shows the lease shortened from 3600 to 3 s"
upnpc_igd -l
upnpc_says "^ 0 UDP  7076->$LAN_HOST:7076  'e2e' '' [1-3]$" "upnpc -l shows the shortened lease"
gw_wait_rule_count 0 5 || fail "the rule of the expired mapping stayed"
upnpc_igd -l
upnpc_says "^GetGenericPortMappingEntry\(\) returned 713 " "the expired mapping is gone from the listing"

# ---- a port the router keeps for itself, refused with a vendor's 501 text
scripted_igd_start --reserved udp:7080 --conflict-error "501:Port is used by another service"
upnpc_igd -a "$LAN_HOST" 7080 7080 UDP && fail "the reserved port was mapped"
upnpc_says "^AddPortMapping\(7080, 7080, $LAN_HOST\) failed with code 501 \(Action Failed\)$" "the reserved port refused with 501"
grep -q 'AddPortMapping(.*ExternalPort=7080 .* -> 501 Port is used by another service$' "$LAB_STATE/scripted-igd.log" ||
  fail "the scripted IGD did not answer with the vendor's text"
pass "... with the vendor's text"
upnpc_igd -n "$LAN_HOST" 7080 7080 UDP || fail "AddAnyPortMapping failed"
upnpc_says "is redirected to internal $LAN_HOST:7080 " "AddAnyPortMapping granted another port"
gw_rules_are "udp 7081 $LAN_HOST:7080" "AddAnyPortMapping took the next port up, 7081"

# ---- a phantom conflict: 718 to the first add of a port nobody holds, not to the second
scripted_igd_start --phantom-once udp:7083
upnpc_igd -a "$LAN_HOST" 7083 7083 UDP && fail "the first add of udp 7083 was granted"
upnpc_says "^AddPortMapping\(7083, 7083, $LAN_HOST\) failed with code 718 \(ConflictInMappingEntry\)$" "the first add refused with 718"
gw_rules_are "" "DNAT rules after the phantom conflict"
upnpc_igd -a "$LAN_HOST" 7083 7083 UDP || fail "the second add of udp 7083 failed"
gw_rules_are "udp 7083 $LAN_HOST:7083" "the second add mapped udp 7083"

# ---- success answers that are no XML: libminiupnpc takes AddPortMapping's for success, and
# AddAnyPortMapping's (no NewReservedPort) for an invalid response; both mappings are made
scripted_igd_start --garbled-add
upnpc_igd -a "$LAN_HOST" 7084 7084 UDP || fail "upnpc -a took the garbled answer for a failure"
pass "upnpc -a takes the garbled answer for success"
upnpc_igd -n "$LAN_HOST" 7085 7085 UDP   # (exits 0 after a failed add; it shows the entry then)
upnpc_says "^AddAnyPortMapping\(7085, 7085, $LAN_HOST\) failed with code -4 " "upnpc -n: invalid response (-4)"
gw_rules_are "udp 7084 $LAN_HOST:7084;udp 7085 $LAN_HOST:7085" "both garbled adds were made"

e2e_pass
