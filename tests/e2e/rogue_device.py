#!/usr/bin/env python3
"""rogue_device.py - a hostile device on the lab's LAN, and traps that prove nobody followed it.

rogue mode (run it in ns rogue): one process, one event loop, so the SSDP answers go out
as soon as a search arrives (no thread waiting for the interpreter lock):

  SSDP     joins 239.255.255.250:1900 and answers every M-SEARCH (multicast or unicast) at
           once with an IGD answer per LOCATION below, each for InternetGatewayDevice:1 and
           :2, in this order:
             http://127.0.0.1:LOOPBACK/desc.xml the searcher's own loopback
             http://OFFNET/desc.xml             an address beyond the gateway
             http://ROGUE:BASE+1/desc.xml       a 50 MB description (XML, huge comment)
             http://ROGUE:BASE+2/desc.xml       slowloris: never answers, one byte every 3 s
             http://ROGUE:BASE+3/desc.xml       302 to itself, for ever
             http://ROGUE:BASE/desc.xml         a plausible fake IGD whose controlURL is the
                                                rogue: it claims every mapping succeeds and
                                                an external address of 198.51.100.66
             http://ROGUE:BASE+10+i/desc.xml    --variants more fake IGDs, each its own USN
  spray    from ROGUE:5351 at --spray-rate datagrams/s: NAT-PMP public-address and mapping
           responses, PCP MAP responses and ANNOUNCEs, truncated and random junk, to every
           port of --spray-ports on --target (where its ephemeral ports are) and, one in 20,
           to TARGET:5350 and 224.0.0.1:5350
  counts   TCP connections and requests per listener, searches per source, answers and
           datagrams sent: written as JSON to --counts on SIGUSR1, SIGTERM/SIGINT and at exit

trap mode (run it where a follower of a bad LOCATION would connect): listens on each
--listen ADDR:PORT (TCP), counts connections and keeps the first request line of each.

Every mode creates --ready once its sockets listen, exits after --duration seconds, and
holds at most 256 connections (more are accepted, counted and closed).

usage: rogue_device.py rogue --addr A --target A [--http-base P] [--loopback-port P]
                             [--offnet A:P] [--variants N] [--big-mb N] [--spray-ports LO-HI]
                             [--spray-rate N] [--spray-seconds S] [--duration S]
                             [--counts FILE] [--ready FILE]
       rogue_device.py trap --listen A:P [--listen A:P ...] [--duration S] [--counts FILE]
                            [--ready FILE]
"""

import argparse
import ctypes
import json
import os
import random
import re
import selectors
import signal
import socket
import struct
import sys
import time
import uuid

SSDP_GROUP = "239.255.255.250"
ALL_HOSTS = "224.0.0.1"
IGD_TYPES = ("urn:schemas-upnp-org:device:InternetGatewayDevice:1",
             "urn:schemas-upnp-org:device:InternetGatewayDevice:2")
MAX_CONNS = 256
MAX_HEADER = 16384
SLOW_INTERVAL = 3.0
CHUNK = 65536


def set_comm(name):
    # a name of its own, so the lab stops it by PID and comm, not "python3"
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode() + b"\0", 0, 0, 0)
    except (OSError, AttributeError):
        pass


def host_port(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def write_json(path, doc):
    if not path:
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)   # readers never see half a file


def tcp_listener(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(64)
    s.setblocking(False)
    return s


class Conn:
    def __init__(self, sock, kind, port):
        self.sock, self.kind, self.port = sock, kind, port
        self.inbuf = b""
        self.out = b""
        self.stream = None      # iterator of further bytes to send
        self.close_after = False
        self.answered = False
        self.next_tick = None   # slowloris: when the next byte goes


class Server:
    """The TCP side shared by both modes: listeners, connections, counts."""

    def __init__(self, deadline):
        self.sel = selectors.DefaultSelector()
        self.deadline = deadline
        self.conns = {}
        self.tcp = {}           # kind -> connections accepted
        self.tcp_by_port = {}   # port -> connections accepted (ports that had any)
        self.requests = {}      # kind -> requests read
        self.first_lines = {}   # kind -> first request lines (at most 5)
        self.stop = False
        self.dump = False

    def listen(self, addr, port, kind):
        s = tcp_listener(addr, port)
        self.sel.register(s, selectors.EVENT_READ, ("listen", kind, port))
        self.tcp.setdefault(kind, 0)
        return s

    def accept(self, lsock, kind, port):
        for _ in range(64):     # bounded per wakeup
            try:
                sock, _ = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.tcp[kind] = self.tcp.get(kind, 0) + 1
            self.tcp_by_port[port] = self.tcp_by_port.get(port, 0) + 1
            if len(self.conns) >= MAX_CONNS:
                sock.close()
                continue
            sock.setblocking(False)
            c = Conn(sock, kind, port)
            self.conns[sock] = c
            self.sel.register(sock, selectors.EVENT_READ, ("conn", c))
            self.on_accept(c)

    def on_accept(self, c):
        pass

    def on_request(self, c, method, target, head, body):
        c.close_after = True

    def close(self, c):
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        self.conns.pop(c.sock, None)

    def want_write(self, c):
        events = selectors.EVENT_READ
        if c.out or c.stream is not None:
            events |= selectors.EVENT_WRITE
        self.sel.modify(c.sock, events, ("conn", c))

    def readable(self, c):
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(c)
            return
        if not data:
            self.close(c)
            return
        if c.answered:
            return              # later bytes (keep-alive, pipelining) are read and dropped
        c.inbuf += data
        end = c.inbuf.find(b"\r\n\r\n")
        if end < 0:
            if len(c.inbuf) > MAX_HEADER:
                self.close(c)
            return
        head_text = c.inbuf[:end].decode("latin-1")
        lines = head_text.split("\r\n")
        parts = lines[0].split(" ")
        method, target = (parts + ["", ""])[:2]
        head = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                head[name.strip().lower()] = value.strip()
        try:
            length = min(int(head.get("content-length", "0")), 65536)
        except ValueError:
            length = 0
        body = c.inbuf[end + 4:]
        if len(body) < length:
            return
        c.answered = True
        self.requests[c.kind] = self.requests.get(c.kind, 0) + 1
        seen = self.first_lines.setdefault(c.kind, [])
        if len(seen) < 5:
            seen.append(lines[0][:200])
        self.on_request(c, method, target, head, body[:length])
        self.want_write(c)

    def writable(self, c):
        budget = 1 << 20        # a fast reader of the 50 MB must not starve the SSDP answers
        while budget > 0:
            if not c.out and c.stream is not None:
                c.out = next(c.stream, b"")
                if not c.out:
                    c.stream = None
            if not c.out:
                break
            try:
                n = c.sock.send(c.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close(c)
                return
            self.sent(c, n)
            budget -= n
            c.out = c.out[n:]
            if c.out:
                return
        if c.out or c.stream is not None:
            return
        if c.close_after:
            self.close(c)
        else:
            self.want_write(c)

    def sent(self, c, n):
        pass

    def ticks(self, now):
        pass

    def next_wake(self, now):
        return now + 0.05

    def counts(self):
        return {"tcp_connections": dict(self.tcp), "tcp_connections_by_port": dict(self.tcp_by_port),
                "requests": dict(self.requests),
                "first_request_lines": dict(self.first_lines)}

    def run(self, counts_path, extra_ready=None):
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGUSR1, self._dump)
        started = time.monotonic()
        if extra_ready:
            open(extra_ready, "w").close()
        while not self.stop and time.monotonic() < self.deadline:
            now = time.monotonic()
            # signals only set flags: wake often enough to see them
            timeout = max(0.0, min(self.next_wake(now), now + 0.05, self.deadline) - now)
            events = self.sel.select(timeout)
            # SSDP first: answering fast is the whole point
            events.sort(key=lambda e: e[0].data[0] != "ssdp")
            for key, mask in events:
                what = key.data
                if what[0] == "listen":
                    self.accept(key.fileobj, what[1], what[2])
                elif what[0] == "conn":
                    c = what[1]
                    if c.sock not in self.conns:
                        continue
                    if mask & selectors.EVENT_READ:
                        self.readable(c)
                    if c.sock in self.conns and mask & selectors.EVENT_WRITE:
                        self.writable(c)
                else:
                    self.datagram(key.fileobj, what)
            self.ticks(time.monotonic())
            if self.dump:
                self.dump = False
                write_json(counts_path, dict(self.counts(), elapsed_s=round(time.monotonic() - started, 3)))
        write_json(counts_path, dict(self.counts(), elapsed_s=round(time.monotonic() - started, 3)))
        for c in list(self.conns.values()):
            self.close(c)

    def datagram(self, sock, what):
        pass

    def _stop(self, *_):
        self.stop = True

    def _dump(self, *_):
        self.dump = True


def fake_description(addr, port, udn, friendly):
    # what miniupnpd serves, minus the parts nobody reads; controlURL on the rogue
    return f"""<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<URLBase>http://{addr}:{port}/</URLBase>
<device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>{friendly}</friendlyName>
<manufacturer>Totally Legit Networks</manufacturer>
<modelName>Gateway</modelName>
<UDN>uuid:{udn}</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<UDN>uuid:{udn}-1</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId>
<SCPDURL>/wancfg.xml</SCPDURL><controlURL>/ctl/CmnIfCfg</controlURL><eventSubURL>/evt/CmnIfCfg</eventSubURL>
</service></serviceList>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<UDN>uuid:{udn}-2</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<SCPDURL>/wanipc.xml</SCPDURL><controlURL>http://{addr}:{port}/ctl/IPConn</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL>
</service></serviceList>
</device></deviceList>
</device></deviceList>
</device>
</root>
""".encode()


SOAP_ENVELOPE = ('<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
                 's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>{}</s:Body></s:Envelope>\r\n')
FAKE_EXTERNAL_IP = "198.51.100.66"


def soap_answer(action, service, body):
    """(status, body) for a SOAP call to the fake IGD: it claims success for all a mapper
    needs, with an external address of its own, so a client that trusts it reports
    mappings the real gateway never made."""
    def arg(name, default=""):
        m = re.search(rb"<" + name.encode() + rb">([^<]{0,64})</", body)
        return m.group(1).decode("latin-1") if m else default
    values = {
        "GetExternalIPAddress": {"NewExternalIPAddress": FAKE_EXTERNAL_IP},
        "AddPortMapping": {},
        "DeletePortMapping": {},
        "AddAnyPortMapping": {"NewReservedPort": arg("NewExternalPort", "1")},
        "GetSpecificPortMappingEntry": {
            "NewInternalPort": arg("NewExternalPort", "1"), "NewInternalClient": "10.77.0.2",
            "NewEnabled": "1", "NewPortMappingDescription": "natkeeper", "NewLeaseDuration": "3600"},
        "GetStatusInfo": {"NewConnectionStatus": "Connected", "NewLastConnectionError": "ERROR_NONE",
                          "NewUptime": "12345"},
    }.get(action)
    if values is None:
        fault = ('<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>'
                 '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>401</errorCode>'
                 '<errorDescription>Invalid Action</errorDescription></UPnPError></detail></s:Fault>')
        return "500 Internal Server Error", SOAP_ENVELOPE.format(fault).encode()
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in values.items())
    return "200 OK", SOAP_ENVELOPE.format(f'<u:{action}Response xmlns:u="{service}">{inner}'
                                          f'</u:{action}Response>').encode()


def http_response(status, body, ctype="text/xml", extra=""):
    return (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Server: Linux/5 UPnP/1.1 Rogue/1.0\r\nConnection: close\r\n\r\n").encode() + body


def big_stream(total):
    head = (b'<?xml version="1.0"?>\n<root xmlns="urn:schemas-upnp-org:device-1-0">\n<!-- ')
    tail = (b' -->\n<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1'
            b'</deviceType></device>\n</root>\n')
    yield (f"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {total}\r\n"
           f"Connection: close\r\n\r\n").encode() + head
    left = total - len(head) - len(tail)
    filler = b"x" * CHUNK
    while left > 0:
        n = min(left, CHUNK)
        yield filler[:n]
        left -= n
    yield tail


def slow_stream():
    text = b"HTTP/1.1 200 OK\r\nX-Padding: "
    for b in text:
        yield bytes([b])
    while True:
        yield b"a"


class Rogue(Server):
    def __init__(self, args, deadline):
        super().__init__(deadline)
        self.a = args
        base = args.http_base
        self.kinds = {base: "fake", base + 1: "big", base + 2: "slow", base + 3: "redirect"}
        for i in range(args.variants):
            self.kinds[base + 10 + i] = "variant"
        for port, kind in self.kinds.items():
            self.listen(args.addr, port, kind)
        self.descs = {}
        self.udn = {}
        for port in self.kinds:
            self.udn[port] = str(uuid.uuid4())
            self.descs[port] = fake_description(args.addr, port, self.udn[port],
                                                f"Gateway {port - base}")
        self.big_bytes = 0
        self.slow_bytes = 0
        self.control_posts = 0
        self.control_actions = {}
        self.redirects = 0
        self.searches = 0
        self.searches_by_source = {}
        self.answers_sent = 0
        self.answer_errors = 0
        self.spray_sent = 0
        self.spray_errors = 0
        self.spray_by_kind = {}
        self.answers = self.build_answers()
        self.ssdp = self.ssdp_socket()
        self.sel.register(self.ssdp, selectors.EVENT_READ, ("ssdp",))
        lo, _, hi = args.spray_ports.partition("-")
        self.spray_ports = list(range(int(lo), int(hi or lo) + 1)) if args.spray_ports else []
        self.spray_sock = None
        if self.spray_ports and args.spray_rate > 0:
            self.spray_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.spray_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.spray_sock.bind((args.addr, 5351))
            self.spray_sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(args.addr))
            self.spray_sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            self.spray_sock.setblocking(False)
        self.spray_end = time.monotonic() + (args.spray_seconds if args.spray_seconds else args.duration)
        self.spray_next = time.monotonic()
        self.spray_i = 0
        self.rng = random.Random(os.getpid())

    def ssdp_socket(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 1900))
        mreq = socket.inet_aton(SSDP_GROUP) + socket.inet_aton(self.a.addr)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        s.setblocking(False)
        return s

    def build_answers(self):
        a, base = self.a, self.a.http_base
        # the worst first: a client that tries answers in turn meets the traps before the fake
        locations = [(f"http://127.0.0.1:{a.loopback_port}/desc.xml", str(uuid.uuid4())),
                     (f"http://{a.offnet}/desc.xml", str(uuid.uuid4()))]
        locations += [(f"http://{a.addr}:{base + k}/desc.xml", self.udn[base + k]) for k in (1, 2, 3, 0)]
        for i in range(a.variants):
            locations.append((f"http://{a.addr}:{base + 10 + i}/desc.xml", self.udn[base + 10 + i]))
        out = []
        for location, udn in locations:
            for st in IGD_TYPES:
                out.append((f"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n"
                            f"LOCATION: {location}\r\nSERVER: Linux/5 UPnP/1.1 Rogue/1.0\r\n"
                            f"ST: {st}\r\nUSN: uuid:{udn}::{st}\r\n\r\n").encode())
        return out

    def datagram(self, sock, what):
        for _ in range(64):
            try:
                data, src = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not data.startswith(b"M-SEARCH"):
                continue
            self.searches += 1
            key = src[0]
            self.searches_by_source[key] = self.searches_by_source.get(key, 0) + 1
            for answer in self.answers:
                try:
                    sock.sendto(answer, src)
                    self.answers_sent += 1
                except OSError:
                    self.answer_errors += 1

    def on_accept(self, c):
        if c.kind == "slow":
            c.stream = slow_stream()
            c.next_tick = time.monotonic() + SLOW_INTERVAL

    def on_request(self, c, method, target, head, body):
        c.close_after = True
        if c.kind == "slow":
            c.close_after = False
            return
        if c.kind == "big":
            c.stream = big_stream(self.a.big_mb * 1024 * 1024)
        elif c.kind == "redirect":
            self.redirects += 1
            hop = self.redirects
            c.out = http_response("302 Found", b"", extra=(
                f"Location: http://{self.a.addr}:{c.port}/desc.xml?hop={hop}\r\n"))
        elif method == "POST":
            self.control_posts += 1
            service, _, action = head.get("soapaction", "").strip('"').partition("#")
            self.control_actions[action] = self.control_actions.get(action, 0) + 1
            status, answer = soap_answer(action, service, body)
            c.out = http_response(status, answer, 'text/xml; charset="utf-8"')
        else:
            c.out = http_response("200 OK", self.descs[c.port])

    def want_write(self, c):
        if c.kind == "slow":
            return          # its bytes go out on the clock (ticks)
        super().want_write(c)

    def sent(self, c, n):
        if c.kind == "big":
            self.big_bytes += n
        elif c.kind == "slow":
            self.slow_bytes += n

    def ticks(self, now):
        for c in list(self.conns.values()):
            if c.kind == "slow" and c.next_tick is not None and now >= c.next_tick:
                c.next_tick = now + SLOW_INTERVAL
                try:
                    self.slow_bytes += c.sock.send(next(c.stream))
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    self.close(c)
        self.spray(now)

    def next_wake(self, now):
        wake = now + 0.05
        if self.spray_sock is not None and now < self.spray_end:
            wake = min(wake, self.spray_next)
        return wake

    def spray_datagram(self):
        r = self.rng
        epoch = r.choice((0, 1, 7, r.randrange(1 << 32)))
        kind = self.spray_i % 8
        fake_ip = socket.inet_aton(f"198.51.100.{r.randrange(1, 255)}")
        port = r.choice((7076, 7077, 15063, 16500, r.randrange(1, 65536)))
        if kind == 0:   # NAT-PMP public address response
            return "natpmp_address", struct.pack("!BBHI", 0, 128, 0, epoch) + fake_ip
        if kind in (1, 2):  # NAT-PMP mapping response, UDP / TCP
            return "natpmp_map", struct.pack("!BBHIHHI", 0, 128 + kind, 0, epoch, port,
                                             r.randrange(1, 65536), r.choice((0, 60, 7200)))
        if kind == 3:   # PCP ANNOUNCE response
            return "pcp_announce", struct.pack("!BBBBII12x", 2, 0x80, 0, 0, 0, epoch)
        if kind == 4:   # PCP MAP response, a nonce nobody sent
            return "pcp_map", (struct.pack("!BBBBII12x", 2, 0x81, 0, r.choice((0, 0, 2, 8)),
                                           r.choice((0, 120, 7200)), epoch)
                               + r.randbytes(12) + struct.pack("!B3xHH", r.choice((6, 17)), port,
                                                               r.randrange(1, 65536))
                               + b"\0" * 10 + b"\xff\xff" + fake_ip)
        if kind == 5:   # truncated NAT-PMP / PCP
            return "truncated", r.choice((b"\0\x80", b"\0\x81\0\0\0\0", b"\x02\x81" + b"\0" * 20))
        if kind == 6:   # PCP with a version nobody speaks
            return "bad_version", struct.pack("!BBBBII12x", r.choice((1, 3, 255)), 0x81, 0, 0, 120, epoch)
        return "junk", r.randbytes(r.randrange(1, 1100))

    def spray(self, now):
        if self.spray_sock is None or now < self.spray_next or now >= self.spray_end:
            return
        # bursts every 10 ms; a late wakeup does not make up for lost time (bounded rate)
        per_tick = max(1, self.a.spray_rate // 100)
        self.spray_next = now + 0.01
        for _ in range(per_tick):
            self.spray_i += 1
            name, data = self.spray_datagram()
            i = self.spray_i
            if i % 20 == 0:
                dst = (ALL_HOSTS, 5350)
            elif i % 20 == 10:
                dst = (self.a.target, 5350)
            else:
                dst = (self.a.target, self.spray_ports[i % len(self.spray_ports)])
            try:
                self.spray_sock.sendto(data, dst)
                self.spray_sent += 1
                self.spray_by_kind[name] = self.spray_by_kind.get(name, 0) + 1
            except OSError:
                self.spray_errors += 1

    def counts(self):
        doc = super().counts()
        doc.update(ssdp_searches=self.searches, ssdp_searches_by_source=dict(self.searches_by_source),
                   ssdp_answers_sent=self.answers_sent, ssdp_answer_errors=self.answer_errors,
                   ssdp_answers_per_search=len(self.answers), big_bytes_sent=self.big_bytes,
                   slow_bytes_sent=self.slow_bytes, control_posts=self.control_posts,
                   control_actions=dict(self.control_actions),
                   redirects_sent=self.redirects, spray_sent=self.spray_sent,
                   spray_errors=self.spray_errors, spray_by_kind=dict(self.spray_by_kind),
                   spray_ports=self.a.spray_ports,
                   listeners={kind: sorted(p for p, k in self.kinds.items() if k == kind)
                              for kind in set(self.kinds.values())})
        return doc


class Trap(Server):
    def on_request(self, c, method, target, head, body):
        c.close_after = True
        c.out = http_response("404 Not Found", b"")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("rogue")
    r.add_argument("--addr", required=True, help="the rogue's own address")
    r.add_argument("--target", required=True, help="the host under attack")
    r.add_argument("--http-base", type=int, default=8000)
    r.add_argument("--loopback-port", type=int, default=8000)
    r.add_argument("--offnet", default="203.0.113.3:8080")
    r.add_argument("--variants", type=int, default=50)
    r.add_argument("--big-mb", type=int, default=50)
    r.add_argument("--spray-ports", default="", help="LO-HI on --target")
    r.add_argument("--spray-rate", type=int, default=3000, help="datagrams per second (max 20000)")
    r.add_argument("--spray-seconds", type=float, default=0, help="default: --duration")
    t = sub.add_parser("trap")
    t.add_argument("--listen", action="append", required=True, metavar="ADDR:PORT")
    for q in (r, t):
        q.add_argument("--duration", type=float, default=600)
        q.add_argument("--counts", default="")
        q.add_argument("--ready", default="")
    a = p.parse_args()
    deadline = time.monotonic() + a.duration
    if a.mode == "rogue":
        set_comm("nk-rogue")
        a.spray_rate = max(0, min(a.spray_rate, 20000))
        server = Rogue(a, deadline)
    else:
        set_comm("nk-trap")
        server = Trap(deadline)
        for spec in a.listen:
            host, port = host_port(spec)
            server.listen(host, port, spec)
    server.run(a.counts, a.ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
