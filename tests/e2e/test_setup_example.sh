#!/usr/bin/env bash
# test_setup_example.sh NATKEEPER REFLECTOR - contrib/setup-example.sh, run on the lan host
# as a device's setup script would run it (with natkeeper's reflector in wan), tells the
# user what is wrong and exits 0 only when everything is reachable:
#   - every port verified: exit 0, "everything works";
#   - the gateway grants a mapping but does not forward it (its filter drops the port):
#     exit 1, names that port to forward by hand;
#   - no port-mapping protocol (miniupnpd stopped): exit 1, "switch on UPnP", with the
#     ports to forward by hand;
#   - carrier-grade NAT (the double topology): exit 1, "carrier-grade NAT", the provider;
#   - double NAT (the double topology, the gateway's WAN address renumbered to a private
#     one): exit 1, "two routers in a row", the ports to forward on the modem.
# The first three share one lab, the others have one each; the three labs run at once.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$1"
LAB_REFLECTOR=${2:?usage: $0 NATKEEPER NATKEEPER-REFLECTOR}
SETUP=$(realpath "$(dirname "$(realpath "$0")")/../../contrib/setup-example.sh")
[ -r "$SETUP" ] || fail "no $SETUP"

# setup_run NAME ARG...: sh setup-example.sh NATKEEPER ARG... in ns lan (output -> SETUP_OUT,
# exit status -> SETUP_RC), shown indented
setup_run() {
  local name=$1 t0; shift
  SETUP_OUT=$LAB_STATE/setup-$name.out
  t0=$(now_us)
  timeout -k 2 "$NK_TIMEOUT" ip netns exec "$LAB_NS_LAN" sh "$SETUP" "$NK" "$@" </dev/null >"$SETUP_OUT" 2>&1
  SETUP_RC=$?
  say "setup-example.sh ${*} ($name): exit $SETUP_RC in $((($(now_us) - t0) / 1000)) ms"
  sed 's/^/  | /' "$SETUP_OUT"
}
expect_rc() {
  [ "$SETUP_RC" = "$1" ] || fail "setup-example.sh exited $SETUP_RC, expected $1"
  pass "setup-example.sh exited $1"
}
expect_says() {   # REGEX WHAT: the output, its lines joined, matches REGEX (grep -E, any case)
  tr '\n' ' ' <"$SETUP_OUT" | grep -qiE -- "$1" || fail "setup-example.sh does not say $2 (/$1/)"
  pass "it says $2"
}
expect_not_says() {
  if tr '\n' ' ' <"$SETUP_OUT" | grep -qiE -- "$1"; then fail "setup-example.sh says $2 (/$1/)"; fi
  pass "it does not say $2"
}
expect_line() {   # LINE WHAT: the output has exactly this line
  grep -qxF -- "$1" "$SETUP_OUT" || fail "setup-example.sh does not print the line '$1' ($2)"
  pass "it lists $2: '$1'"
}

# one NAT: all well, then a port that does not forward, then no protocol at all
single() {
  lab_begin single
  setup_run fine --reflector "$REFLECTOR"
  expect_rc 0
  expect_says 'Everything works: all 108 ports' "that everything works"
  expect_not_says 'forward' "to forward anything"

  # the gateway grants the mapping, its filter drops what the mapping lets in (deleting
  # the DNAT rule, gw_drop_dnat, does not last: natkeeper's request for the mapping makes
  # miniupnpd put it back, with PCP and NAT-PMP and here with UPnP-IGD too)
  in_gw nft insert rule inet filter forward ip daddr "$LAN_HOST" udp dport 9079 drop ||
    fail "cannot add the gateway's drop rule"
  pass "gateway: udp 9079 to $LAN_HOST dropped in its forward chain"
  setup_run drop --reflector "$REFLECTOR"
  expect_rc 1
  expect_says 'router does not forward 1 of the 108 ports' "that the router does not forward 1 port"
  expect_says 'firewall settings, or forward it by hand' "to check the router's firewall or forward it"
  expect_line 'Ports to forward by hand to 10.77.0.2:' "the ports to forward by hand to this host"
  expect_line '  UDP 9079' "UDP 9079"
  [ "$(grep -c '^  ' "$SETUP_OUT")" = 1 ] || fail "it lists more than one port line"
  pass "it lists no other port"

  # shellcheck disable=SC2119  # (no option: miniupnpd stops, the router stays up)
  gw_stop
  setup_run none --reflector "$REFLECTOR"
  expect_rc 1
  expect_says 'does not answer port-mapping requests' "that the router answers no protocol"
  expect_says 'switch on UPnP' "to switch on UPnP"
  expect_line 'Ports to forward by hand to 10.77.0.2:' "the ports to forward by hand to this host"
  expect_line '  UDP 7076-7077, 9078-9079, 15063-15064, 16500-16599' "the UDP ports, folded"
  expect_line '  TCP 15063-15064' "the TCP ports"
}

# carrier-grade NAT: the gateway maps, the provider's NAT drops
cgnat() {
  lab_begin double
  setup_run cgnat --reflector "$REFLECTOR"
  expect_rc 1
  expect_says 'carrier-grade NAT' "carrier-grade NAT"
  expect_says 'provider' "to turn to the provider"
  expect_says '100\.64\.0\.2' "the router's shared address"
  expect_not_says 'ports to forward' "to forward ports (which cannot help)"
}

# double NAT: the gateway's WAN side is another router's private network
private() {
  lab_begin double
  gw_set_wan_address 192.168.1.2/24
  setup_run double --reflector "$REFLECTOR"
  expect_rc 1
  expect_says 'two routers in a row' "two routers in a row"
  expect_says 'bridge mode' "to put the modem in bridge mode"
  expect_line 'Ports to forward by hand to 192.168.1.2:' "the ports to forward on the modem to the router"
  expect_line '  UDP 7076-7077, 9078-9079, 15063-15064, 16500-16599' "the UDP ports, folded"
  expect_line '  TCP 15063-15064' "the TCP ports"
}

# each part in a subshell of its own, all at once (lab_begin's trap tears each lab down as
# its subshell ends); their output is shown in order, their checks counted from it
OUT=$(mktemp -d "${TMPDIR:-/tmp}/$TEST_NAME.XXXXXXXX") || fail "mktemp"
PIDS=()
trap 'kill -TERM "${PIDS[@]}" 2>/dev/null; wait; rm -rf -- "$OUT"' EXIT   # INT, TERM: exit
trap 'exit 130' INT
trap 'exit 143' TERM
( single ) >"$OUT/single" 2>&1 &
PIDS+=($!)
( cgnat ) >"$OUT/cgnat" 2>&1 &
PIDS+=($!)
( private ) >"$OUT/private" 2>&1 &
PIDS+=($!)
PARTS=(single cgnat private)
failed=()
for i in "${!PARTS[@]}"; do
  wait "${PIDS[i]}" || failed+=("${PARTS[i]}")
done
PIDS=()
for part in "${PARTS[@]}"; do
  say "=== $part"
  cat "$OUT/$part"
  E2E_CHECKS=$((E2E_CHECKS + $(grep -c '^ok: ' "$OUT/$part")))
done
[ ${#failed[@]} = 0 ] || fail "failed: ${failed[*]}"
e2e_pass
