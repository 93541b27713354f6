#!/usr/bin/env bash
# test_denied_low_port.sh NATKEEPER - a port below 1024, asked for explicitly over PCP
# (`--map tcp:80`, ahead of four high ports), which the gateway's permission rules deny:
# the lab's miniupnpd, like its sample configuration and OpenWrt's default, allows internal
# and external ports 1024-65535 only. The gateway refuses it (NOT_AUTHORIZED, pcp:2; no
# timeout), maps the others, and the run ends well inside PCP's 10 s request deadline.
#
# Why it is a test of its own: for a denied internal port, miniupnpd 2.3.1 tries every
# external port from the suggested one round to it again (65535 permission checks) before
# it answers, and answers nobody meanwhile. Each check logs a LOG_DEBUG line, which only -d
# (or -vv) lets through: the lab runs it with -d, and there it takes about a second; without
# -d it answers in about a millisecond. How long depends on where the log goes. Requests
# behind it wait for it, and must not time out.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin

readonly HIGH=udp:20000-20003
readonly ARGS=(--once --protocol pcp --no-default-profile --no-verify --json)
# the lab must deny what this test is about
grep -qx 'allow 1024-65535 10.77.0.0/24 1024-65535' "$LAB_STATE/miniupnpd.conf" &&
  grep -qx 'deny 0-65535 0.0.0.0/0 0-65535' "$LAB_STATE/miniupnpd.conf" ||
  fail "the lab's miniupnpd.conf no longer allows only ports 1024-65535"

nk_run high "${ARGS[@]}" --map "$HIGH"
assert_rc 0
high_ms=$NK_MS

walks_before=$(grep -c 'PCP MAP: failed to add mapping TCP' "$LAB_STATE/miniupnpd.log")
nk_run low "${ARGS[@]}" --map tcp:80 --map "$HIGH"
assert_rc 1 "natkeeper with tcp:80 denied"
json_check "$NK_OUT" '
by_port = {(m.get("proto"), m.get("internal_port")): m for m in maps}
low = by_port.get(("tcp", 80)) or {}
check(low.get("state") == "failed" and low.get("error_code") == "pcp:2",
      "tcp 80 failed with NOT_AUTHORIZED (state %r, error_code %r: %r)"
      % (low.get("state"), low.get("error_code"), low.get("error")))
high = [by_port.get(k) for k in sorted(specs(env["HIGH"]))]
check(all(m and m.get("state") == "mapped" and m.get("error") is None for m in high),
      "%s mapped: %s" % (env["HIGH"], [(m or {}).get("state") for m in high]))
check(len(maps) == 5, "5 mappings reported (got %d)" % len(maps))
' "HIGH=$HIGH" || fail "natkeeper's JSON mappings are wrong"
gw_expect_rules "$HIGH"
expect_reaches udp:20000,20003 || fail "the high ports are not reachable"
expect_blocked tcp:80 || fail "tcp:80 is reachable"

walks=$(($(grep -c 'PCP MAP: failed to add mapping TCP' "$LAB_STATE/miniupnpd.log") - walks_before))
say "info: with tcp:80 the run took $NK_MS ms (without it $high_ms ms); miniupnpd refused it $walks time(s)"
[ "$walks" -ge 1 ] || fail "miniupnpd logged no refusal of tcp:80"
# below PCP's 10 s deadline with room to spare: no request of the round timed out
[ "$NK_MS" -lt 8000 ] || fail "the round took $NK_MS ms: a denied port held it back"
pass "the round with tcp:80 denied ended in $NK_MS ms"

e2e_pass
