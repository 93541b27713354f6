#!/usr/bin/env bash
# test_verify_double.sh NATKEEPER REFLECTOR - behind carrier-grade NAT (the lab's double
# topology: the gateway's WAN address is 100.64.0.2, the ISP's NAT drops what comes in),
# the gateway grants every mapping, yet none is reachable: natkeeper says "cgnat" and
# reports the mappings unreachable, exit status 1.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$1"
LAB_REFLECTOR=${2:?usage: $0 NATKEEPER NATKEEPER-REFLECTOR}
LAB_TOPOLOGY=double
lab_begin

nk_run once --once --no-default-profile --map udp:7076-7077 --map tcp:15063 \
  --reflector "$REFLECTOR" --stun "$STUN" --json
assert_rc 1
json_check "$NK_OUT" '
check(doc["gateway"]["external_ip"] == "100.64.0.2", "the gateway reports 100.64.0.2 (%r)" % doc["gateway"]["external_ip"])
check(doc["observed_public_ip"] == "203.0.113.1", "the internet sees 203.0.113.1 (%r)" % doc["observed_public_ip"])
check(doc["nat"] == "cgnat", "nat is cgnat (%r)" % doc["nat"])
check("provider" in doc["nat_explanation"], "the explanation says what to ask the provider")
check(all(m["state"] == "unreachable" for m in maps), "every mapping unreachable: %s" % [m["state"] for m in maps])
' || fail "carrier-grade NAT diagnosis"

nk_run discover --discover --reflector "$REFLECTOR" --json
assert_rc 0
json_check "$NK_OUT" '
check(doc["nat"] == "cgnat", "--discover: nat is cgnat (%r)" % doc["nat"])
check(doc["observed_public_ip"] == "203.0.113.1", "--discover: seen from outside as 203.0.113.1 (%r)" % doc["observed_public_ip"])
' || fail "--discover does not diagnose the carrier-grade NAT"

nk_run text --once --no-default-profile --map udp:7076 --reflector "$REFLECTOR"
assert_rc 1
grep -q "carrier-grade NAT" "$NK_OUT" || fail "the text output does not say carrier-grade NAT"
pass "text output names carrier-grade NAT"

e2e_pass
