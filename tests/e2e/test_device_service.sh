#!/usr/bin/env bash
# test_device_service.sh NATKEEPER REFLECTOR - the service maps for a device it knows by
# MAC, over UPnP, with verification through natkeeper-reflector:
#   the doorbell is found in the neighbour table and its ports are mapped to it: a datagram
#   and a TCP connection from the wan side arrive in its namespace;
#   its TCP port is verified by a handshake the doorbell completed; its UDP port stays
#   "mapped", never verified, with a note on what was proven;
#   the doorbell is renumbered (DHCP): within 15 s its mappings lead to the new address,
#   and none to the old one remains;
#   SIGTERM: nothing is left at the gateway.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$1"
LAB_REFLECTOR=${2:?usage: $0 NATKEEPER NATKEEPER-REFLECTOR}
LAB_THIRD_PARTY=open
export LAB_THIRD_PARTY
lab_begin_doorbell
doorbell_listen udp:7076 tcp:15063

CONFIG=$LAB_STATE/natkeeper.toml
cat >"$CONFIG" <<EOF2
[gateway]
protocol = "upnp"
[verify]
reflector = "$REFLECTOR"
[[device]]
name = "doorbell"
mac = "$DOORBELL_MAC"
profile = "none"
ports = ["udp:7076", "tcp:15063"]
EOF2
rules_to() { gw_rules | awk -v a="$1:" 'index($3, a) == 1' | wc -l; }
status_json() {
  ip netns exec "$LAB_NS_LAN" env RUNTIME_DIRECTORY="$NK_RUNTIME_DIR" "$NK" --status --json >"$LAB_STATE/status.json"
}

nk_service_start -c "$CONFIG" -v || fail "the service did not start"
wait_log 10 "2 of 2 mappings active via" || fail "no status line after the first round"
assert_eq "$(rules_to "$DOORBELL_IP")" 2 "DNAT rules to the doorbell"
assert_eq "$(gw_rule_count)" 0 "DNAT rules to this host"
expect_doorbell_reaches udp:7076 tcp:15063 || fail "the mapped ports do not reach the doorbell"

wait_for 20 eval 'status_json && grep -q "\"verified_by\": \"reflector\"" "$LAB_STATE/status.json"' ||
  fail "the service never verified the doorbell's TCP port"
json_check "$LAB_STATE/status.json" '
rows = {(m["proto"], m["internal_port"]): m for m in doc["mappings"]}
tcp, udp = rows[("tcp", 15063)], rows[("udp", 7076)]
for m in (tcp, udp):
    check(m["internal_client"] == env["DOORBELL"] and m["device"] == "doorbell", "%s %s is for the doorbell (%r, %r)" % (m["proto"], m["internal_port"], m["internal_client"], m["device"]))
check(tcp["state"] == "verified" and tcp["verified_by"] == "reflector", "tcp 15063 verified by a handshake (%r, %r)" % (tcp["state"], tcp["note"]))
check(udp["state"] == "mapped", "udp 7076 is only mapped, never verified (%r)" % udp["state"])
check("gateway forwards" in udp["note"] or "canary" in udp["note"], "its note says what was proven (%r)" % udp["note"])
' "DOORBELL=$DOORBELL_IP" || fail "the device's verification states are wrong"

OLD_IP=$DOORBELL_IP
t0=$(now_us)
doorbell_renumber 10.77.0.51
moved() { [ "$(rules_to 10.77.0.51)" = 2 ] && [ "$(rules_to "$OLD_IP")" = 0 ]; }
wait_for 15 moved || fail "the mappings did not follow the doorbell to 10.77.0.51 within 15 s ($(gw_rules | paste -sd ' '))"
pass "the mappings followed the doorbell to 10.77.0.51 in $((($(now_us) - t0) / 1000)) ms"
wait_log 5 "device doorbell is at 10.77.0.51 now \(was $OLD_IP\)" || fail "the move was not logged"
expect_doorbell_reaches udp:7076 tcp:15063 || fail "the ports do not reach the renumbered doorbell"

nk_service_stop 5
assert_eq "$NK_SVC_RC" 0 "exit status after SIGTERM"
assert_eq "$(gw_rules | wc -l)" 0 "DNAT rules after stop"
e2e_pass
