#!/usr/bin/env python3
"""notice_listener.py - record what a gateway announces on the LAN by multicast.

Run it inside the LAN namespace. It listens on 0.0.0.0:5350 (NAT-PMP public-address
notices and PCP ANNOUNCE responses, RFC 6886 3.2.1 / RFC 6887 14.1.3, sent to 224.0.0.1)
and on 0.0.0.0:1900 (SSDP NOTIFY to 239.255.255.250), both with SO_REUSEADDR and joined
to their group on the interface holding --iface-addr, and writes one line per datagram:

  T natpmp SRC -> DST len=12 ver=0 op=128 result=0 epoch=E addr=A
  T pcp SRC -> DST len=24 ver=2 op=0 response=1 result=0 lifetime=L epoch=E
  T ssdp SRC -> DST nts=ssdp:alive nt=NT usn=USN location=URL bootid=B configid=C ...
  T other SRC -> DST len=N hex=...

T is the wall clock (seconds, microseconds), SRC and DST are ADDR:PORT (DST from
IP_PKTINFO: tells multicast from unicast). Unicast datagrams to the ports are recorded
as well. Bounded: it exits after --duration seconds, or on SIGTERM/SIGINT.

usage: notice_listener.py [--iface-addr ADDR] [--duration S] [--out FILE] [--ready FILE]
  --ready FILE  created once both sockets listen (the caller waits for it)
"""

import argparse
import selectors
import signal
import socket
import struct
import sys
import time

ALL_HOSTS = "224.0.0.1"
SSDP_GROUP = "239.255.255.250"
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def listen(port, group, iface_addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    s.bind(("0.0.0.0", port))
    mreq = socket.inet_aton(group) + socket.inet_aton(iface_addr)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    s.setblocking(False)
    return s


def destination(ancdata, port):
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            # struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
            return f"{socket.inet_ntoa(data[8:12])}:{port}"
    return f"?:{port}"


def describe_5350(data):
    if len(data) >= 12 and data[0] == 0 and data[1] == 128:
        result, epoch = struct.unpack_from("!HI", data, 2)
        return (f"natpmp len={len(data)} ver=0 op=128 result={result} epoch={epoch} "
                f"addr={socket.inet_ntoa(data[8:12])}")
    if len(data) >= 24 and data[0] == 2:
        result = data[3]
        lifetime, epoch = struct.unpack_from("!II", data, 4)
        return (f"pcp len={len(data)} ver=2 op={data[1] & 0x7f} response={data[1] >> 7} "
                f"result={result} lifetime={lifetime} epoch={epoch}")
    return f"other len={len(data)} hex={data[:48].hex()}"


def describe_ssdp(data):
    text = data.decode("latin-1")
    lines = text.split("\r\n")
    head = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            head[name.strip().lower()] = value.strip()
    words = [f"start={lines[0].replace(' ', '_')}"]
    for key, name in (("nts", "nts"), ("nt", "nt"), ("usn", "usn"), ("location", "location"),
                      ("bootid.upnp.org", "bootid"), ("configid.upnp.org", "configid"),
                      ("cache-control", "cache"), ("server", "server")):
        if key in head:
            words.append(f"{name}={head[key].replace(' ', '_')}")
    return "ssdp " + " ".join(words)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iface-addr", default="10.77.0.2")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--out", default="-")
    ap.add_argument("--ready")
    args = ap.parse_args()
    out = sys.stdout if args.out == "-" else open(args.out, "a", buffering=1)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    sel = selectors.DefaultSelector()
    for port, group, kind in ((5350, ALL_HOSTS, "5350"), (1900, SSDP_GROUP, "ssdp")):
        sel.register(listen(port, group, args.iface_addr), selectors.EVENT_READ, (port, kind))
    if args.ready:
        open(args.ready, "w").close()

    end = time.monotonic() + max(0.0, min(args.duration, 3600.0))
    while not stop:
        left = end - time.monotonic()
        if left <= 0:
            break
        for key, _ in sel.select(min(left, 0.5)):
            port, kind = key.data
            try:
                data, anc, _, src = key.fileobj.recvmsg(4096, 256)
            except BlockingIOError:
                continue
            what = describe_ssdp(data) if kind == "ssdp" else describe_5350(data)
            kind_word, _, rest = what.partition(" ")
            out.write(f"{time.time():.6f} {kind_word} {src[0]}:{src[1]} -> "
                      f"{destination(anc, port)} {rest}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
