#!/usr/bin/env bash
# test_rogue_lan.sh NATKEEPER - a hostile device on the LAN (rogue_device.py in ns rogue)
# answers every SSDP search first, with IGD LOCATIONs on loopback, beyond the gateway, a
# 50 MB description, a never-answering server, a redirect loop, a fake IGD that claims
# every mapping (198.51.100.66) and 50 more fake IGDs; and sprays NAT-PMP/PCP replies and
# junk from :5351 at every ephemeral port natkeeper can have. natkeeper must still map
# through the real gateway: `--discover`, `--once --protocol upnp` and `--once` (auto,
# the Ring profile) each exit 0 within 10 s and 200 MB, the gateway holds the mappings,
# and nothing ever connects to the loopback or off-subnet LOCATION.
# Exit 0 pass, 1 fail, 77 skip (not root).
# A natkeeper stuck on the rogue fails at 20 s, not lib.sh's 60: the test stays well short
# of ctest's limit even then.
NK_TIMEOUT=${NK_TIMEOUT:-20}
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin_rogue

readonly MAX_MS=10000 MAX_RSS_KB=$((200 * 1024))
readonly SMALL_SPECS="udp:7076-7077 tcp:15063"
# 100 ephemeral ports in ns lan (the setting is per namespace), all of them sprayed: every
# UDP socket natkeeper opens gets the rogue's NAT-PMP/PCP replies
in_lan sysctl -qw net.ipv4.ip_local_port_range="40000 40099" || fail "cannot narrow ns lan's port range"
rogue_start --spray-ports 40000-40099 --spray-rate 3000

# bounds NAME: the last run's wall time and peak RSS
bounds() {
  [ "$NK_MS" -lt "$MAX_MS" ] || fail "$1 took $NK_MS ms (limit $MAX_MS)"
  pass "$1 took $NK_MS ms (< $MAX_MS)"
  [ -n "$NK_RSS_KB" ] || fail "$1: no peak RSS measured"
  [ "$NK_RSS_KB" -lt "$MAX_RSS_KB" ] || fail "$1 peaked at $NK_RSS_KB kB resident (limit $MAX_RSS_KB)"
  pass "$1 peaked at $NK_RSS_KB kB resident (< $MAX_RSS_KB)"
}

nk_run_rss discover --discover --json -v
assert_rc 0
bounds --discover
# the UPnP entry is the gateway's own IGD, not one the rogue advertised
json_check "$NK_OUT" '
check(doc.get("gateway", {}).get("address") == "10.77.0.1", "gateway is 10.77.0.1")
protocols = {p.get("method"): p for p in doc.get("protocols", [])}
check(set(protocols) == {"pcp", "natpmp", "upnp"}, "all three protocols listed (got %s)" % sorted(protocols))
for name, p in protocols.items():
    check(p.get("external_ip") == "203.0.113.1", "%s reports external address 203.0.113.1 (got %r)" % (name, p.get("external_ip")))
detail = protocols.get("upnp", {}).get("detail") or ""
check("//10.77.0.1:" in detail, "UPnP is the IGD on the gateway (%r)" % detail)
' || fail "--discover was misled by the rogue"
assert_eq "$(gw_rule_count)" 0 "DNAT rules left by --discover"

nk_run_rss upnp --once --protocol upnp --no-default-profile --map udp:7076-7077 --map tcp:15063 --no-verify --json -v
assert_rc 0
bounds "--once --protocol upnp"
json_check "$NK_OUT" '
g = doc.get("gateway") or {}
check(g.get("external_ip") == "203.0.113.1", "gateway.external_ip is 203.0.113.1 (got %r)" % g.get("external_ip"))
check("//10.77.0.1:" in (g.get("detail") or ""), "the IGD is on the gateway (%r)" % g.get("detail"))
' || fail "UPnP went to the rogue"
json_expect_mappings "$NK_OUT" "$SMALL_SPECS" upnp || fail "natkeeper's JSON mappings are wrong"
gw_expect_rules "$SMALL_SPECS"

nk_run_rss auto --once --json -v
assert_rc 0
bounds "--once (auto, Ring profile)"
json_check "$NK_OUT" '
g = doc.get("gateway") or {}
check(g.get("address") == "10.77.0.1", "gateway.address is 10.77.0.1 (got %r)" % g.get("address"))
check(g.get("external_ip") == "203.0.113.1", "gateway.external_ip is 203.0.113.1 (got %r)" % g.get("external_ip"))
' || fail "auto went astray"
json_expect_mappings "$NK_OUT" "$RING_SPECS" || fail "natkeeper's JSON mappings are wrong"
gw_expect_rules "$RING_SPECS"

# Named with --igd, the rogue's hostile descriptions are fetched: each is refused within
# the fetch's limits (size, 5 s, no redirect), and natkeeper says why and exits 69.
for kind in big:1 slow:2 redirect:3; do
  url=http://$ROGUE_IP:$((ROGUE_HTTP_BASE + ${kind#*:}))/desc.xml
  nk_run_rss "igd-${kind%:*}" --once --protocol upnp --gateway "$LAN_GW" --igd "$url" --no-default-profile \
    --map udp:7076 --no-verify -v
  assert_rc 69
  bounds "--igd at the rogue's ${kind%:*} description"
  grep -q "UPnP: $url: " "$NK_ERR" || fail "no reason given for refusing $url: $(cat "$NK_ERR")"
  pass "the refusal says why: $(grep -o "UPnP: $url: .*" "$NK_ERR" | head -1)"
done

rogue_counts
# the rogue was really there (it heard natkeeper's searches and sprayed), and was not followed
verdict=$("$PYTHON" - "$ROGUE_COUNTS" "$TRAP_LAN_COUNTS" "$TRAP_WAN_COUNTS" "$LAN_HOST" <<'PY'
import json, sys
rogue, lan, wan = (json.load(open(p)) for p in sys.argv[1:4])
host, bad = sys.argv[4], []
def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        bad.append(what)
searches = rogue["ssdp_searches_by_source"].get(host, 0)
check(searches > 0, f"the rogue answered {searches} SSDP searches from {host}, "
      f"{rogue['ssdp_answers_per_search']} IGD answers each")
check(rogue["spray_sent"] > 100, f"the rogue sprayed {rogue['spray_sent']} NAT-PMP/PCP/junk datagrams")
for name, doc in (("loopback (ns lan)", lan), ("off-subnet (ns wan)", wan)):
    n = sum(doc["tcp_connections"].values())
    check(n == 0, f"connections to the {name} LOCATION {sorted(doc['tcp_connections'])}: {n}")
check(rogue["control_posts"] == 0, f"SOAP calls to the rogue's fake IGD: {rogue['control_posts']} "
      f"{rogue['control_actions']}")
# for the record, not a verdict: which of the rogue's own LOCATIONs were fetched
conns = rogue["tcp_connections"]
print("info: connections to the rogue's LOCATIONs: " + ", ".join(f"{k} {v}" for k, v in sorted(conns.items()))
      + f"; 50 MB description bytes sent {rogue['big_bytes_sent']}")
sys.exit(1 if bad else 0)
PY
)
rc=$?
say "$verdict"
E2E_CHECKS=$((E2E_CHECKS + $(grep -c '^ok: ' <<<"$verdict")))
[ "$rc" = 0 ] || fail "the rogue's counts say natkeeper followed it"

e2e_pass
