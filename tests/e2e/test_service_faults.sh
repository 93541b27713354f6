#!/usr/bin/env bash
# test_service_faults.sh NATKEEPER PROTOCOL - the service never loses track of a mapping,
# over one protocol (upnp, natpmp or pcp), against the real miniupnpd, with a plan of
# 1000 ports (udp 20000-20999, no profile):
#   SIGTERM during the first round: no rule of natkeeper's left once it has exited;
#   SIGKILL a few seconds into the first round, then a start, SIGTERM and --delete: no rule
#     left;
#   a reload that shrinks the plan (10 ports to 2) while the gateway drops every packet from
#     this host: once it answers again the removed mappings are deleted, and SIGTERM leaves
#     no rule.
# Each step prints how many rules were left, for comparison between builds.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$1"
PROTO=${2:?usage: $0 NATKEEPER upnp|natpmp|pcp}
TEST_NAME="$TEST_NAME-$PROTO"
lab_begin

CONFIG=$LAB_STATE/natkeeper.toml
write_config() {   # PORTS: one port spec, e.g. udp:20000-20999
  cat >"$CONFIG" <<EOF
[gateway]
protocol = "$PROTO"
[profile]
name = "none"
[mapping]
ports = ["$1"]
warn_above = 0
[verify]
enabled = false
EOF
}
# every rule left pointing at this host, after natkeeper has exited
expect_no_rule_left() {   # WHAT
  local left
  left=$(gw_rule_count)
  say "measure: $PROTO: $1: $left rules left at the gateway"
  [ "$left" = 0 ] || fail "$1: $left rules left at the gateway"
  pass "$1: no rule left at the gateway"
}
delete_all() {
  ip netns exec "$LAB_NS_LAN" env STATE_DIRECTORY="$NK_STATE_DIR" "$NK" -c "$CONFIG" --delete >"$LAB_STATE/delete.out" 2>&1
}
# the gateway drops every packet from this host; miniupnpd keeps running with its rules
gw_silent() {
  in_gw nft -f - <<EOF || fail "cannot make the gateway drop this host's packets"
table inet nk_faults {
  chain input { type filter hook input priority -60; policy accept; ip saddr $LAN_HOST drop; }
}
EOF
}
gw_answers() { in_gw nft delete table inet nk_faults || fail "cannot make the gateway answer again"; }
rules_at_least() { [ "$(gw_rule_count)" -ge "$1" ]; }

write_config "udp:20000-20999"

# SIGTERM while the first round runs
nk_service_start -c "$CONFIG" -v || fail "the service did not start"
wait_for 10 rules_at_least 100 || fail "the first round did not start mapping"
nk_service_signal TERM
nk_service_wait_exit 15 || fail "natkeeper did not exit within 15 s of SIGTERM"
assert_eq "$NK_SVC_RC" 0 "exit status after SIGTERM mid-round"
expect_no_rule_left "SIGTERM during the first round"
if grep -q "all mappings removed" "$NK_SVC_ERR" && [ -s "$NK_STATE_DIR/mappings.json" ]; then
  fail "natkeeper claimed every mapping removed, yet left some recorded"
fi

# SIGKILL a few seconds into the first round; a new start, SIGTERM and --delete
rm -f "$NK_STATE_DIR/mappings.json"
nk_service_start -c "$CONFIG" -v || fail "the service did not start"
wait_for 10 rules_at_least 1 || fail "the first round did not start mapping"
sleep 3
nk_service_signal KILL
nk_service_wait_exit 5 || fail "natkeeper did not die on SIGKILL"
say "measure: $PROTO: SIGKILL 3 s into the round: $(gw_rule_count) rules at the gateway"
[ -s "$NK_STATE_DIR/mappings.json" ] || fail "no state file after SIGKILL mid-round"
pass "the state file records the round SIGKILL interrupted"
write_config "udp:20000-20099"   # the next start wants fewer: the rest is known only from the record
nk_service_start -c "$CONFIG" -v || fail "the service did not start again"
wait_log 30 "of 100 mappings active via" || fail "no status line after the restart"
nk_service_signal TERM
nk_service_wait_exit 15 || fail "natkeeper did not exit within 15 s of SIGTERM"
delete_all || fail "--delete failed: $(tail -5 "$LAB_STATE/delete.out")"
expect_no_rule_left "SIGKILL during the first round, start, SIGTERM, --delete"

# a reload that shrinks the plan while the gateway does not answer
write_config "udp:20000-20009"
nk_service_start -c "$CONFIG" -v || fail "the service did not start"
gw_wait_rule_count 10 15 || fail "the first round did not map 10 ports"
wait_log 10 "of 10 mappings active via" || fail "no status line after the first round"
gw_silent
write_config "udp:20000-20001"
nk_service_signal HUP
wait_log 5 "reloaded .*: 0 mappings added, 8 removed, 2 unchanged" || fail "no reload"
# (NAT-PMP retransmits a request for 130 s: there the outage ends before the removals fail)
if [ "$PROTO" != natpmp ]; then
  wait_log 30 "8 of 8 removed mappings could not be deleted" || fail "the removals did not fail while the gateway was silent"
fi
say "measure: $PROTO: while the gateway is silent: $(gw_rule_count) rules"
gw_answers
gw_wait_rule_count 2 30 || fail "the removed mappings were not deleted once the gateway answered again"
nk_service_signal TERM
nk_service_wait_exit 15 || fail "natkeeper did not exit within 15 s of SIGTERM"
expect_no_rule_left "a reload shrinking the plan while the gateway was silent, then SIGTERM"

e2e_pass
