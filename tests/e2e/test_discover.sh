#!/usr/bin/env bash
# test_discover.sh NATKEEPER - `--discover --json` in the lab lists all three protocols
# the gateway speaks (PCP, NAT-PMP, UPnP-IGD), each with the external address it reports,
# and says what the address tells about the NAT, without creating the PCP host key (its
# throwaway mapping needs no lasting nonce). With auto, --once picks PCP, and keeps the key.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin
export STATE_DIRECTORY=$LAB_STATE/state
mkdir -p "$STATE_DIRECTORY" || fail "cannot create $STATE_DIRECTORY"

nk_run discover --discover --json
assert_rc 0
json_check "$NK_OUT" '
protocols = {p.get("method"): p for p in doc.get("protocols", [])}
check(set(protocols) == {"pcp", "natpmp", "upnp"}, "all three protocols listed (got %s)" % sorted(protocols))
for name, p in protocols.items():
    check(p.get("external_ip") == "203.0.113.1", "%s reports external address 203.0.113.1 (got %r)" % (name, p.get("external_ip")))
    check(isinstance(p.get("answer_ms"), (int, float)) and p["answer_ms"] >= 0, "%s has an answer time (%r ms)" % (name, p.get("answer_ms")))
check(doc.get("gateway", {}).get("address") == "10.77.0.1", "gateway is 10.77.0.1")
check(doc.get("nat") in ("unknown", "single"), "nat is %r" % doc.get("nat"))
' || fail "--discover --json is wrong"
# the throwaway PCP mapping that told the external address is gone again
assert_eq "$(gw_rule_count)" 0 "DNAT rules left by --discover"
[ ! -e "$STATE_DIRECTORY/host.key" ] || fail "--discover created the PCP host key"
pass "--discover left no host key behind"

nk_run once --once --no-default-profile --map udp:7076 --json
assert_rc 0
json_check "$NK_OUT" '
check(doc["gateway"]["method"] == "pcp", "auto prefers PCP (got %r)" % doc["gateway"]["method"])
' || fail "auto did not choose PCP"
[ -s "$STATE_DIRECTORY/host.key" ] || fail "--once over PCP kept no host key"
pass "--once over PCP keeps the host key"

e2e_pass
