#!/usr/bin/env bash
# lab_test_doorbell.sh [NATKEEPER] - the lab's doorbell (LAB_DOORBELL=1), checked with the
# reference client upnpc only (no natkeeper), so a broken lab is told apart from a broken
# agent: the doorbell is on the LAN with Ring's MAC and the lan host's neighbour table
# knows it; with the gateway's third-party policy secure, `upnpc -a 10.77.0.50` from the
# lan host is refused (UPnP 718; AddAnyPortMapping 606) and nothing reaches the doorbell;
# open, it maps a UDP and a TCP port to the doorbell, and a datagram and a TCP connection
# from wan are counted in ns doorbell; after a renumbering the lan host's neighbour table
# knows the new address, the old mapping no longer reaches the device and a new one
# does; back to secure, the mapping stays and a new one is refused again.
# The natkeeper argument is ignored. Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init_lab_only
command -v upnpc >/dev/null || fail "missing upnpc (package miniupnpc)"
unset LAB_THIRD_PARTY   # the default policy: secure
lab_begin_doorbell

IGD=http://$LAN_GW:5000/rootDesc.xml
UPNP_OUT=$LAB_STATE/upnpc.out
# upnp ARG...: upnpc from the lan host; its output in $UPNP_OUT (and upnpc.log)
upnp() {
  local rc
  in_lan timeout 10 upnpc -u "$IGD" "$@" >"$UPNP_OUT" 2>&1
  rc=$?
  cat "$UPNP_OUT" >>"$LAB_STATE/upnpc.log"
  return "$rc"
}
# refused WHAT CODE ARG...: upnpc ARG fails with UPnP error CODE
refused() {
  local what=$1 code=$2; shift 2
  if upnp "$@"; then fail "$what: upnpc $* succeeded, expected UPnP $code"; fi
  grep -q "failed with code $code " "$UPNP_OUT" ||
    fail "$what: upnpc $* did not fail with UPnP $code: $(grep -m1 'failed with code' "$UPNP_OUT")"
  pass "$what: $(grep -m1 "failed with code $code " "$UPNP_OUT")"
}

# ---- the doorbell on the LAN ---------------------------------------------------------------
assert_eq "$(in_doorbell ip -4 -o addr show dev eth0 | awk '{print $4}')" "$DOORBELL_IP/24" "doorbell's address"
assert_eq "$(in_doorbell cat /sys/class/net/eth0/address)" "$DOORBELL_MAC" "doorbell's MAC"
assert_eq "$(in_doorbell ip -4 route show default | awk '{print $3}')" "$LAN_GW" "doorbell's default gateway"
assert_eq "$(lan_neigh "$DOORBELL_IP" | awk '{print $1}')" "$DOORBELL_MAC" "lan host's neighbour entry for $DOORBELL_IP"
assert_eq "$(grep -E '^(secure_mode|pcp_allow_thirdparty)=' "$LAB_STATE/miniupnpd.conf" | paste -sd ' ')" \
  "secure_mode=yes pcp_allow_thirdparty=no" "gateway's default third-party policy"

# the whole Ring profile, as natkeeper would map it
doorbell_listen
assert_eq "$(doorbell_count udp 16599)" 0 "doorbell's count for udp 16599 at the start"
expect_doorbell_blocked udp:7076 tcp:15063 || fail "traffic reaches the doorbell without any mapping"

# ---- secure: the gateway maps only for the host that asks -----------------------------------
refused "secure, AddPortMapping for the doorbell" 718 -e doorbell -a "$DOORBELL_IP" 7076 7076 UDP
refused "secure, AddPortMapping for the doorbell" 718 -e doorbell -a "$DOORBELL_IP" 15063 15063 TCP
refused "secure, AddAnyPortMapping for the doorbell" 606 -e doorbell -n "$DOORBELL_IP" 7076 7076 UDP
assert_eq "$(gw_rules | wc -l)" 0 "DNAT rules after the refusals"

# ---- open: it maps for the doorbell ---------------------------------------------------------
t0=$(now_us)
gw_third_party open
pass "switched to open in $((($(now_us) - t0) / 1000)) ms"
assert_eq "$("$LAB_SH" status | sed -n 's/^third-party: //p')" open "third-party policy in lab status"
upnp -e doorbell -a "$DOORBELL_IP" 7076 7076 UDP || fail "open: upnpc -a $DOORBELL_IP 7076 UDP failed: $(tail -n 1 "$UPNP_OUT")"
upnp -e doorbell -a "$DOORBELL_IP" 15063 15063 TCP || fail "open: upnpc -a $DOORBELL_IP 15063 TCP failed: $(tail -n 1 "$UPNP_OUT")"
assert_eq "$(gw_rules | sort | paste -sd ';')" \
  "tcp 15063 $DOORBELL_IP:15063;udp 7076 $DOORBELL_IP:7076" "gateway DNAT rules to the doorbell"
expect_doorbell_reaches udp:7076 tcp:15063 || fail "a datagram / TCP connection from wan does not reach the doorbell"
assert_eq "$(doorbell_count udp 7076) $(doorbell_count tcp 15063)" "1 1" "doorbell's counts for udp 7076, tcp 15063"
expect_doorbell_blocked udp:7077 tcp:15064 || fail "an unmapped port reaches the doorbell"

# ---- a new DHCP lease for the doorbell ------------------------------------------------------
old_ip=$DOORBELL_IP
doorbell_renumber 10.77.0.51
assert_eq "$(lan_neigh 10.77.0.51 | awk '{print $1}')" "$DOORBELL_MAC" "lan host's neighbour entry for 10.77.0.51"
# the old entry is the kernel's to age: still there, same MAC
assert_eq "$(lan_neigh "$old_ip" | awk '{print $1}')" "$DOORBELL_MAC" "lan host's entry for the old $old_ip"
# the mapping still points at the old address: nothing reaches the device
expect_doorbell_blocked udp:7076 || fail "the mapping to $old_ip still reaches the renumbered doorbell"
# a new owner for the external port: delete, then map the new address
upnp -d 7076 UDP || fail "upnpc -d 7076 UDP failed: $(tail -n 1 "$UPNP_OUT")"
upnp -e doorbell -a "$DOORBELL_IP" 7076 7076 UDP || fail "upnpc -a $DOORBELL_IP 7076 UDP failed: $(tail -n 1 "$UPNP_OUT")"
expect_doorbell_reaches udp:7076 || fail "the mapping to $DOORBELL_IP does not reach the doorbell"

# ---- back to secure: the mappings stay, new ones are refused ----------------------------------
gw_third_party secure
refused "secure again, AddPortMapping for the doorbell" 718 -e doorbell -a "$DOORBELL_IP" 7077 7077 UDP
expect_doorbell_reaches udp:7076 || fail "the doorbell's mapping stopped forwarding after the restart"
doorbell_stop
e2e_pass
