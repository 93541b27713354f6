#!/usr/bin/env bash
# test_device.sh NATKEEPER PROTOCOL - `natkeeper --once --device 10.77.0.50` maps the Ring
# profile for the doorbell, another device on the LAN, over PROTOCOL (upnp or pcp), against
# the real miniupnpd:
#   the gateway's default third-party policy (secure): every mapping refused, exit 1, the
#   message names the router setting, nothing forwarded to the doorbell;
#   third-party mappings allowed (open): all 108 mapped for the doorbell, reported with
#   internal_client and device, and a datagram and a TCP connection from the wan side
#   arrive in the doorbell's namespace, none on this host's;
#   --delete --device removes exactly the doorbell's mappings, not this host's.
# natpmp: the clear refusal (NAT-PMP cannot name another host), nothing sent.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$1"
PROTO=${2:?usage: $0 NATKEEPER upnp|pcp|natpmp}
TEST_NAME="$TEST_NAME-$PROTO"
LAB_THIRD_PARTY=secure
export LAB_THIRD_PARTY
lab_begin_doorbell

doorbell_rule_count() { gw_rules | awk -v a="$DOORBELL_IP:" 'index($3, a) == 1' | wc -l; }
# every row for the doorbell, each with the expected state
expect_rows() {   # STATE ERROR-WORDS
  json_check "$NK_OUT" "
rows = doc.get('mappings') or []
check(len(rows) == $RING_COUNT, 'one row per planned port (%d)' % len(rows))
bad = [r for r in rows if r.get('internal_client') != '$DOORBELL_IP' or r.get('device') != '$DOORBELL_IP'
       or r.get('state') != '$1' or '$2' not in (r.get('error') or '')]
check(not bad, 'every row is for the doorbell, $1, saying \\'$2\\' (first exception: %r)' % (bad[:1],))
"
}

if [ "$PROTO" = natpmp ]; then
  nk_run natpmp --once --protocol natpmp --device "$DOORBELL_IP" --no-verify --json
  assert_rc 1
  expect_rows failed "NAT-PMP cannot map ports for another device" || fail "the refusal is not reported as such"
  assert_eq "$(doorbell_rule_count)" 0 "DNAT rules to the doorbell"
  e2e_pass
fi

if [ "$PROTO" = upnp ]; then
  # the doorbell among the LAN's devices, with the vendor of its MAC block
  nk_run find --find-devices --json
  assert_rc 0
  json_check "$NK_OUT" "
devices = {d['mac']: d for d in doc.get('devices') or []}
bell = devices.get('$DOORBELL_MAC') or {}
check(bell.get('address') == '$DOORBELL_IP', 'the doorbell is listed at its address (%r)' % bell)
check(bell.get('ring') is True and bell.get('vendor') == 'Ring LLC', 'as a Ring device (%r)' % bell)
" || fail "--find-devices does not show the doorbell"
  # the Ring profile for this host while a Ring device is on the LAN: one hint
  nk_run hint --once --protocol upnp --no-verify
  assert_eq "$(grep -c -- "--device $DOORBELL_MAC" "$NK_ERR")" 1 "hint lines naming --device $DOORBELL_MAC"
  nk_run hint-delete --delete --protocol upnp
fi

case "$PROTO" in
  upnp) SETTING=secure_mode=no ;;
  pcp) SETTING=pcp_allow_thirdparty=yes ;;
  *) fail "unknown protocol $PROTO" ;;
esac

doorbell_listen
nk_run secure --once --protocol "$PROTO" --device "$DOORBELL_IP" --no-verify --json
assert_rc 1
expect_rows failed "$SETTING" || fail "a refusal does not name the router setting"
grep -q "only forwards ports to the host that asks" "$NK_ERR" || fail "stderr does not say what the router refuses"
assert_eq "$(doorbell_rule_count)" 0 "DNAT rules to the doorbell while refused"

gw_third_party open
# this host's own mapping of a Ring port: the doorbell's must not touch it
nk_run own --once --protocol "$PROTO" --no-default-profile --map udp:7076 --no-verify
assert_rc 0
nk_run open --once --protocol "$PROTO" --device "$DOORBELL_IP" --no-verify --json
# udp 7076 is this host's: the doorbell's mapping of it fails (another external port is
# not allowed by default); every other one is made
assert_rc 1
json_check "$NK_OUT" "
rows = {(r['proto'], r['internal_port']): r for r in doc.get('mappings') or []}
check(len(rows) == $RING_COUNT, '108 rows (%d)' % len(rows))
bad = [(k, r.get('state'), r.get('error')) for k, r in rows.items() if k != ('udp', 7076) and (
       r.get('internal_client') != '$DOORBELL_IP' or r.get('state') != 'mapped' or r.get('external_port') != k[1])]
check(not bad, 'all but udp 7076 mapped for the doorbell on their own ports (exceptions: %r)' % (bad[:3],))
own = rows.get(('udp', 7076)) or {}
check(own.get('external_port') != 7076, 'the doorbell did not take udp 7076 from this host (%r)' % own.get('external_port'))
" || fail "the doorbell's mappings are not reported as made for it"
[ "$(doorbell_rule_count)" = "$((RING_COUNT - 1))" ] || say "rules: $(gw_rules | sort -k2n | paste -sd ' ')"
assert_eq "$(doorbell_rule_count)" "$((RING_COUNT - 1))" "DNAT rules to the doorbell (udp 7076 is this host's)"
assert_eq "$(gw_rule_count)" 1 "DNAT rules to this host"
expect_doorbell_reaches udp:7077 udp:9078 udp:16500 udp:16599 tcp:15063 tcp:15064 ||
  fail "mapped ports do not reach the doorbell"
# udp 7076 leads to this host, not to the doorbell
expect_doorbell_blocked udp:7076 || fail "this host's port reaches the doorbell"

nk_run delete --delete --protocol "$PROTO" --device "$DOORBELL_IP"
assert_rc 0
assert_eq "$(doorbell_rule_count)" 0 "DNAT rules to the doorbell after --delete"
assert_eq "$(gw_rule_count)" 1 "this host's own mapping is still there"
e2e_pass
