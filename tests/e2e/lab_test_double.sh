#!/usr/bin/env bash
# lab_test_double.sh [NATKEEPER] - the lab's double-NAT (CGNAT) topology, checked with the
# reference clients: miniupnpd grants mappings and reports external address 100.64.0.2,
# the gateway itself forwards them (probed from inside the ISP), yet nothing sent from the
# internet to the ISP's 203.0.113.1 reaches lan, and the internet sees lan's traffic come
# from 203.0.113.1. Also starts and stops a reflector (LAB_REFLECTOR, default the stand-in
# lab_fake_reflector.py). With NATKEEPER: `--discover` reports 100.64.0.2 everywhere.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
if [ -n "${1:-}" ]; then e2e_init "$@"; else e2e_init_lab_only; fi
for t in upnpc natpmpc; do command -v "$t" >/dev/null || fail "missing $t (package miniupnpc / natpmpc)"; done
LAB_REFLECTOR=${LAB_REFLECTOR:-$E2E_DIR/lab_fake_reflector.py}
lab_begin double
[ "$LAB_UP_MS" -lt 2000 ] || fail "lab up took $LAB_UP_MS ms (budget 2000 ms)"
pass "double lab up in $LAB_UP_MS ms"
assert_eq "$GW_EXT_IP" 100.64.0.2 "GW_EXT_IP"
assert_eq "$(in_isp ip -4 -br addr show dev wan0 | awk '{print $3}')" 203.0.113.1/24 "ISP's outside address"

# NAT-PMP: granted, on the CGNAT address
out=$(in_lan timeout 10 natpmpc -g "$LAN_GW" -a 20000 20000 udp 3600 2>&1) || { say "$out"; fail "natpmpc -a failed"; }
grep -q '^Public IP address : 100\.64\.0\.2$' <<<"$out" || { say "$out"; fail "natpmpc does not report 100.64.0.2"; }
pass "natpmpc maps udp 20000 and reports public address 100.64.0.2"
assert_eq "$(gw_rules | paste -sd ';')" "udp 20000 $LAN_HOST:20000" "gateway DNAT rules after natpmpc"

# UPnP-IGD: the same address; a TCP mapping too
IGD=http://$LAN_GW:5000/rootDesc.xml
out=$(in_lan timeout 10 upnpc -u "$IGD" -s 2>&1) || { say "$out"; fail "upnpc -s failed"; }
assert_eq "$(sed -n 's/^ExternalIPAddress = //p' <<<"$out")" 100.64.0.2 "upnpc's ExternalIPAddress"
in_lan timeout 10 upnpc -u "$IGD" -e e2e -r 15063 TCP >>"$LAB_STATE/upnpc.log" 2>&1 || fail "upnpc -r failed"

# the gateway forwards, the ISP does not
expect_reaches_from_isp udp:20000 tcp:15063 || fail "the gateway does not forward its mappings"
expect_blocked udp:20000 tcp:15063 || fail "the internet reaches lan through the CGNAT"

# outbound: lan -> internet works and comes from the ISP's address (coturn's STUN answer)
mapped=$(in_lan timeout 5 "$PYTHON" - "${STUN%:*}" "${STUN#*:}" <<'PY'
import os, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
tid = os.urandom(12)
s.sendto(struct.pack("!HHI", 1, 0, 0x2112A442) + tid, (sys.argv[1], int(sys.argv[2])))
data = s.recv(2048)
i = 20
while i + 4 <= len(data):
    t, n = struct.unpack_from("!HH", data, i)
    if t == 0x0020:    # XOR-MAPPED-ADDRESS, IPv4
        port = struct.unpack_from("!H", data, i + 6)[0] ^ 0x2112
        addr = struct.unpack_from("!I", data, i + 8)[0] ^ 0x2112A442
        print(socket.inet_ntoa(struct.pack("!I", addr)) + ":" + str(port)); break
    i += 4 + (n + 3) // 4 * 4
PY
) || fail "no STUN answer from $STUN"
assert_eq "${mapped%:*}" 203.0.113.1 "address coturn at $STUN sees lan's request come from"

# the reflector runs in wan; the stand-in echoes the source address it sees
grep -q '^reflector: pid ' <<<"$("$LAB_SH" status)" || fail "lab status does not show the reflector"
pass "lab status shows the reflector"
if [ "$LAB_REFLECTOR" = "$E2E_DIR/lab_fake_reflector.py" ]; then
  seen=$(in_lan timeout 5 "$PYTHON" - "$REFLECTOR" "$REFLECTOR_B" <<'PY'
import socket, sys
a, b = [(e.rpartition(":")[0], int(e.rpartition(":")[2])) for e in sys.argv[1:3]]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2); u.sendto(b"?", b)
print(u.recv(100).decode().strip().rpartition(":")[0])
with socket.create_connection(a, 2) as t:
    print(t.recv(100).decode().strip().rpartition(":")[0])
PY
) || fail "the stand-in reflector did not answer"
  assert_eq "$(paste -sd ' ' <<<"$seen")" "203.0.113.1 203.0.113.1" "source address the reflector sees (UDP $REFLECTOR_B, TCP $REFLECTOR)"
fi
lab_stop_reflector
if in_wan ss -Hlnut | grep -q ':7000 '; then fail "something still listens on port 7000 after reflector-stop"; fi
pass "reflector stopped"

if [ -n "${NK:-}" ]; then
  nk_run discover --discover --json
  assert_rc 0
  json_check "$NK_OUT" '
ps = doc.get("protocols", [])
check(len(ps) > 0, "protocols listed (%d)" % len(ps))
for p in ps:
    check(p.get("external_ip") == "100.64.0.2", "%s reports external address 100.64.0.2 (got %r)" % (p.get("method"), p.get("external_ip")))
' || fail "natkeeper --discover in the double lab"
fi
e2e_pass
