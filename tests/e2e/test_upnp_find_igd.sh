#!/usr/bin/env bash
# test_upnp_find_igd.sh NATKEEPER - `natkeeper --once --protocol upnp` finds the IGD of routers
# that the plain search and miniupnpc's choice of service miss, played by the scripted IGD in
# place of miniupnpd; each mapping is proved by a packet from wan:
#   service-only  an IGD:1 that answers only a search for WANIPConnection:1 (natkeeper's first
#                 round of searches names the IGD devices and the WAN connection services)
#   tr064         WAN connection services of type urn:dslforum-org:service:WANIPConnection:1
#   two-wan       two WAN connections, the first Disconnected with no external address; the
#                 lab's 203.0.113.1 (reserved to miniupnpc) is fine with natkeeper
#   locations     broken LOCATIONs (404, refused, no XML) announced first, then IGD:2, then
#                 IGD:1: the broken ones are passed over, IGD:2 is taken, IGD:1 is not fetched
#                 (natkeeper did this before the other three; kept as a regression check)
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin
gw_stop_miniupnpd

readonly UPNP=urn:schemas-upnp-org

# map_through PORT WHAT [LOCATION]: --once over UPnP (run WHAT) maps udp PORT through LOCATION
# (default $SCRIPTED_IGD_URL), says so in its JSON, and the mapping forwards from wan
map_through() {
  local port=$1 what=$2 location=${3:-$SCRIPTED_IGD_URL}
  nk_run "$what" --once --protocol upnp --no-default-profile --map "udp:$port" --json -v
  assert_rc 0
  json_check "$NK_OUT" '
g = doc.get("gateway") or {}
check(g.get("method") == "upnp", "gateway.method is upnp (got %r)" % g.get("method"))
check(g.get("external_ip") == "203.0.113.1", "gateway.external_ip is 203.0.113.1 (got %r)" % g.get("external_ip"))
check(g.get("detail", "").endswith(" at '"$location"'"), "gateway.detail names '"$location"' (got %r)" % g.get("detail"))
' || fail "$what: natkeeper's JSON gateway section is wrong"
  expect_reaches "udp:$port" || fail "$what: the mapping does not forward"
}

# ---- a router that answers only a search for a WAN connection service
scripted_igd_start --locations igd1 --answer-st "$UPNP:service:WANIPConnection:1"
map_through 7076 service-only
searched=$(grep -oE "M-SEARCH from $LAN_HOST:[0-9]+ ST [^ ]+" <(scripted_igd_log) | awk '{sub(/:$/, "", $NF); print $NF}' |
  LC_ALL=C sort | uniq -c |
  awk '{print $2 "*" $1}' | paste -sd ' ')
# one unicast and one multicast search for each (--once stops resending once it maps)
assert_eq "$searched" "$UPNP:device:InternetGatewayDevice:1*2 $UPNP:device:InternetGatewayDevice:2*2 \
$UPNP:service:WANIPConnection:1*2 $UPNP:service:WANIPConnection:2*2 $UPNP:service:WANPPPConnection:1*2" \
  "natkeeper's searches, with their counts"

# ---- TR-064 names for the connection service
scripted_igd_start --tr064
map_through 7077 tr064
grep -qE "^\[ *[0-9.]+\] $LAN_HOST /ctl/igd2/conn0 AddPortMapping\(.*ExternalPort=7077 .* -> OK" <(scripted_igd_log) ||
  fail "tr064: no AddPortMapping through the dslforum WANIPConnection:1"
pass "tr064: mapped with AddPortMapping through urn:dslforum-org:service:WANIPConnection:1"

# ---- the first WAN connection Disconnected
scripted_igd_start --two-wan
map_through 7078 two-wan
grep -qE "^\[ *[0-9.]+\] $LAN_HOST /ctl/igd2/conn1 AddAnyPortMapping\(.*ExternalPort=7078 .* -> OK" <(scripted_igd_log) ||
  fail "two-wan: no AddAnyPortMapping through the second, connected, WAN connection"
grep -qE "/ctl/igd2/conn0 (AddPortMapping|AddAnyPortMapping)\(" <(scripted_igd_log) &&
  fail "two-wan: natkeeper tried to map through the Disconnected connection"
pass "two-wan: mapped through the second WAN connection only"

# ---- broken LOCATIONs first
scripted_igd_start --locations missing,refused,junk,igd2,igd1
url() { printf '%s\n' "${SCRIPTED_IGD_LOCATIONS[@]}" | grep "/$1.xml$"; }
map_through 7079 locations "$(url igd2)"
fetched=$(grep -oE "GET /[a-z0-9]+\.xml from $LAN_HOST" <(scripted_igd_log) | awk '{print $2}' | paste -sd ' ')
assert_eq "$fetched" "/missing.xml /junk.xml /igd2.xml" "descriptions fetched, in order (refused has no server)"
grep -q "$(url refused): " "$NK_ERR" || fail "locations: natkeeper did not try the refused LOCATION"
pass "locations: the refused LOCATION was tried and given up"

e2e_pass
