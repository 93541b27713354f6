#!/usr/bin/env bash
# test_upnp_router_quirks.sh NATKEEPER [CASE...] - `natkeeper --once --protocol upnp --json` maps
# through real routers' UPnP quirks, played by the scripted IGD in place of miniupnpd, as upnpc
# does or better; each mapping is proved by a packet from wan, and --delete (or the service's
# stop) leaves nothing forwarded. The cases (all by default, or those named):
#   lease402 lease725  a finite lease refused with 402 / 725: mapped with a permanent lease, said
#                      so in the JSON, the later requests ask lease 0 at once; upnpc -r maps lease
#                      0 too and leaves it behind; natkeeper --delete removes it
#   permanent-service  the same router and the service: --status says permanent, SIGTERM removes
#   addany401 addany602  an IGD:2 without AddAnyPortMapping: mapped with AddPortMapping and the
#                      lease asked for (upnpc -n fails; upnpc -r maps lease 0)
#   reserved501        a port the router keeps, refused with 501 and a vendor's text: upnp:501,
#                      nothing else made of it; the other port maps
#   held501            501 for a port another client holds: natkeeper:13, the other's mapping
#                      is left alone by --delete
#   phantom            718 once for ports nobody holds: mapped on the second try (upnpc fails)
#   conflict-own conflict-own-igd2  a router that will not refresh this host's own mapping in
#                      place (IGD:1 answers 718, IGD:2's AddAnyPortMapping grants another port):
#                      the second --once deletes it and makes it afresh, on the same port, exit 0
#   wan-private wan-cgnat wan-none  every add refused with 501 by a router whose own WAN
#                      address is 10.x, 100.64.x or empty: the error says why (upnp:501)
#   garbled-igd2 garbled-igd1  a success reply that cannot be read, to AddAnyPortMapping and to
#                      AddPortMapping: the entry read back shows the mapping, reported mapped
#   max-lease          the router shortens the lease: the JSON's lifetime is the one held
#   max-lease-permanent  lease 0 (after a 402) held with an expiry: reported finite, not permanent
# (TR-064 service types and routers found through a service search: test_upnp_find_igd.sh.)
# Exit 0 pass, 1 fail, 77 skip (not root).
# shellcheck disable=SC2317  # (the cases are called by name, "case_$c")
. "$(dirname "$0")/lib.sh"
e2e_init "${1:-}"
shift
ALL_CASES=(lease402 lease725 permanent-service addany401 addany602 reserved501 held501 phantom conflict-own conflict-own-igd2
  wan-private wan-cgnat wan-none garbled-igd2 garbled-igd1 max-lease max-lease-permanent)
if [ $# -gt 0 ]; then CASES=("$@"); else CASES=("${ALL_CASES[@]}"); fi
for c in "${CASES[@]}"; do
  [[ " ${ALL_CASES[*]} " == *" $c "* ]] || { say "unknown case '$c' (cases: ${ALL_CASES[*]})"; exit 64; }
done
command -v upnpc >/dev/null || fail "missing upnpc (package miniupnpc)"
lab_begin
gw_stop_miniupnpd

readonly DEVICE=10.77.0.50   # another LAN client (nothing needs to answer there)
SEVEN="udp:7076-7081 tcp:15063"   # more mappings than UPnP requests in flight (4)

# nk_once NAME SPECS [ARG...]: --once over UPnP for the ports of SPECS (words as udp:7076-7081)
nk_once() {
  local name=$1 spec args=(); shift
  for spec in $1; do args+=(--map "$spec"); done
  shift
  nk_run "$name" --once --protocol upnp --no-default-profile --json "${args[@]}" "$@"
}
# nk_delete NAME SPECS: --delete over UPnP for them; exit 0
nk_delete() {
  local name=$1 spec args=()
  for spec in $2; do args+=(--map "$spec"); done
  nk_run "$name" --delete --protocol upnp --no-default-profile "${args[@]}"
  assert_rc 0
}

# expect_mapped SPECS LIFETIME PERMANENT: the last --once JSON reports exactly SPECS, each mapped
# on its own port of 203.0.113.1, no error, lifetime in LIFETIME (N or LOW-HIGH), permanent as given
expect_mapped() {
  json_check "$NK_OUT" '
want = specs(env["SPECS"])
got = {(m.get("proto"), m.get("internal_port")): m for m in maps}
check(set(got) == want and len(maps) == len(want), "the mappings reported are %s (got %s)" % (env["SPECS"], sorted(got)))
def every(what, ok, shown):
    bad = ["%s %s: %r" % (k[0], k[1], shown(m)) for k, m in sorted(got.items()) if not ok(m)]
    check(not bad, "every mapping: " + what + (" (not: " + "; ".join(bad[:4]) + ")" if bad else ""))
lo, _, hi = env["LIFETIME"].partition("-")
every("mapped, no error", lambda m: m.get("state") == "mapped" and m.get("error") is None,
      lambda m: (m.get("state"), m.get("error_code"), m.get("error")))
every("on 203.0.113.1, external port = internal port",
      lambda m: m.get("external_ip") == "203.0.113.1" and m.get("external_port") == m.get("internal_port"),
      lambda m: (m.get("external_ip"), m.get("external_port")))
every("lifetime %s, permanent %s" % (env["LIFETIME"], env["PERMANENT"]),
      lambda m: isinstance(m.get("lifetime"), int) and int(lo) <= m["lifetime"] <= int(hi or lo)
                and m.get("permanent") is (env["PERMANENT"] == "true"),
      lambda m: (m.get("lifetime"), m.get("permanent")))
' "SPECS=$1" "LIFETIME=$2" "PERMANENT=$3" || fail "natkeeper's JSON mappings are wrong"
}
# expect_failed PROTO PORT CODE REGEX: the last --once JSON reports PROTO PORT failed with
# error_code CODE and an error matching REGEX (re.search)
expect_failed() {
  json_check "$NK_OUT" '
m = next((m for m in maps if m.get("proto") == env["PROTO"] and m.get("internal_port") == int(env["PORT"])), {})
what = "%s %s: " % (env["PROTO"], env["PORT"])
check(m.get("state") == "failed" and m.get("external_port") is None, what + "failed (state %r)" % m.get("state"))
check(m.get("error_code") == env["CODE"], what + "error_code %s (got %r)" % (env["CODE"], m.get("error_code")))
import re
check(re.search(env["REGEX"], m.get("error") or "") is not None,
      what + "the error matches /%s/ (got %r)" % (env["REGEX"], m.get("error")))
' "PROTO=$1" "PORT=$2" "CODE=$3" "REGEX=$4" || fail "natkeeper's JSON does not report the failure of $1 $2 as expected"
}
# expect_nothing_forwarded SPEC...: no DNAT rule to the lan host, and the ports do not forward
expect_nothing_forwarded() {
  assert_eq "$(gw_rule_count)" 0 "DNAT rules to $LAN_HOST"
  expect_blocked "$@" || fail "ports still forwarded"
}

# ---- only permanent leases: a finite one refused with 402 Invalid Args (ARRIS NVG578LX) or 725
# OnlyPermanentLeasesSupported (MikroTik RouterOS 6)
finite_lease() {
  local code=$1
  scripted_igd_start --finite-lease-error "$code"
  # upnpc -r asks lease 0: mapped, permanent - and left on the router when upnpc is done
  upnpc_igd -r 7090 UDP || fail "upnpc -r failed"
  upnpc_says "external 203\.0\.113\.1:7090 UDP is redirected to internal $LAN_HOST:7090 \(duration=0\)" \
    "upnpc -r maps a permanent lease (duration=0)"
  nk_once "lease$code" "$SEVEN"
  assert_rc 0
  expect_mapped "$SEVEN" 0 true
  local asked refused
  asked=$(scripted_igd_count "AddAnyPortMapping\(.*Description=natkeeper LeaseDuration=3600\)")
  refused=$(scripted_igd_count "AddAnyPortMapping\(.*Description=natkeeper LeaseDuration=3600\) -> $code ")
  ((asked == refused && refused >= 1 && refused <= 4)) ||
    fail "lease 3600 asked $asked times and refused $refused times for 7 mappings (want 1-4: the later ones ask lease 0)"
  pass "$code to lease 3600 taken as permanent leases only: asked $refused times for 7 mappings, then lease 0"
  gw_expect_rules "$SEVEN udp:7090"
  expect_reaches udp:7076-7081 tcp:15063 || fail "the permanent mappings do not forward"
  nk_delete "delete$code" "$SEVEN"
  gw_rules_are "udp 7090 $LAN_HOST:7090" "rules after natkeeper --delete (upnpc's permanent mapping stays)"
  expect_blocked udp:7076-7081 tcp:15063 || fail "natkeeper's permanent mappings still forward after --delete"
  upnpc_igd -d 7090 UDP || fail "upnpc -d failed"
  expect_nothing_forwarded udp:7090
}
case_lease402() { finite_lease 402; }
case_lease725() { finite_lease 725; }

# the service on the same router: it holds permanent leases, and deletes them at its stop
case_permanent-service() {
  scripted_igd_start --finite-lease-error 402
  printf '[gateway]\nprotocol = "upnp"\n[profile]\nname = "none"\n[mapping]\nports = ["udp:7076", "tcp:15063"]\n' \
    >"$LAB_STATE/permanent.toml"
  nk_service_start -c "$LAB_STATE/permanent.toml" -v || fail "the service did not start"
  gw_wait_rule_count 2 10 || fail "the service did not map udp 7076 and tcp 15063"
  wait_log 10 "2 of 2 mappings active via" || fail "no status line after the first round"
  nk_status_json || fail "--status did not answer"
  json_check "$LAB_STATE/status.json" '
rows = doc.get("mappings") or []
check(sum(r.get("count", 0) for r in rows) == 2 and all(r.get("state") == "mapped" for r in rows),
      "--status: 2 mappings, mapped (%r)" % [(r.get("proto"), r.get("internal_port"), r.get("state")) for r in rows])
check(all(r.get("lease") == "permanent" for r in rows), "--status: every lease permanent (%r)" % [r.get("lease") for r in rows])
' || fail "--status does not show the permanent mappings"
  expect_reaches udp:7076 tcp:15063 || fail "the service's permanent mappings do not forward"
  nk_service_stop 5
  assert_eq "$NK_SVC_RC" 0 "the service's exit status after SIGTERM"
  expect_nothing_forwarded udp:7076 tcp:15063
}

# ---- an IGD:2 whose AddAnyPortMapping is unknown: 401 Invalid Action, 602 Optional Action Not
# Implemented
addany() {
  local code=$1
  scripted_igd_start --addany-error "$code"
  upnpc_igd -n "$LAN_HOST" 7090 7090 UDP 3600 && fail "upnpc -n: AddAnyPortMapping succeeded"
  upnpc_says "^AddAnyPortMapping\(7090, 7090, $LAN_HOST\) failed with code $code " "upnpc -n fails with $code"
  # upnpc -r uses AddPortMapping, with lease 0
  upnpc_igd -r 7090 UDP || fail "upnpc -r failed"
  upnpc_says "is redirected to internal $LAN_HOST:7090 \(duration=0\)" "upnpc -r maps a permanent lease (duration=0)"
  upnpc_igd -d 7090 UDP || fail "upnpc -d failed"
  nk_once "addany$code" "$SEVEN"
  assert_rc 0
  expect_mapped "$SEVEN" 3600 false
  local any plain
  any=$(scripted_igd_count "AddAnyPortMapping\(.*Description=natkeeper .* -> $code ")
  plain=$(scripted_igd_count "AddPortMapping\(.*Description=natkeeper LeaseDuration=3600\) -> OK")
  ((any >= 1 && any <= 4 && plain == 7)) ||
    fail "AddAnyPortMapping asked $any times (want 1-4), AddPortMapping granted $plain times (want 7)"
  pass "AddAnyPortMapping asked $any times for 7 mappings, then AddPortMapping with lease 3600"
  gw_expect_rules "$SEVEN"
  expect_reaches udp:7076-7081 tcp:15063 || fail "the mappings made with AddPortMapping do not forward"
  nk_delete "delete$code" "$SEVEN"
  expect_nothing_forwarded udp:7076-7081 tcp:15063
}
case_addany401() { addany 401; }
case_addany602() { addany 602; }

# ---- 501 and conflicts, on an IGD:1 (AddPortMapping: the conflict error is what it answers)
readonly VENDOR_501="501:Port is used by another service"
case_reserved501() {
  scripted_igd_start --locations igd1 --reserved udp:7080 --conflict-error "$VENDOR_501"
  upnpc_igd -r 7080 UDP && fail "upnpc -r mapped the reserved port"
  upnpc_says "failed with code 501 \(Action Failed\)" "upnpc -r fails on the reserved port with 501"
  nk_once reserved501 "udp:7079-7080"
  assert_rc 1
  expect_failed udp 7080 upnp:501 "^UPnP error 501 Action Failed$"
  json_check "$NK_OUT" '
m = next(m for m in maps if m.get("internal_port") == 7079)
check(m.get("state") == "mapped" and m.get("external_port") == 7079, "udp 7079 mapped (%r)" % m.get("state"))
check(doc.get("nat") != "double", "nat is not double (%r)" % doc.get("nat"))
' || fail "natkeeper's JSON is wrong"
  gw_rules_are "udp 7079 $LAN_HOST:7079" "rules: udp 7079 only"
  expect_reaches udp:7079 || fail "udp 7079 does not forward"
  expect_blocked udp:7080 || fail "the reserved udp 7080 forwards"
  nk_delete delete-reserved "udp:7079-7080"
  expect_nothing_forwarded udp:7079-7080
}
case_held501() {
  scripted_igd_start --locations igd1 --third-party --conflict-error "$VENDOR_501"
  upnpc_igd -a "$DEVICE" 7082 7082 UDP 600 || fail "upnpc -a for $DEVICE failed"
  gw_rules_are "udp 7082 $DEVICE:7082" "another client ($DEVICE) holds udp 7082"
  nk_once held501 "udp:7082-7083"
  assert_rc 1
  expect_failed udp 7082 natkeeper:13 "held by another client"
  json_check "$NK_OUT" '
m = next(m for m in maps if m.get("internal_port") == 7083)
check(m.get("state") == "mapped" and m.get("external_port") == 7083, "udp 7083 mapped (%r)" % m.get("state"))
' || fail "natkeeper's JSON is wrong"
  # (upnpc -a read the entry too: what counts is after natkeeper's add)
  scripted_igd_log | sed -n '/AddPortMapping(.*ExternalPort=7082 .* -> 501 /,$p' |
    grep -qE "GetSpecificPortMappingEntry\(.*ExternalPort=7082 .* -> OK .*InternalClient=$DEVICE " ||
    fail "natkeeper did not ask who holds udp 7082"
  pass "natkeeper asked who holds udp 7082 after the 501"
  gw_rules_are "udp 7082 $DEVICE:7082;udp 7083 $LAN_HOST:7083" "rules: the other's udp 7082, natkeeper's udp 7083"
  expect_reaches udp:7083 || fail "udp 7083 does not forward"
  nk_delete delete-held "udp:7082-7083"
  gw_rules_are "udp 7082 $DEVICE:7082" "rules after --delete: the other client's mapping left alone"
  expect_nothing_forwarded udp:7082-7083
}
case_phantom() {
  scripted_igd_start --locations igd1 --phantom-once udp:7084-7086
  upnpc_igd -r 7086 UDP && fail "upnpc -r mapped through the phantom conflict"
  upnpc_says "failed with code 718 \(ConflictInMappingEntry\)" "upnpc -r fails on a phantom 718"
  nk_once phantom "udp:7084-7085"
  assert_rc 0
  expect_mapped "udp:7084-7085" 3600 false
  local p
  for p in 7084 7085; do
    assert_eq "$(scripted_igd_count "AddPortMapping\(.*ExternalPort=$p .* -> 718 ");$(scripted_igd_count "AddPortMapping\(.*ExternalPort=$p .* -> OK")" \
      "1;1" "udp $p: AddPortMapping refused with 718, then granted"
  done
  gw_expect_rules "udp:7084-7085"
  expect_reaches udp:7084-7085 || fail "the mappings made on the second try do not forward"
  nk_delete delete-phantom "udp:7084-7085"
  expect_nothing_forwarded udp:7084-7085
}

# ---- a refresh of one's own mapping refused with 718 (routers that want a delete first)
conflict_own() {
  scripted_igd_start --locations "$1" --conflict-own
  nk_once own-first "udp:7087-7088"
  assert_rc 0
  expect_mapped "udp:7087-7088" 3600 false
  nk_once own-refresh "udp:7087-7088"
  assert_rc 0
  expect_mapped "udp:7087-7088" 3600 false
  local p
  for p in 7087 7088; do
    assert_eq "$(scripted_igd_count "DeletePortMapping\(.*ExternalPort=$p .* -> OK")" 1 \
      "udp $p: the refused refresh deleted the entry once, to make it afresh"
  done
  gw_expect_rules "udp:7087-7088"
  expect_reaches udp:7087-7088 || fail "the mappings made afresh do not forward"
  nk_delete delete-own "udp:7087-7088"
  expect_nothing_forwarded udp:7087-7088
}
case_conflict-own() { conflict_own igd1; }
case_conflict-own-igd2() { conflict_own igd2; }

# ---- every add refused with 501 by a router whose own WAN address is unusable (miniupnpd
# >= 2.2 behind another NAT; it answers GetExternalIPAddress with an empty address)
refused_wan() {
  local address=$1 code_regex=$2 nat=$3
  scripted_igd_start --external-ip "$address" --refuse 501
  nk_once "wan-${address:-none}" udp:7076
  assert_rc 1
  expect_failed udp 7076 upnp:501 "$code_regex"
  json_check "$NK_OUT" 'check(doc.get("nat") == env["NAT"], "nat is %s (got %r)" % (env["NAT"], doc.get("nat")))' "NAT=$nat" ||
    fail "natkeeper's NAT diagnosis is wrong"
  expect_nothing_forwarded udp:7076
}
case_wan-private() { refused_wan 10.0.0.7 "^the router's own WAN is behind another NAT \(its external address is 10\.0\.0\.7\).*\(UPnP error 501 Action Failed\)$" double; }
case_wan-cgnat() { refused_wan 100.64.0.9 "^the router's own WAN is behind the internet provider's carrier-grade NAT \(its external address is 100\.64\.0\.9\).*\(UPnP error 501 Action Failed\)$" cgnat; }
case_wan-none() { refused_wan "" "^the router has no external address of its own \(0\.0\.0\.0\).*\(UPnP error 501 Action Failed\)$" unknown; }

# ---- a success reply that is no XML: AddAnyPortMapping's (libminiupnpc: invalid response) and
# AddPortMapping's (libminiupnpc takes it for success)
garbled() {
  local locations=$1 action=$2
  scripted_igd_start --locations "$locations" --garbled-add
  nk_once "garbled-$locations" "udp:7076 tcp:15063"
  assert_rc 0
  expect_mapped "udp:7076 tcp:15063" 3600 false
  assert_eq "$(scripted_igd_count "$action\(.*InternalClient=$LAN_HOST .* -> garbled 200")" 2 "garbled answers to $action"
  gw_expect_rules "udp:7076 tcp:15063"
  expect_reaches udp:7076 tcp:15063 || fail "the mappings behind the garbled answers do not forward"
  nk_delete "delete-garbled-$locations" "udp:7076 tcp:15063"
  expect_nothing_forwarded udp:7076 tcp:15063
}
case_garbled-igd2() { garbled igd2 AddAnyPortMapping; }
case_garbled-igd1() { garbled igd1 AddPortMapping; }

# ---- the router shortens the lease (a Technicolor router grants 86400 whatever was asked; here
# 600 for 3600); and lease 0, asked after a 402, held with an expiry
case_max-lease() {
  scripted_igd_start --max-lease 600
  nk_once max-lease "udp:7076 tcp:15063"
  assert_rc 0
  expect_mapped "udp:7076 tcp:15063" 590-600 false
  expect_reaches udp:7076 tcp:15063 || fail "the shortened mappings do not forward"
  nk_delete delete-max-lease "udp:7076 tcp:15063"
  expect_nothing_forwarded udp:7076 tcp:15063
}
case_max-lease-permanent() {
  scripted_igd_start --max-lease 600 --finite-lease-error 402
  nk_once max-lease-permanent udp:7076
  assert_rc 0
  expect_mapped udp:7076 590-600 false
  grep -qE "AddAnyPortMapping\(.*LeaseDuration=0\) -> OK" < <(scripted_igd_log) || fail "natkeeper did not ask lease 0"
  pass "lease 0 asked after the 402, held for 600 s"
  expect_reaches udp:7076 || fail "the mapping does not forward"
  nk_delete delete-max-lease-permanent udp:7076
  expect_nothing_forwarded udp:7076
}

for c in "${CASES[@]}"; do
  say "=== $c"
  t0=$(now_us)
  "case_$c"
  say "=== $c passed in $((($(now_us) - t0) / 1000)) ms"
done
e2e_pass
