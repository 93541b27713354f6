#!/usr/bin/env bash
# test_upnp_vanished.sh NATKEEPER - a UPnP mapping that vanishes behind the service's back
# comes back, with and without the gateway's events:
#   miniupnpd: another client's DeletePortMapping (upnpc -d from the lan host: in secure
#     mode miniupnpd lets only a mapping's internal client delete it) is told to natkeeper's
#     event subscription (an event with PortMappingNumberOfEntries); the mapping is back
#     within EVENT_HEAL_LIMIT s right after the service's own round (whose own events had a
#     slice read back: the next waits for the read-back's request rate), within
#     QUIET_HEAL_LIMIT s when nothing was read back for a while (the heal times are printed);
#   then over a quiet QUIET_S s window natkeeper sends the gateway at most 2 requests a
#     second on average (TCP connections to its port 5000, counted by nftables; printed);
#   the scripted IGD, which has no eventing (SUBSCRIBE: 405): a silent loss (its `forget`)
#     is found by the paced read-back alone, within 60 s + a pass + a round (130 s).
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
command -v upnpc >/dev/null || fail "missing upnpc (package miniupnpc)"
EVENT_HEAL_LIMIT=10 QUIET_HEAL_LIMIT=3 POLL_HEAL_LIMIT=130 QUIET_S=120
PORTS="udp:7100-7103" COUNT=4 VICTIM=7101
lab_begin

CONFIG=$LAB_STATE/natkeeper.toml
cat >"$CONFIG" <<EOF
[gateway]
protocol = "upnp"
[profile]
name = "none"
[mapping]
ports = ["$PORTS"]
[verify]
enabled = false
EOF
victim_mapped() { gw_rules | grep -x "udp $VICTIM $LAN_HOST:$VICTIM" >/dev/null; }  # not -q: see lab.sh
# delete_victim: as another LAN client (the lan host itself: secure mode)
delete_victim() {
  # (its rule may be back before upnpc ends: the deletion shows in what upnpc says)
  in_lan timeout 10 upnpc -u "http://$LAN_GW:5000/rootDesc.xml" -d "$VICTIM" UDP >"$LAB_STATE/upnpc-d.log" 2>&1 &&
    grep -x "UPNP_DeletePortMapping() returned : 0" "$LAB_STATE/upnpc-d.log" >/dev/null ||
    fail "upnpc -d $VICTIM UDP failed: $(tail -n 2 "$LAB_STATE/upnpc-d.log")"
  pass "another client deleted udp $VICTIM (upnpc -d)"
}
# heal_within T0 SECONDS WHAT: wait for the victim's rule; print how long it took since T0 (HEAL_MS)
heal_within() {
  wait_for "$2" victim_mapped || fail "$3: udp $VICTIM not mapped again within $2 s"
  HEAL_MS=$((($(now_us) - $1) / 1000))
  pass "$3: udp $VICTIM mapped again after $HEAL_MS ms (limit $2 s)"
  expect_reaches "udp:$VICTIM" || fail "$3: udp $VICTIM does not forward again"
}

# ---- miniupnpd, whose events tell a deletion
nk_service_start -c "$CONFIG" -v || fail "the service did not start"
gw_wait_rule_count "$COUNT" 10 || fail "the service did not map $PORTS"
wait_log 5 "UPnP events: subscribed to /evt/IPConn" || fail "no subscription to miniupnpd's events"
sleep 1  # the round's own events come first
nk_log_mark
t0=$(now_us)
delete_victim
heal_within "$t0" "$EVENT_HEAL_LIMIT" "with events, right after the round"
wait_log 1 "UPnP event: the gateway's table or connection changed \\([0-9]+ mappings\\)" ||
  fail "the deletion did not come as an event"
wait_log 1 "udp $VICTIM \(external port $VICTIM\) is gone from the gateway" || fail "the read-back did not find it gone"
# Mapping it again was an event too, whose slice is read up to 8 s (the spacing) later;
# 8 s after that nothing read back recently holds a hint up.
sleep 17
nk_log_mark
t0=$(now_us)
delete_victim
heal_within "$t0" "$QUIET_HEAL_LIMIT" "with events, at a quiet moment"
wait_log 1 "udp $VICTIM \(external port $VICTIM\) is gone from the gateway" || fail "the read-back did not find it gone"

# ---- a quiet window: what natkeeper asks the gateway
in_gw nft -f - <<'EOF' || fail "cannot add the request counter"
table inet nkcount {
  chain input {
    type filter hook input priority -10; policy accept;
    ip saddr 10.77.0.2 tcp dport 5000 tcp flags & (syn | ack) == syn counter
  }
}
EOF
sleep "$QUIET_S"
connections=$(in_gw nft list chain inet nkcount input | sed -n 's/.* counter packets \([0-9]*\) .*/\1/p')
[ -n "$connections" ] || fail "cannot read the request counter"
rate=$(awk -v n="$connections" -v s="$QUIET_S" 'BEGIN { printf "%.3f", n / s }')
awk -v r="$rate" 'BEGIN { exit !(r <= 2) }' || fail "$connections requests in $QUIET_S s: $rate a second, over 2"
pass "quiet window: $connections requests to the gateway in $QUIET_S s, $rate a second (limit 2)"
nk_service_stop || fail "the service did not stop"
gw_wait_rule_count 0 5 || fail "the service left mappings behind"

# ---- the scripted IGD: no events, only the read-back finds a loss
gw_stop_miniupnpd
scripted_igd_start
nk_service_start -c "$CONFIG" -v || fail "the service did not start again"
gw_wait_rule_count "$COUNT" 10 || fail "the service did not map $PORTS at the scripted IGD"
wait_log 10 "UPnP events: subscribing failed" || fail "the scripted IGD's refusal of SUBSCRIBE was not logged"
nk_log_mark
scripted_igd_ctl forget udp "$VICTIM" >/dev/null
t0=$(now_us)
pass "the scripted IGD forgot udp $VICTIM silently"
heal_within "$t0" "$POLL_HEAL_LIMIT" "without events"
wait_log 1 "udp $VICTIM \(external port $VICTIM\) is gone from the gateway" || fail "the read-back did not find it gone"

e2e_pass
