#!/bin/sh
# setup-example.sh NATKEEPER [NATKEEPER-ARG...] - how a device's setup script can use
# `natkeeper --once --json` to tell its user whether the device can be reached from the
# internet, and if not, what to do. An example to copy and adapt, e.g.:
#
#   contrib/setup-example.sh /usr/sbin/natkeeper --reflector reflector.example.net:7000
#
# Without a reflector or STUN server natkeeper cannot check from outside: the example then
# trusts the router. Prints a verdict, and the ports to forward by hand when that helps.
# Exit 0 when everything is reachable, 1 otherwise (64: usage). Needs python3 (for the JSON).
set -u
if [ $# -lt 1 ]; then echo "usage: $0 NATKEEPER [NATKEEPER-ARG...]" >&2; exit 64; fi
nk=$1
shift
out=$(mktemp) && err=$(mktemp) || exit 1
trap 'rm -f "$out" "$err"' EXIT
trap 'exit 1' INT TERM

echo "Checking how this device is reached from the internet..."
"$nk" --once --json "$@" >"$out" 2>"$err"
rc=$?  # 0 all active, 1 some failed or unreachable, 69 no router or no protocol,
#        64 usage, 70 internal error, 78 bad configuration (natkeeper(8), EXIT STATUS)
python3 - "$rc" "$out" "$err" <<'EOF'
import json, socket, sys, textwrap

rc, out, err = int(sys.argv[1]), sys.argv[2], open(sys.argv[3]).read()

# The ports the device needs, for when natkeeper cannot tell (no router answered):
# natkeeper's built-in Ring profile. List your device's own if they differ.
DEVICE_PORTS = ([("udp", p) for p in (7076, 7077, 9078, 9079, 15063, 15064)]
                + [("udp", p) for p in range(16500, 16600)] + [("tcp", 15063), ("tcp", 15064)])

# What the user can do when the router refused a port, by error_code (natkeeper(8),
# DIAGNOSTICS); other refusals get their reason only.
ADVICE = {}
for codes, advice in (
        (("upnp:718", "pcp:11", "natkeeper:7"), "another device or a rule of the router "
         "already holds the port: free it in the router's settings"),
        (("upnp:606", "pcp:2", "natpmp:2"), "the router opens ports only for some devices "
         "or ports: allow this device in its UPnP settings"),
        (("upnp:728", "pcp:8", "pcp:10", "natpmp:4", "natkeeper:6"), "the router's table of "
         "open ports is full: delete old entries in its settings")):
    ADVICE.update(dict.fromkeys(codes, advice))

def fold(ports):  # [7076, 7077, 9078] -> "7076-7077, 9078"
    runs = []
    for p in sorted(set(ports)):
        if runs and p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)

def verdict(text, ports=(), to=None):
    print("\n" + textwrap.fill(text, 76))
    if ports:
        print(f"\nPorts to forward by hand{' to ' + to if to else ''}:")
        for proto in ("udp", "tcp"):
            mine = [p for pr, p in ports if pr == proto]
            if mine:
                print(f"  {proto.upper()} {fold(mine)}")

def this_device():  # our address towards the default route (connecting sends nothing)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
        except OSError:
            return "this device"

if rc == 69 and "no default route" in err:
    verdict("This device found no router: it is not connected to a network with internet "
            "access. Check its network cable or Wi-Fi connection and run the setup again.")
    sys.exit(1)
if rc == 69:
    verdict("Your router does not answer port-mapping requests: UPnP, NAT-PMP and PCP are "
            "switched off in its settings, or it has none of them. Switch on UPnP in the "
            "router's settings and run the setup again, or forward these ports by hand.",
            DEVICE_PORTS, this_device())
    sys.exit(1)
if rc not in (0, 1):  # a fault of the setup (usage, configuration), not of the network
    print(f"\nnatkeeper could not check the network (exit status {rc}):\n{err}", end="")
    sys.exit(1)

try:
    doc = json.load(open(out))
except ValueError:
    print(f"\nnatkeeper's report cannot be read (exit status {rc}):\n{err}", end="")
    sys.exit(1)
maps, nat, gw = doc["mappings"], doc["nat"], doc["gateway"]
todo = [(m["proto"], m["internal_port"]) for m in maps if m["state"] != "verified"]
bad = [m for m in maps if m["state"] in ("failed", "unreachable")]

if not todo:
    verdict(f"Everything works: all {len(maps)} ports are open on your router and "
            "reachable from the internet.")
    sys.exit(0)
if nat == "cgnat":  # forwarding cannot help: the provider's NAT is in the way
    verdict("Your internet provider puts you behind carrier-grade NAT: your router has no "
            f"public internet address of its own (it has {gw['external_ip']}, shared through "
            "the provider), so nothing from the internet can reach this device, whatever "
            "the router's settings. Call your provider and ask for a public IPv4 address; "
            "our help page says what to ask for.")
    sys.exit(1)
if nat == "double":
    verdict("There are two routers in a row: your router is connected to another one, "
            "usually your internet provider's modem, which does not pass these ports on. "
            "Put the provider's modem in bridge mode, or forward these ports on it to your "
            f"router ({gw['external_ip']}); your router already forwards them to this device.",
            todo, gw["external_ip"])
    sys.exit(1)
if bad:
    failed = [m for m in bad if m["state"] == "failed"]
    n = f"{len(bad)} of the {len(maps)} ports this device needs"
    it = "it" if len(bad) == 1 else "them"
    if failed:
        text = (f"Your router does not open {n} ({failed[0]['error']}): "
                + ADVICE.get(failed[0]["error_code"], "check its UPnP settings"))
    else:
        text = (f"Your router does not forward {n}: it agreed to open {it}, yet nothing sent "
                "from the internet arrives. Check its firewall settings")
    verdict(f"{text}, or forward {it} by hand.",
            [(m["proto"], m["internal_port"]) for m in bad], gw["local_address"])
    sys.exit(1)
# every port is open on the router, some or all could not be checked from outside
note = next(m["verification"]["note"] for m in maps if m["state"] == "mapped")
checked = len(maps) - len(todo)
verdict(f"Your router opened all {len(maps)} ports this device needs, so it should be "
        f"reachable from the internet, but {f'only {checked}' if checked else 'none'} of "
        f"them could be checked from outside: {note}")
sys.exit(0)
EOF
