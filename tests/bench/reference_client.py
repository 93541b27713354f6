#!/usr/bin/env python3
"""reference_client.py - a raw, pipelined port-mapping client: the benchmark's yardstick for
how fast the gateway itself can map. Not a product, no discovery: it is told the gateway.

  reference_client.py --protocol pcp|natpmp|upnp --gateway 10.77.0.1 --client 10.77.0.2 \
      --map udp:20000-20999 [--map tcp+udp:15063] [--window 64] [--connections 4]

PCP and NAT-PMP: MAP requests on one UDP socket, up to --window in flight, answers matched
by nonce (PCP) or opcode and internal port (NAT-PMP); a request unanswered after --timeout
is sent again (timeout doubled), at most --tries times. UPnP: AddPortMapping over up to
--connections parallel HTTP connections, one call per connection (miniupnpd closes each
after one call; its listen backlog is 5, so a refused or reset connection is retried).
Everything ends after --max-seconds. Prints one line:

  reference PROTOCOL: N requested, OK ok, FAILED failed, RESENT resent, MS ms

Exit status 0 if every mapping was granted, 1 otherwise, 2 on a usage error.
"""
import argparse
import ipaddress
import os
import queue
import selectors
import socket
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

PORT = 5351
PROTO_NUM = {"udp": 17, "tcp": 6}
NATPMP_OP = {"udp": 1, "tcp": 2}


def parse_specs(specs):
    """["udp:20000-20999", "tcp+udp:15063"] -> [("udp", 20000), ...] in order, no duplicates"""
    out, seen = [], set()
    for spec in specs:
        protos, _, ports = spec.partition(":")
        lo, _, hi = ports.partition("-")
        try:
            lo, hi = int(lo), int(hi or lo)
        except ValueError:
            raise SystemExit(f"bad --map '{spec}'") from None
        names = protos.split("+")
        if not (1 <= lo <= hi <= 65535) or any(p not in PROTO_NUM for p in names):
            raise SystemExit(f"bad --map '{spec}'")
        for port in range(lo, hi + 1):
            for proto in names:
                if (proto, port) not in seen:
                    seen.add((proto, port))
                    out.append((proto, port))
    return out


class Pipeline:
    """Requests over one UDP socket with a window; subclasses encode and match."""

    def __init__(self, args, jobs):
        self.args, self.jobs = args, jobs
        self.ok = self.failed = self.resent = 0

    def run(self):
        a = self.args
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((a.client, 0))
        sock.connect((a.gateway, PORT))
        sock.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ)
        todo = list(reversed(self.jobs))
        flight = {}  # key -> [packet, deadline, tries, timeout]
        end = time.monotonic() + a.max_seconds
        # bounded by count as well as by the clock: every pass sends, receives or times out
        for _ in range(len(self.jobs) * (a.tries + 2) * 4 + 1000):
            now = time.monotonic()
            while todo and len(flight) < a.window:
                job = todo.pop()
                key, packet = self.encode(job)
                flight[key] = [packet, now + a.timeout, 1, a.timeout]
                sock.send(packet)
            if not flight or now >= end:
                break
            wait = max(0.0, min(min(f[1] for f in flight.values()), end) - now)
            if sel.select(wait):
                for _ in range(256):  # drain what has arrived
                    try:
                        data = sock.recv(1100)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    got = self.decode(data)
                    if got is None or got[0] not in flight:
                        continue  # an answer to a retransmission, or junk
                    del flight[got[0]]
                    if got[1]:
                        self.ok += 1
                    else:
                        self.failed += 1
            now = time.monotonic()
            for key, f in list(flight.items()):
                if f[1] > now:
                    continue
                if f[2] >= a.tries:
                    del flight[key]
                    self.failed += 1
                    continue
                f[2] += 1
                f[3] *= 2
                f[1] = now + f[3]
                self.resent += 1
                sock.send(f[0])
        self.failed += len(flight) + len(todo)
        sock.close()


class Pcp(Pipeline):
    def __init__(self, args, jobs):
        super().__init__(args, jobs)
        self.client16 = ipaddress.IPv6Address("::ffff:" + args.client).packed
        self.any16 = ipaddress.IPv6Address("::ffff:0.0.0.0").packed

    def encode(self, job):
        proto, port = job
        nonce = os.urandom(12)
        # header: version 2, opcode MAP (1), lifetime, client address; MAP: nonce, protocol,
        # internal port, suggested external port, suggested external address (any IPv4)
        packet = (struct.pack("!BBHI", 2, 1, 0, self.args.lease) + self.client16
                  + nonce + struct.pack("!B3xHH", PROTO_NUM[proto], port, port) + self.any16)
        return nonce, packet

    def decode(self, data):
        if len(data) < 60 or data[0] != 2 or data[1] != 0x81:
            return None
        return data[24:36], data[3] == 0


class NatPmp(Pipeline):
    def encode(self, job):
        proto, port = job
        op = NATPMP_OP[proto]
        return (op, port), struct.pack("!BBHHHI", 0, op, 0, port, port, self.args.lease)

    def decode(self, data):
        if len(data) < 16 or data[0] != 0 or data[1] not in (129, 130):
            return None
        result, _, port = struct.unpack("!H I H", data[2:10])
        return (data[1] - 128, port), result == 0


class Upnp:
    """AddPortMapping over parallel one-shot HTTP connections."""

    def __init__(self, args, jobs):
        self.args, self.jobs = args, jobs
        self.ok = self.failed = self.resent = 0
        self.lock = threading.Lock()

    def control(self):
        a = self.args
        url = a.url or f"http://{a.gateway}:5000/rootDesc.xml"
        with urllib.request.urlopen(url, timeout=a.timeout) as r:
            root = ET.fromstring(r.read())
        for el in root.iter():
            if not el.tag.endswith("}service"):
                continue
            fields = {c.tag.rsplit("}", 1)[-1]: (c.text or "").strip() for c in el}
            if "WANIPConnection" in fields.get("serviceType", ""):
                ctl = urllib.parse.urljoin(url, fields["controlURL"])
                return fields["serviceType"], urllib.parse.urlsplit(ctl)
        raise SystemExit(f"no WANIPConnection service in {url}")

    def request(self, service, ctl, job):
        proto, port = job
        body = ('<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
                's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
                f'<u:AddPortMapping xmlns:u="{service}"><NewRemoteHost></NewRemoteHost>'
                f"<NewExternalPort>{port}</NewExternalPort><NewProtocol>{proto.upper()}</NewProtocol>"
                f"<NewInternalPort>{port}</NewInternalPort><NewInternalClient>{self.args.client}</NewInternalClient>"
                "<NewEnabled>1</NewEnabled><NewPortMappingDescription>reference</NewPortMappingDescription>"
                f"<NewLeaseDuration>{self.args.lease}</NewLeaseDuration></u:AddPortMapping></s:Body></s:Envelope>\r\n")
        head = (f"POST {ctl.path} HTTP/1.1\r\nHost: {ctl.netloc}\r\nConnection: close\r\n"
                'Content-Type: text/xml; charset="utf-8"\r\n'
                f'SOAPAction: "{service}#AddPortMapping"\r\nContent-Length: {len(body)}\r\n\r\n')
        return (head + body).encode()

    def call(self, addr, packet):
        """one HTTP exchange -> HTTP status; raises OSError when the connection fails"""
        with socket.create_connection(addr, timeout=self.args.timeout,
                                      source_address=(self.args.client, 0)) as s:
            s.sendall(packet)
            reply = b""
            for _ in range(1000):  # miniupnpd answers in a few segments, then closes
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        line = reply.split(b"\r\n", 1)[0].split()
        if len(line) < 2 or not line[1].isdigit():
            raise ConnectionResetError("no HTTP status line")
        return int(line[1])

    def run(self):
        a = self.args
        service, ctl = self.control()
        addr = (ctl.hostname, ctl.port or 80)
        work = queue.Queue()
        for job in self.jobs:
            work.put(job)
        end = time.monotonic() + a.max_seconds

        def worker():
            while time.monotonic() < end:
                try:
                    job = work.get_nowait()
                except queue.Empty:
                    return
                packet, ok = self.request(service, ctl, job), False
                for attempt in range(a.tries):
                    try:
                        ok = self.call(addr, packet) == 200
                        break
                    except OSError:
                        with self.lock:
                            self.resent += 1
                        time.sleep(0.005 * (attempt + 1))  # a full backlog drains quickly
                with self.lock:
                    if ok:
                        self.ok += 1
                    else:
                        self.failed += 1

        threads = [threading.Thread(target=worker) for _ in range(min(a.connections, len(self.jobs)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, end - time.monotonic()) + 2 * a.timeout)
        self.failed = len(self.jobs) - self.ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--protocol", required=True, choices=["pcp", "natpmp", "upnp"])
    p.add_argument("--gateway", required=True)
    p.add_argument("--client", required=True, help="this host's address towards the gateway")
    p.add_argument("--map", action="append", required=True, help="PROTO:PORT[-PORT], repeatable")
    p.add_argument("--url", help="UPnP description URL (default http://GATEWAY:5000/rootDesc.xml)")
    p.add_argument("--lease", type=int, default=3600)
    p.add_argument("--window", type=int, default=64, help="UDP requests in flight")
    p.add_argument("--connections", type=int, default=4, help="parallel HTTP connections")
    # a busy gateway works through the window one request at a time: no early resend
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--tries", type=int, default=4)
    p.add_argument("--max-seconds", type=float, default=300.0)
    a = p.parse_args()
    if a.window < 1 or a.connections < 1 or a.tries < 1:
        p.error("--window, --connections and --tries must be >= 1")
    jobs = parse_specs(a.map)
    client = {"pcp": Pcp, "natpmp": NatPmp, "upnp": Upnp}[a.protocol](a, jobs)
    t0 = time.monotonic()
    client.run()
    ms = (time.monotonic() - t0) * 1000
    print(f"reference {a.protocol}: {len(jobs)} requested, {client.ok} ok, {client.failed} failed, "
          f"{client.resent} resent, {ms:.1f} ms")
    return 0 if client.ok == len(jobs) else 1


if __name__ == "__main__":
    sys.exit(main())
