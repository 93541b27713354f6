#!/usr/bin/env bash
# test_custom_map.sh NATKEEPER - `--once --no-default-profile --map udp:20000-20002
# --map tcp:20010 --json` maps exactly those 4 (nothing of the Ring profile), protocol-exact,
# and they are reachable from the internet. Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin
specs="udp:20000-20002 tcp:20010"

nk_run custom --once --no-default-profile --map udp:20000-20002 --map tcp:20010 --json
assert_rc 0
json_expect_mappings "$NK_OUT" "$specs" || fail "natkeeper's JSON mappings are wrong"
gw_expect_rules "$specs"

expect_reaches udp:20000,20001,20002 tcp:20010 || fail "custom mappings are not reachable"
# the other protocol on the same ports, the next port, and the (unrequested) Ring profile
expect_blocked tcp:20000 udp:20010 udp:20003 udp:7076 || fail "unrequested ports are reachable"

e2e_pass
