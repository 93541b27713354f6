#!/usr/bin/env bash
# test_verify_basic_stun.sh NATKEEPER - a STUN server without RFC 5780, as most public ones
# are, cannot prove mappings: coturn with a single address names no OTHER-ADDRESS, answers
# CHANGE-REQUEST with 420 and ignores RESPONSE-PORT. Every UDP mapping then stays "mapped"
# with a note naming the server and why, not "unreachable", and --once exits 0. The lab's
# RFC 5780 coturn still proves the same mappings.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$1"
lab_begin

BASIC_STUN=203.0.113.2:3480
# One -L address: coturn leaves RFC 5780 off (the lab's own coturn has two).
timeout -k 1 150 ip netns exec "$LAB_NS_WAN" turnserver -n --stun-only -L "${BASIC_STUN%:*}" \
  -p "${BASIC_STUN#*:}" --no-cli --no-tls --no-dtls --no-tcp --userdb "$LAB_STATE/turndb-basic" \
  --log-file stdout --simple-log --pidfile "$LAB_STATE/coturn-basic.pid" \
  </dev/null >"$LAB_STATE/coturn-basic.log" 2>&1 &
for _ in $(seq 100); do in_wan ss -Hlun "sport = :${BASIC_STUN#*:}" | grep -q . && break; sleep 0.05; done
in_wan ss -Hlun "sport = :${BASIC_STUN#*:}" | grep -q . || fail "coturn with one address did not come up on $BASIC_STUN"
pass "coturn with one address listens on $BASIC_STUN"

nk_run basic --once --stun "$BASIC_STUN" --json
assert_rc 0
json_check "$NK_OUT" '
udp = [m for m in maps if m["proto"] == "udp"]
why = "not verified: the STUN server %s does not support RFC 5780" % env["server"]
bad = [(m["internal_port"], m["state"], m["verification"]["note"]) for m in udp
       if m["state"] != "mapped" or not (m["verification"]["note"] or "").startswith(why)]
check(len(udp) == 106 and not bad, "every UDP mapping mapped, saying why" + (": %s" % bad[:3] if bad else ""))
print("info: note: %s" % udp[0]["verification"]["note"])
check("no OTHER-ADDRESS" in udp[0]["verification"]["note"], "the note says the server has no OTHER-ADDRESS")
check(doc["summary"]["failed"] == 0, "none failed in the summary (%r)" % doc["summary"])
check(doc["observed_public_ip"] == "203.0.113.1", "the server still saw 203.0.113.1 (%r)" % doc["observed_public_ip"])
' "server=$BASIC_STUN" || fail "verification through a STUN server without RFC 5780"
grep -q "unreachable" "$NK_ERR" && fail "stderr calls mappings unreachable: $(grep -m1 unreachable "$NK_ERR")"
pass "stderr calls no mapping unreachable"

nk_run rfc5780 --once --no-default-profile --map udp:7076-7077 --stun "$STUN" --json
assert_rc 0
json_check "$NK_OUT" '
check([m["state"] for m in maps] == ["verified"] * 2, "the RFC 5780 server proves the same mappings")
' || fail "verification through the RFC 5780 STUN server"

e2e_pass
