#!/usr/bin/env python3
"""forged_ssdp.py - answers every multicast M-SEARCH of a LAN host in the gateway's name.

Run it in ns rogue. It joins 239.255.255.250:1900 on --iface-addr and, for each M-SEARCH
from --target, sends at once, with a forged source (--gateway:1900, via spoof.py's raw
socket), one IGD answer per LOCATION below to the search's source port, each for
InternetGatewayDevice:2 and :1: the answer arrives before the gateway's own, which waits
out MX. Every LOCATION is on the gateway, so it passes a check that the LOCATION's host
is the responder, and every one fails to open:

  http://GATEWAY:9/x.xml                  nothing listens (connection refused)
  http://GATEWAY:HTTP_PORT/forged-I.xml   the gateway's own HTTP server: 404 (--locations - 1 of them)

It appends one line per search answered to --log ("search from A:P, N answers"), creates
--ready once it listens, and exits after --duration seconds.

usage: forged_ssdp.py --iface-addr A --target A --gateway A [--http-port P] [--locations N]
                      [--duration S] --log FILE [--ready FILE]
"""

import argparse
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spoof  # noqa: E402  (beside this file)

SSDP_GROUP, SSDP_PORT = "239.255.255.250", 1900
IGD_TYPES = ("urn:schemas-upnp-org:device:InternetGatewayDevice:2",
             "urn:schemas-upnp-org:device:InternetGatewayDevice:1")


def answers(gateway, http_port, count):
    locations = [f"http://{gateway}:9/x.xml"]
    locations += [f"http://{gateway}:{http_port}/forged-{i}.xml" for i in range(1, count)]
    out = []
    for i, location in enumerate(locations):
        for st in IGD_TYPES:
            out.append((f"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nEXT:\r\nLOCATION: {location}\r\n"
                        f"SERVER: Linux/5 UPnP/1.1 MiniUPnPd/2.3\r\nST: {st}\r\n"
                        f"USN: uuid:f0f0f0f0-0000-4000-8000-{i:012d}::{st}\r\n\r\n").encode())
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iface-addr", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--http-port", type=int, default=5000)
    p.add_argument("--locations", type=int, default=20)
    p.add_argument("--duration", type=float, default=120)
    p.add_argument("--log", required=True)
    p.add_argument("--ready")
    a = p.parse_args()
    if not 1 <= a.locations <= 100 or not 0 < a.duration <= 600:
        sys.exit("forged_ssdp.py: --locations must be 1..100 and --duration 0..600")

    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", SSDP_PORT))
    listener.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        socket.inet_aton(SSDP_GROUP) + socket.inet_aton(a.iface_addr))
    raw = spoof.raw_socket()
    forged = answers(a.gateway, a.http_port, a.locations)
    if a.ready:
        open(a.ready, "w").close()

    end = time.monotonic() + a.duration
    with open(a.log, "a", buffering=1) as log:
        while (left := end - time.monotonic()) > 0:
            if not select.select([listener], [], [], left)[0]:
                continue
            data, src = listener.recvfrom(2048)
            if src[0] != a.target or not data.startswith(b"M-SEARCH"):
                continue
            for answer in forged:
                spoof.send(raw, (a.gateway, SSDP_PORT), src, answer)
            log.write(f"search from {src[0]}:{src[1]}, {len(forged)} answers\n")


if __name__ == "__main__":
    main()
