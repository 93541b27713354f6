#!/usr/bin/env bash
# test_forged_notices.sh NATKEEPER PROTOCOL - a rogue LAN device forges the gateway's
# notices: for 30 s, 4 a second each, PCP ANNOUNCEs with epoch 0, NAT-PMP notices of
# another external address (198.51.100.66) and SSDP alive notices with a new boot id, all
# with the gateway's address as their source (tests/e2e/forge_notices.py). The service,
# mapping the Ring profile over PROTOCOL (upnp, natpmp or pcp), may ask the gateway about
# them but must not map again because of them: counted at the gateway (nftables counters on
# its LAN side), its requests stay within the backoff's budget, no round starts, the rules
# stay and forward, and --status keeps the real external address.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$1"
PROTO=${2:?usage: $0 NATKEEPER upnp|natpmp|pcp}
TEST_NAME="$TEST_NAME-$PROTO"
lab_begin_rogue

readonly FORGE_SECONDS=30 FORGE_RATE=4
# Questions back off 2, 4, 8, 16 s while they find nothing: at most 5 in 30 s, each one
# request (NAT-PMP, PCP) or two HTTP connections (UPnP); nothing else is due then.
readonly MAX_UDP=6 MAX_TCP=12

CONFIG=$LAB_STATE/natkeeper.toml
printf '[gateway]\nprotocol = "%s"\n' "$PROTO" >"$CONFIG"
nk_service_start -c "$CONFIG" -v || fail "the service did not start"
gw_wait_rule_count "$RING_COUNT" 10 || fail "the first round did not map the profile"
wait_log 5 "of $RING_COUNT mappings active via" || fail "no status line after the first round"

# What the LAN host sends the gateway from here on: PCP/NAT-PMP requests and new HTTP connections.
in_gw nft -f - <<NFT || fail "cannot add the counters to the gateway"
table inet nkcount {
  chain input {
    type filter hook input priority -500;
    ip saddr $LAN_HOST udp dport 5351 counter
    ip saddr $LAN_HOST tcp dport 5000 tcp flags & (syn | ack) == syn counter
  }
}
NFT
counter() {   # 1: udp, 2: tcp
  in_gw nft list chain inet nkcount input | awk -v n="$1" '/counter packets/ { if (++i == n) { for (f = 1; f < NF; f++) if ($f == "packets") print $(f + 1) } }'
}

# A forged "I restarted" (epoch 0) is true of a gateway up for less than the 2 s an
# answer's epoch may differ from an announced one: the gateway must have been up longer.
sleep 3
nk_log_mark
t0=$(now_us)
sent=$(in_rogue "$PYTHON" "$E2E_DIR/forge_notices.py" --gateway "$LAN_GW" \
  --location "http://$LAN_GW:5000/rootDesc.xml" --rate "$FORGE_RATE" --seconds "$FORGE_SECONDS") ||
  fail "the forged notices were not sent"
elapsed_ms=$((($(now_us) - t0) / 1000))
udp=$(counter 1) tcp=$(counter 2)
say "forged $sent notices in $elapsed_ms ms; natkeeper sent the gateway $udp PCP/NAT-PMP requests and opened $tcp HTTP connections meanwhile"
say "$(grep -c 'the gateway says nothing changed' <(tail -n +$((NK_LOG_MARK + 1)) "$NK_SVC_ERR")) questions found nothing"
[ "$udp" -le "$MAX_UDP" ] || fail "$udp PCP/NAT-PMP requests during the forged stream (at most $MAX_UDP)"
[ "$tcp" -le "$MAX_TCP" ] || fail "$tcp HTTP connections during the forged stream (at most $MAX_TCP)"
pass "the gateway was asked $udp times over UDP and $tcp times over HTTP in ${FORGE_SECONDS} s of forged notices"
if tail -n +$((NK_LOG_MARK + 1)) "$NK_SVC_ERR" | grep -E "mapping everything again|finding the gateway again|external address changed"; then
  fail "the forged notices started a round, a reconnection or an address change"
fi
pass "no round, reconnection or address change"

ip netns exec "$LAB_NS_LAN" env RUNTIME_DIRECTORY="$NK_RUNTIME_DIR" "$NK" --status --json >"$LAB_STATE/status.json" ||
  fail "--status did not answer"
json_check "$LAB_STATE/status.json" '
g = doc.get("gateway") or {}
check(g.get("external_ip") == "203.0.113.1", "gateway.external_ip is still 203.0.113.1 (got %r)" % g.get("external_ip"))
s = doc.get("summary") or {}
check(s.get("active") == int(env["N"]), "every mapping active: %r" % s)
' "N=$RING_COUNT" || fail "--status was misled by the forged notices"
assert_eq "$(gw_rule_count)" "$RING_COUNT" "rules at the gateway"
expect_reaches udp:7076 tcp:15063 || fail "the mappings do not forward after the forged notices"
e2e_pass
