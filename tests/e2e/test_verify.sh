#!/usr/bin/env bash
# test_verify.sh NATKEEPER REFLECTOR - every mapping of the default profile is proven from
# outside: through natkeeper-reflector (UDP and TCP) and through coturn (RFC 5780 STUN,
# UDP); the NAT is diagnosed as single. A port the application holds stays "mapped" with
# that reason. Then mappings the gateway grants but does not forward (its filter drops
# them) are reported unreachable, with exit status 1.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$1"
LAB_REFLECTOR=${2:?usage: $0 NATKEEPER NATKEEPER-REFLECTOR}
lab_begin

nk_run reflector --once --reflector "$REFLECTOR" --json
assert_rc 0
json_check "$NK_OUT" '
check(len(maps) == 108, "108 mappings (%d)" % len(maps))
bad = [(m["proto"], m["internal_port"], m["state"], m["verification"]["note"]) for m in maps
       if m["state"] != "verified" or m["verification"]["method"] != "reflector"]
check(not bad, "every mapping verified through the reflector" + (": %s" % bad[:5] if bad else ""))
check(doc["nat"] == "single", "nat is single (%r)" % doc["nat"])
check(doc["observed_public_ip"] == "203.0.113.1", "the reflector saw 203.0.113.1 (%r)" % doc["observed_public_ip"])
rtts = sorted(m["verification"]["round_trip_ms"] for m in maps)
print("info: reflector probe round trip ms: median %.2f, max %.2f" % (rtts[len(rtts) // 2], rtts[-1]))
' || fail "verification through the reflector"

nk_run discover --discover --stun "$STUN" --json
assert_rc 0
json_check "$NK_OUT" '
check(doc["nat"] == "single", "--discover: nat is single (%r)" % doc["nat"])
check(doc["observed_public_ip"] == "203.0.113.1", "--discover: STUN saw 203.0.113.1 (%r)" % doc["observed_public_ip"])
' || fail "--discover with STUN"

nk_run stun --once --stun "$STUN" --json
assert_rc 0
json_check "$NK_OUT" '
udp = [m for m in maps if m["proto"] == "udp"]
bad = [(m["internal_port"], m["state"]) for m in udp if m["state"] != "verified" or m["verification"]["method"] != "stun"]
check(len(udp) == 106 and not bad, "every UDP mapping verified through STUN" + (": %s" % bad[:5] if bad else ""))
tcp = [m for m in maps if m["proto"] == "tcp"]
check(all(m["state"] == "mapped" and "reflector" in m["verification"]["note"] for m in tcp),
      "TCP mappings stay mapped, saying they need a reflector")
check(doc["nat"] == "single", "nat is single (%r)" % doc["nat"])
' || fail "verification through STUN"

# The application already holds an internal port: the probe cannot be observed there,
# and natkeeper says so instead of calling the mapping unreachable.
ip netns exec "$LAB_NS_LAN" "$PYTHON" -c 'import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.77.0.2", 7077))
time.sleep(20)' &
holder=$!  # ip netns exec execs python: this is its PID
for _ in $(seq 50); do in_lan ss -Hlun sport = :7077 | grep -q . && break; sleep 0.05; done
nk_run busy --once --no-default-profile --map udp:7076-7077 --stun "$STUN" --json
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
assert_rc 0
json_check "$NK_OUT" '
by_port = {m["internal_port"]: m for m in maps}
check(by_port[7076]["state"] == "verified", "udp 7076 verified (%s)" % by_port[7076]["state"])
busy = by_port[7077]
check(busy["state"] == "mapped" and "in use" in (busy["verification"]["note"] or ""),
      "udp 7077, held by another program, stays mapped and says so (%s: %s)" % (busy["state"], busy["verification"]["note"]))
' || fail "a port held by the application"

# A router that grants mappings but does not forward some of them: its filter drops
# what the mapping would let in (miniupnpd itself may restore a deleted DNAT rule).
in_gw nft insert rule inet filter forward ip daddr "$LAN_HOST" udp dport 7076 drop ||
  fail "cannot add the gateway's drop rule"
in_gw nft insert rule inet filter forward ip daddr "$LAN_HOST" tcp dport 15063 drop ||
  fail "cannot add the gateway's drop rule"
nk_run broken --once --no-default-profile --map udp:7076-7077 --map tcp:15063 --reflector "$REFLECTOR" --json
assert_rc 1
json_check "$NK_OUT" '
state = {(m["proto"], m["internal_port"]): m["state"] for m in maps}
check(state[("udp", 7076)] == "unreachable", "udp 7076 unreachable (%s)" % state[("udp", 7076)])
check(state[("tcp", 15063)] == "unreachable", "tcp 15063 unreachable (%s)" % state[("tcp", 15063)])
check(state[("udp", 7077)] == "verified", "udp 7077 still verified (%s)" % state[("udp", 7077)])
check(doc["summary"]["failed"] == 2, "2 failed in the summary")
' || fail "a mapping that does not forward"
grep -q "unreachable\|failed" "$NK_ERR" || fail "stderr does not name the failure"
pass "stderr: $(head -n1 "$NK_ERR")"

e2e_pass
