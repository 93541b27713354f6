#!/usr/bin/env bash
# Builds natkeeper and shows it at work without touching your real router: brings
# up the lab network (a LAN host, a gateway running miniupnpd, an "internet" host
# running coturn and natkeeper-reflector, each in its own network namespace), runs
# `natkeeper --once` with the built-in Ring profile on the LAN host, which maps every
# port and proves each one from the internet side through the reflector, prints the
# mapping table; then runs natkeeper as the service it is meant to be, reboots the
# gateway under it and shows the mappings come back, stops it, and tears the lab
# down. Needs root.
#
# Against your real gateway, run the built binary directly instead:
#   build/agent/natkeeper --discover
#   build/agent/natkeeper --once
#   build/agent/natkeeper            (the service, in the foreground; see natkeeper(8))
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
"$top/contrib/build.sh" >/dev/null || { echo "demo: build failed" >&2; exit 1; }

# The lab's helpers check each step themselves (no set -e).
. "$top/tests/e2e/lib.sh"
e2e_init "$build/agent/natkeeper"
LAB_REFLECTOR=$build/agent/natkeeper-reflector
lab_begin

echo
echo "\$ natkeeper --discover --reflector $REFLECTOR        (on the LAN host)"
in_lan "$NK" --discover --reflector "$REFLECTOR"
echo
echo "\$ natkeeper --once --reflector $REFLECTOR            (on the LAN host)"
in_lan "$NK" --once --reflector "$REFLECTOR"; rc=$?
echo "(exit status $rc)"
echo
echo "The same check by other means: a UDP datagram to 203.0.113.1:7076 and a TCP"
echo "connection to 203.0.113.1:15063, sent from the internet side, reach the LAN host:"
expect_reaches udp:7076 tcp:15063 || fail "the mappings do not forward"
echo
echo "\$ natkeeper --delete          (on the LAN host)"
in_lan "$NK" --delete
echo

status() {
  echo "\$ natkeeper --status"
  in_lan env RUNTIME_DIRECTORY="$NK_RUNTIME_DIR" "$NK" --status
}
all_verified() {
  in_lan env RUNTIME_DIRECTORY="$NK_RUNTIME_DIR" "$NK" --status --json 2>/dev/null |
    grep -q "^ *\"verified\": $RING_COUNT\$"
}
echo "\$ natkeeper --reflector $REFLECTOR &     (the service, on the LAN host)"
nk_service_start --reflector "$REFLECTOR" || fail "the service did not start"
wait_for 15 all_verified || fail "the service did not verify every mapping within 15 s"
status
echo
echo "The gateway reboots and forgets every mapping; it announces its restart, and the"
echo "service maps everything again:"
gw_reboot
t0=$(now_us)
gw_wait_rule_count "$RING_COUNT" 10 || fail "the mappings did not come back"
echo "(back $((($(now_us) - t0) / 1000)) ms after the gateway)"
wait_for 15 all_verified || fail "the service did not verify the mappings again"
echo
echo "\$ kill -TERM <natkeeper>       (systemctl stop natkeeper)"
nk_service_signal TERM
nk_service_wait_exit 6 || fail "the service did not stop"
echo "exit status $NK_SVC_RC; $(gw_rule_count) mappings left at the gateway. The service's log:"
sed 's/^/    /' "$NK_SVC_ERR"
exit "$rc"
