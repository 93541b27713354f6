#!/usr/bin/env bash
# test_upnp_wan_change.sh NATKEEPER - the service over UPnP-IGD follows a change of the router's
# WAN address that nothing announces, as the scripted IGD plays it (no NAT-PMP, no PCP, no SSDP
# NOTIFY; GetExternalIPAddress tells the WAN interface's address of the moment):
#   the router grants 20 s of the 60 asked: --status shows that lease, renewals come within it;
#   the WAN address changes: within a minute of the last reading and a renewal, --status shows the
#   new external address, changed once, and the STUN check from wan then finds one NAT (no false
#   double NAT from an old address); the mappings forward to the new address;
#   SIGTERM: every rule gone.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin
gw_stop_miniupnpd

readonly NEW_WAN=203.0.113.9
scripted_igd_start --max-lease 20
CONFIG=$LAB_STATE/natkeeper.toml
cat >"$CONFIG" <<EOF
[gateway]
protocol = "upnp"
[profile]
name = "none"
[mapping]
ports = ["udp:7076-7077"]
lease = 60
[verify]
stun = "$STUN"
EOF

# status_fields: "EXTERNAL_IP NAT OBSERVED_PUBLIC_IP EXTERNAL_IP_CHANGES" of the service's status
status_fields() {
  nk_status_json && "$PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
print((d.get("gateway") or {}).get("external_ip"), d.get("nat"), d.get("observed_public_ip"), d.get("external_ip_changes"))
' "$LAB_STATE/status.json"
}
# expect_status WHAT IP: every mapping verified on IP:its port, NAT single as seen from IP, the
# lease the router holds (20 s) and a renewal within it
expect_status() {
  nk_status_json || fail "--status did not answer"
  json_check "$LAB_STATE/status.json" '
g = doc.get("gateway") or {}
check(g.get("external_ip") == env["IP"], "gateway.external_ip %s (got %r)" % (env["IP"], g.get("external_ip")))
check(doc.get("nat") == "single" and doc.get("observed_public_ip") == env["IP"],
      "nat single, observed_public_ip %s (got %r, %r)" % (env["IP"], doc.get("nat"), doc.get("observed_public_ip")))
rows = doc.get("mappings") or []
shown = [(r.get("internal_port"), r.get("count"), r.get("external_ip"), r.get("state"), r.get("lease"), r.get("renew_in_s"))
         for r in rows]
check(sum(r.get("count", 0) for r in rows) == 2 and all(r.get("state") == "verified" and r.get("external_ip") == env["IP"]
      and r.get("external_port") == r.get("internal_port") for r in rows), "both mappings verified on %s (%r)" % (env["IP"], shown))
check(all(r.get("lease") == "20s" and 0 <= r.get("renew_in_s", -1) <= 13 for r in rows),
      "the lease held, 20 s, and a renewal within 13 s (%r)" % shown)
' "IP=$1" || fail "$2: --status is wrong"
}

nk_service_start -c "$CONFIG" -v || fail "the service did not start"
gw_wait_rule_count 2 10 || fail "the service did not map udp 7076-7077"
wait_log 15 "2 of 2 mappings active via .*, 2 verified" || fail "the mappings were not verified by STUN"
expect_status 203.0.113.1 "after the start"

# the new address: nothing tells natkeeper but GetExternalIPAddress, read again once a minute old
gw_set_wan_address "$NEW_WAN"
t0=$(now_us) seen=() fields=
for ((i = 0; i < 120; i++)); do   # one look a second, 100 s at most
  fields=$(status_fields) || fail "--status did not answer"
  [[ " ${seen[*]} " == *" $fields "* ]] || seen+=("$fields")
  [[ $fields == "$NEW_WAN single $NEW_WAN 1" ]] && break
  [ $(($(now_us) - t0)) -lt 100000000 ] || break
  sleep 1
done
say "  --status seen (external_ip nat observed_public_ip changes): $(printf '[%s] ' "${seen[@]}")"
assert_eq "$fields" "$NEW_WAN single $NEW_WAN 1" \
  "--status $((($(now_us) - t0) / 1000)) ms after the change: external_ip nat observed_public_ip external_ip_changes"
printf '%s\n' "${seen[@]}" | grep -q " double " && fail "--status showed a double NAT meanwhile"
pass "no double NAT shown meanwhile"
wait_log 1 "the gateway's external address changed from 203\.0\.113\.1 to $NEW_WAN" || fail "the change was not logged"
expect_status "$NEW_WAN" "after the change"
expect_reaches udp:7076-7077 || fail "the mappings do not forward to the new address"

nk_service_stop 5
assert_eq "$NK_SVC_RC" 0 "the service's exit status after SIGTERM"
assert_eq "$(gw_rule_count)" 0 "DNAT rules to $LAN_HOST after the stop"
expect_blocked udp:7076-7077 || fail "ports still forwarded after the stop"

e2e_pass
