#!/usr/bin/env bash
# test_service.sh NATKEEPER PROTOCOL - the service's life over one protocol (upnp, natpmp
# or pcp), against the real miniupnpd:
#   start: the Ring profile and one extra port are mapped; --status answers;
#   SIGHUP with one port added and one removed: exactly that change at the gateway;
#   gateway reboot that loses its state: every mapping back (seconds measured);
#   the gateway's WAN address changes: detected, logged and in --status;
#   the LAN link goes down and up: noticed through netlink, everything mapped again;
#   SIGUSR1: everything requested again;
#   SIGKILL, then a new start: the leftovers are taken over, no duplicates;
#   SIGTERM: every rule gone within 5 s, exit 0, the state file removed.
# Throughout, a stand-in for systemd's notification socket records what the service
# tells systemd (READY, STATUS, RELOADING, STOPPING, WATCHDOG).
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$1"
PROTO=${2:?usage: $0 NATKEEPER upnp|natpmp|pcp}
TEST_NAME="$TEST_NAME-$PROTO"
case "$PROTO" in
  upnp) RESTORE_LIMIT=10 ;;
  *) RESTORE_LIMIT=2 ;;
esac
lab_begin

CONFIG=$LAB_STATE/natkeeper.toml
write_config() {   # PORT: the Ring profile and PROTO:PORT
  cat >"$CONFIG" <<EOF
[gateway]
protocol = "$PROTO"
[mapping]
ports = ["$1"]
EOF
}
status_json() {
  ip netns exec "$LAB_NS_LAN" env RUNTIME_DIRECTORY="$NK_RUNTIME_DIR" "$NK" --status --json >"$LAB_STATE/status.json"
}
# every DNAT rule once: miniupnpd would keep a second rule for the same port
expect_no_duplicates() {
  local rules all unique
  rules=$(gw_rules)  # one snapshot: a round in progress replaces rules between two reads
  all=$(wc -l <<<"$rules") unique=$(sort -u <<<"$rules" | wc -l)
  [ "$all" = "$unique" ] || fail "the gateway has duplicate rules ($all rules, $unique distinct)"
  pass "no duplicate rules at the gateway ($all)"
}
# every "mapping everything again" / "finding the gateway again" so far was followed by a round
rounds_done() {
  awk '/mapping everything again|finding the gateway again/ { pending = 1 } /asked for [0-9]+ mappings via/ { pending = 0 }
       END { exit pending }' "$NK_SVC_ERR"
}
gw_has_rule() { gw_rules | grep "^$1 $2 " >/dev/null; }  # not -q: see lab.sh's start_miniupnpd
# --status: every mapping active, on external address IP
status_all_active_on() {
  status_json && json_check "$LAB_STATE/status.json" '
check((doc.get("gateway") or {}).get("external_ip") == env["IP"], "external_ip")
check((doc.get("summary") or {}).get("active") == int(env["N"]), "all active")' "IP=$1" "N=$EXPECTED" >/dev/null
}
EXPECTED=$((RING_COUNT + 1))

NOTIFY_LOG=$LAB_STATE/sd_notify.log
: >"$NOTIFY_LOG"
timeout -k 1 120 "$PYTHON" "$E2E_DIR/notify_listener.py" "$LAB_STATE/notify.sock" "$NOTIFY_LOG" 110 &
NOTIFY_PID=$!
wait_for 3 test -S "$LAB_STATE/notify.sock" || fail "the notification socket stand-in did not start"
notified() { grep -c -E "^[0-9.]+ $1\$" "$NOTIFY_LOG"; }
notified_times() { [ "$(notified "$1")" -ge "$2" ]; }   # MESSAGE N: at least N times so far
# WATCHDOG_USEC: systemd's WatchdogSec=, here 1 s so WATCHDOG=1 comes every 0.5 s
export NOTIFY_SOCKET=$LAB_STATE/notify.sock WATCHDOG_USEC=1000000

write_config "udp:5000"
nk_service_start -c "$CONFIG" -v || fail "the service did not start"
gw_wait_rule_count "$EXPECTED" 10 || fail "the first round did not map the profile and udp:5000"
wait_log 5 "of $EXPECTED mappings active via" || fail "no status line after the first round"
status_json || fail "--status did not answer"
json_check "$LAB_STATE/status.json" '
s = doc.get("summary") or {}
check(s.get("planned") == int(env["N"]) and s.get("active") == int(env["N"]), "summary: %r" % s)
g = doc.get("gateway") or {}
check(g.get("method") == env["PROTO"], "gateway.method %r" % g.get("method"))
check(g.get("external_ip") == "203.0.113.1", "gateway.external_ip %r" % g.get("external_ip"))
m = doc.get("mappings") or []
check(all(x.get("state") == "mapped" and x.get("renew_in_s", 0) > 1000 for x in m), "every mapping mapped, renewal > 1000 s away")
' "PROTO=$PROTO" "N=$EXPECTED" || fail "--status --json is wrong"
wait_for 3 notified_times READY=1 1 || fail "no READY=1"
grep -q -E "^[0-9.]+ STATUS=$EXPECTED of $EXPECTED mappings active via " "$NOTIFY_LOG" || fail "no STATUS= summary: $(cat "$NOTIFY_LOG")"
pass "systemd was told READY=1 and the status line"
ip netns exec "$LAB_NS_LAN" env RUNTIME_DIRECTORY="$NK_RUNTIME_DIR" "$NK" --status >"$LAB_STATE/status.txt" ||
  fail "--status (text) failed"
grep -q "^udp    16500-16599 " "$LAB_STATE/status.txt" || fail "--status text does not fold the RTP window: $(cat "$LAB_STATE/status.txt")"
pass "--status answers (text and JSON)"

# reload: udp:5000 removed, udp:5001 added, the rest untouched
rules_before=$(gw_rules | sort)
write_config "udp:5001"
nk_service_signal HUP
wait_log 5 "reloaded .*: 1 mappings added, 1 removed, $RING_COUNT unchanged" || fail "no reload"
wait_for 3 notified_times READY=1 2 || fail "no READY=1 after the reload"
grep -q -E "^[0-9.]+ RELOADING=1$" "$NOTIFY_LOG" && grep -q -E "^[0-9.]+ MONOTONIC_USEC=[0-9]+$" "$NOTIFY_LOG" ||
  fail "no RELOADING=1 with MONOTONIC_USEC"
pass "systemd was told RELOADING=1, then READY=1"
wait_for 5 gw_has_rule udp 5001 || fail "udp 5001 not mapped after the reload"
expected_rules=$( (grep -v '^udp 5000 ' <<<"$rules_before"; echo "udp 5001 $LAN_HOST:5001") | sort)
wait_for 5 test "$(gw_rules | sort)" = "$expected_rules" || fail "the gateway's rules are not exactly the old ones - udp 5000 + udp 5001"
pass "SIGHUP: exactly udp 5000 removed and udp 5001 added at the gateway"

# an invalid configuration is refused, the running one stays
printf '[mapping]\nports = [\n' >"$CONFIG"
nk_service_signal HUP
wait_log 5 "reload failed, keeping the running configuration: .*natkeeper.toml" || fail "a broken config was not refused"
nk_service_running || fail "the service stopped on a broken config"
write_config "udp:5001"

# the gateway reboots and forgets everything
nk_log_mark
gw_reboot
t0=$(now_us)
gw_wait_rule_count "$EXPECTED" "$RESTORE_LIMIT" || fail "mappings not restored within $RESTORE_LIMIT s of the gateway's restart"
RESTORED_MS=$((($(now_us) - t0) / 1000))
pass "$PROTO: mappings restored $RESTORED_MS ms after the gateway came back (limit $RESTORE_LIMIT s)"
echo "$RESTORED_MS" >"$LAB_STATE/restored-ms"
expect_reaches udp:7076 udp:16599 tcp:15063 udp:5001 || fail "restored mappings do not forward"

# the WAN address changes
nk_log_mark
gw_set_wan_address 203.0.113.9
wait_log 10 "external address changed from 203.0.113.1 to 203.0.113.9" || fail "the address change was not noticed"
# miniupnpd re-checks its address by STUN after the change and refuses (NAT-PMP result 3,
# PCP NO_RESOURCES) what it is asked meanwhile, deleting a mapping it was renewing: the
# service retries those (5 s later). Forwarding is checked once the service says all are
# back, and no round replaces rules (until one ends, with the link gone its requests would
# wait for their timeouts before the change is looked at).
wait_for 15 status_all_active_on 203.0.113.9 || fail "--status does not show every mapping active on the new address"
pass "--status shows every mapping active on the new external address"
wait_for 10 rounds_done || fail "the mapping round after the address change did not end"
expect_reaches udp:7076 tcp:15063 || fail "mappings do not forward on the new address"
expect_no_duplicates

# the LAN link goes down and up (a cable pulled, a Wi-Fi roam): noticed through netlink
nk_log_mark
in_lan ip link set eth0 down
wait_log 10 "no way to the gateway" ||
  fail "the link going down was not noticed (ns lan: $(in_lan ip -br link show eth0); routes: $(in_lan ip -4 route | tr '\n' ';'))"
in_lan ip link set eth0 up
in_lan ip route replace default via "$LAN_GW"
wait_log 5 "the network towards the gateway is back: mapping everything again" || fail "the link coming back was not noticed"
# (the rules were never deleted: the round must have ended before they tell anything)
wait_log 10 "asked for $EXPECTED mappings via" || fail "the mapping round after the link came back did not end"
gw_wait_rule_count "$EXPECTED" 5 || fail "mappings not all there after the link came back"
expect_reaches udp:7076 tcp:15063 || fail "mappings do not forward after the link came back"

# SIGUSR1 (a router's WAN hook): every mapping requested again at once
nk_service_signal USR1
wait_log 5 "SIGUSR1: checking the way to the gateway and mapping everything again" || fail "SIGUSR1 was not taken"
wait_log 10 "asked for $EXPECTED mappings via" || fail "SIGUSR1 did not request the mappings again"

# SIGKILL leaves everything behind; the next start takes it over
rules_before=$(gw_rules | sort)
nk_service_signal KILL
nk_service_wait_exit 5 || fail "natkeeper did not die on SIGKILL"
[ -s "$NK_STATE_DIR/mappings.json" ] || fail "no state file after SIGKILL"
nk_service_start -c "$CONFIG" -v || fail "the service did not start again"
wait_log 10 "left by an earlier run: $EXPECTED taken over, 0 no longer wanted removed" || fail "the leftovers were not taken over"
wait_log 10 "of $EXPECTED mappings active via" || fail "no status line after the restart"
[ "$(gw_rules | sort)" = "$rules_before" ] || fail "the rules changed over the restart"
expect_no_duplicates

# SIGTERM removes everything
t0=$(now_us)
nk_service_signal TERM
nk_service_wait_exit 5 || fail "natkeeper did not exit within 5 s of SIGTERM"
assert_eq "$NK_SVC_RC" 0 "exit status after SIGTERM"
[ "$(notified 'STOPPING=1')" -ge 1 ] || fail "no STOPPING=1"
[ "$(notified 'WATCHDOG=1')" -ge 4 ] || fail "WATCHDOG=1 came $(notified 'WATCHDOG=1') times"
pass "systemd was told STOPPING=1, and WATCHDOG=1 $(notified 'WATCHDOG=1') times"
kill "$NOTIFY_PID" 2>/dev/null
gw_wait_rule_count 0 0.5 || fail "rules left at the gateway after SIGTERM"
pass "SIGTERM: exit 0 and no rule left, $((($(now_us) - t0) / 1000)) ms"
[ ! -e "$NK_STATE_DIR/mappings.json" ] || fail "the state file is still there with nothing mapped"
expect_blocked udp:7076 tcp:15063 || fail "ports still reachable after the service stopped"

e2e_pass
