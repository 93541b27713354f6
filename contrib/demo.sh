#!/usr/bin/env bash
# Builds natkeeper and shows it at work without touching your real router: brings
# up the lab network (a LAN host, a gateway running miniupnpd, an "internet" host
# running coturn and natkeeper-reflector, each in its own network namespace), runs
# `natkeeper --once` with the built-in Ring profile on the LAN host, which maps every
# port and proves each one from the internet side through the reflector, prints the
# mapping table, and tears the lab down. Needs root.
#
# Against your real gateway, run the built binary directly instead:
#   build/agent/natkeeper --discover
#   build/agent/natkeeper --once
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
exit "$rc"
