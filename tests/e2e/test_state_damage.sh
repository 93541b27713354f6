#!/usr/bin/env bash
# test_state_damage.sh NATKEEPER - the service's state file under damage, over UPnP,
# against the real miniupnpd:
#   SIGKILL, then the state file torn in its 7th mapping line (as a power loss can leave
#   it): --delete, planning other ports, removes the 6 intact recorded mappings and only
#   those; the torn file is kept as mappings.json.damaged; a --delete planning the ports
#   removes the rest;
#   a SIGHUP that changes nothing does not rewrite the state file (its inode stays);
#   a full state directory (a small tmpfs): the write after a reload fails, is tried again,
#   and succeeds once there is room, recording the new port;
#   a FIFO in the state file's place: the service starts all the same and says so.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin

PORTS=10
CONFIG=$LAB_STATE/natkeeper.toml OTHER=$LAB_STATE/other.toml
write_config() {   # FILE PORTSPEC
  cat >"$1" <<EOF2
[gateway]
protocol = "upnp"
[profile]
name = "none"
[mapping]
ports = ["$2"]
[verify]
enabled = false
EOF2
}
write_config "$CONFIG" "udp:5000-5009"
write_config "$OTHER" "udp:6000"
nk_service_dirs
export STATE_DIRECTORY=$NK_STATE_DIR   # for --delete, as the service has it
STATE=$NK_STATE_DIR/mappings.json
# state_lines N: the state file has N lines (a header, the mappings, the header again)
state_lines() { [ "$(grep -c '' "$STATE" 2>/dev/null)" = "$1" ]; }
ports_of() { grep -o '"external_port":[0-9]*' | cut -d: -f2 | sort -n; }
gw_ports() { gw_rules | awk -v a="$LAN_HOST:" 'index($3, a) == 1 { print $2 }' | sort -n; }

# ---- a torn state file still names what it recorded intact
nk_service_start -c "$CONFIG" -v || fail "the service did not start"
gw_wait_rule_count "$PORTS" 10 || fail "the service did not map udp 5000-5009"
wait_for 5 state_lines $((PORTS + 2)) || fail "the state file does not record $PORTS mappings"
nk_service_signal KILL
nk_service_wait_exit 5 || fail "natkeeper did not die on SIGKILL"
# keep the header and 6 mapping lines, and 30 bytes of the 7th
{ head -n 7 "$STATE"; sed -n 8p "$STATE" | head -c 30; } >"$LAB_STATE/torn"
cp "$LAB_STATE/torn" "$STATE"
kept=$(sed -n 2,7p "$STATE" | ports_of)
lost=$(gw_ports | grep -vxF -f <(echo "$kept"))
pass "state file torn in its 7th mapping; intact: $(echo $kept)"

nk_run delete-other -c "$OTHER" --delete
grep -q "mappings.json is damaged: line 8: no checksum (a line cut short?); 6 mappings kept, 4 lost; the damaged file is kept as .*mappings.json.damaged" "$NK_ERR" ||
  fail "--delete did not report the damage: $(cat "$NK_ERR")"
cmp -s "$LAB_STATE/torn" "$STATE.damaged" || fail "the damaged file was not kept as mappings.json.damaged"
[ "$(gw_ports)" = "$lost" ] || fail "--delete left $(echo $(gw_ports)) at the gateway, not the 4 lost ($(echo $lost))"
pass "--delete removed the 6 mappings the torn file still held, and left the 4 it lost: $(echo $lost)"
nk_run delete --delete -c "$CONFIG"
assert_rc 0
gw_wait_rule_count 0 2 || fail "rules left after --delete with the ports planned"

# ---- a reload that changes nothing writes nothing; a full disk is retried
mount -t tmpfs -o size=64k,mode=0700 natkeeper-e2e-state "$NK_STATE_DIR" || fail "cannot mount a tmpfs on $NK_STATE_DIR"
trap 'rc=$?; nk_service_stop 3 >/dev/null 2>&1; umount "$NK_STATE_DIR" 2>/dev/null; lab_end "$rc"' EXIT
nk_service_start -c "$CONFIG" -v || fail "the service did not start again"
gw_wait_rule_count "$PORTS" 10 || fail "the service did not map udp 5000-5009 again"
wait_for 5 state_lines $((PORTS + 2)) || fail "the state file does not record $PORTS mappings"
inode=$(stat -c %i "$STATE")
nk_service_signal HUP
wait_log 5 "reloaded .*: 0 mappings added, 0 removed, $PORTS unchanged" || fail "no reload"
sleep 1
assert_eq "$(stat -c %i "$STATE")" "$inode" "the state file's inode after a SIGHUP that changed nothing (a rewrite replaces it)"

dd if=/dev/zero of="$NK_STATE_DIR/filler" bs=1k 2>/dev/null   # until the tmpfs is full
write_config "$CONFIG" "udp:5000-5010"
nk_service_signal HUP
wait_log 5 "reloaded .*: 1 mappings added, 0 removed, $PORTS unchanged" || fail "no reload with udp 5010"
wait_log 5 "cannot write .*mappings.json: No space left on device; trying again" || fail "the failed write was not reported"
sleep 2
grep -q '"external_port":5010' "$STATE" && fail "the state file records udp 5010 on a full disk?"
rm -f "$NK_STATE_DIR/filler"
t0=$(now_us)
wait_log 20 "wrote .*mappings.json again, after [0-9]+ failed attempts" || fail "the state file was not written again once there was room"
grep -q '"external_port":5010' "$STATE" || fail "the state file written again does not record udp 5010"
state_lines $((PORTS + 3)) || fail "the state file written again does not record $((PORTS + 1)) mappings"
pass "full disk: written $((($(now_us) - t0) / 1000)) ms after room was made, $(sed -E 's/.*after ([0-9]+) failed.*/\1/' <<<"$NK_LOG_LINE") failed attempts before"
nk_service_stop || fail "natkeeper did not stop"
assert_eq "$NK_SVC_RC" 0 "exit status after SIGTERM"
gw_wait_rule_count 0 1 || fail "rules left after SIGTERM"
umount "$NK_STATE_DIR" || fail "cannot unmount the tmpfs"
trap lab_end EXIT

# ---- a FIFO in the state file's place does not hold up the start
mkfifo "$STATE" || fail "cannot make a FIFO at $STATE"
nk_service_start -c "$CONFIG" -v || fail "the service did not start with a FIFO at $STATE"
wait_log 5 "mappings.json is a FIFO; not read" || fail "the FIFO was not reported"
gw_wait_rule_count $((PORTS + 1)) 10 || fail "the service did not map past the FIFO"
wait_for 5 test -f "$STATE" || fail "the state file did not take the FIFO's place"
nk_service_stop || fail "natkeeper did not stop"
assert_eq "$NK_SVC_RC" 0 "exit status after SIGTERM"
gw_wait_rule_count 0 1 || fail "rules left after SIGTERM"

e2e_pass
