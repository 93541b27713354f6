#!/usr/bin/env python3
"""probe.py - does unsolicited traffic from the "internet" reach the LAN host?

For every target (proto, port) it listens in the LAN namespace on 0.0.0.0:PORT and, from
the WAN namespace, sends a random token to the gateway's external address DST:PORT: a UDP
datagram, or a TCP connect + write. Every send comes from a fresh source port (never used
before in this lab, see --used-ports), because a conntrack entry created before a mapping
existed keeps bypassing it (~30 s for UDP), and one created while it existed keeps using
it after it is deleted.

One process does it all: it enters the namespaces with setns(2) to create its sockets
(a socket stays in the namespace it was created in), then waits on all of them at once,
so a list of a hundred ports takes no longer than one.

usage: probe.py --lan NS --wan NS --expect reach|blocked [--timeout S] [--dst ADDR]
                [--src ADDR] [--used-ports FILE] [-v] SPEC...
  SPEC     udp:PORT, tcp:PORT, tcp+udp:PORT, udp:LOW-HIGH, or several ports: udp:7076,7077
  reach    every token must arrive, at the listener of its own port, within --timeout (2 s)
  blocked  nothing may arrive within --timeout (1 s)
exit status: 0 expectation met, 1 not met, 2 setup error (bad arguments, namespace, a port
already in use in the LAN namespace).
"""

import argparse
import ctypes
import errno
import os
import random
import secrets
import selectors
import socket
import sys
import time

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"
SRC_PORT_RANGE = (20000, 60999)   # explicit source ports; avoids 3478/3479 (coturn)


class SetupError(Exception):
    pass


def setns(path):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if hasattr(os, "setns"):                      # Python >= 3.12
            os.setns(fd, CLONE_NEWNET)
        else:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def ns_path(name):
    return name if "/" in name else os.path.join(NETNS_DIR, name)


def parse_specs(specs):
    targets = []
    for spec in specs:
        try:
            protos, ports = spec.split(":", 1)
            plist = []
            for part in ports.split(","):
                lo, _, hi = part.partition("-")
                lo, hi = int(lo), int(hi or lo)
                if not (1 <= lo <= hi <= 65535):
                    raise ValueError
                plist.extend(range(lo, hi + 1))
            for proto in protos.split("+"):
                if proto not in ("udp", "tcp"):
                    raise ValueError
                targets.extend((proto, p) for p in plist)
        except ValueError:
            raise SetupError(f"bad port spec {spec!r} (want udp:PORT, tcp+udp:LOW-HIGH, ...)")
    seen, out = set(), []
    for t in targets:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


class SourcePorts:
    """Hands out source ports never used before by this lab (recorded in a file)."""

    def __init__(self, path):
        self.path = path
        self.used = set()
        if path and os.path.exists(path):
            with open(path) as f:
                self.used.update(int(w) for w in f.read().split())
        self.new = []

    def take(self):
        lo, hi = SRC_PORT_RANGE
        if len(self.used) > (hi - lo) // 2:
            raise SetupError("source ports exhausted for this lab")
        for _ in range(1000):
            p = random.randint(lo, hi)
            if p not in self.used and p not in (3478, 3479):
                self.used.add(p)
                self.new.append(p)
                return p
        raise SetupError("cannot find a fresh source port")

    def save(self):
        if self.path and self.new:
            with open(self.path, "a") as f:
                f.write("".join(f"{p}\n" for p in self.new))


class Target:
    def __init__(self, proto, port, token):
        self.proto, self.port, self.token = proto, port, token
        self.listener = None
        self.sender = None
        self.src = None              # (addr, port) we sent from
        self.arrived_from = None     # peer address the LAN listener saw
        self.misrouted_to = None     # LAN port where this target's token showed up instead
        self.note = ""               # e.g. "connection refused by the gateway"
        self.sent = 0

    @property
    def name(self):
        return f"{self.proto} {self.port}"


def bind_with_fresh_port(sock, src, ports):
    for _ in range(20):
        p = ports.take()
        try:
            sock.bind((src, p))
            return p
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    raise SetupError("no free source port")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lan", required=True, help="LAN namespace (name or path)")
    ap.add_argument("--wan", required=True, help="WAN namespace (name or path)")
    ap.add_argument("--expect", required=True, choices=("reach", "blocked"))
    ap.add_argument("--timeout", type=float)
    ap.add_argument("--dst", default="203.0.113.1", help="gateway's external address")
    ap.add_argument("--src", default="203.0.113.2", help="sender's address in the WAN namespace")
    ap.add_argument("--used-ports", help="file recording source ports already used in this lab")
    ap.add_argument("-v", "--verbose", action="store_true", help="a line for every target")
    ap.add_argument("specs", nargs="+", metavar="SPEC")
    args = ap.parse_args()
    timeout = args.timeout if args.timeout is not None else (2.0 if args.expect == "reach" else 1.0)

    try:
        targets = parse_specs(args.specs)
    except SetupError as e:
        print(f"probe: {e}", file=sys.stderr)
        return 2
    run = secrets.token_hex(6)
    targets = [Target(proto, port, f"natkeeper-e2e {run} {proto} {port}\n".encode())
               for proto, port in targets]
    by_token = {t.token: t for t in targets}
    ports = SourcePorts(args.used_ports)
    sel = selectors.DefaultSelector()
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        # listeners in the LAN namespace
        setns(ns_path(args.lan))
        for t in targets:
            kind = socket.SOCK_DGRAM if t.proto == "udp" else socket.SOCK_STREAM
            s = socket.socket(socket.AF_INET, kind)
            if t.proto == "tcp":   # (TIME_WAIT) - not for UDP: it would share a busy port
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", t.port))
            except OSError as e:
                raise SetupError(f"cannot listen on {t.proto} 0.0.0.0:{t.port} in the LAN "
                                 f"namespace: {e.strerror} (is natkeeper or a test helper "
                                 f"still holding it?)")
            if t.proto == "tcp":
                s.listen(16)
            s.setblocking(False)
            t.listener = s
            sel.register(s, selectors.EVENT_READ, ("listen", t))
        # senders in the WAN namespace, each from a fresh source port
        setns(ns_path(args.wan))
        for t in targets:
            kind = socket.SOCK_DGRAM if t.proto == "udp" else socket.SOCK_STREAM
            s = socket.socket(socket.AF_INET, kind)
            t.src = (args.src, bind_with_fresh_port(s, args.src, ports))
            s.setblocking(False)
            t.sender = s
            if t.proto == "tcp":
                rc = s.connect_ex((args.dst, t.port))
                if rc not in (0, errno.EINPROGRESS):
                    t.note = f"connect: {os.strerror(rc)}"
                else:
                    sel.register(s, selectors.EVENT_WRITE, ("connect", t))
        setns("/proc/self/fd/%d" % home)
    except SetupError as e:
        print(f"probe: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"probe: setup failed: {e}", file=sys.stderr)
        return 2
    finally:
        ports.save()
        os.close(home)

    def send_udp(t):
        try:
            t.sender.sendto(t.token, (args.dst, t.port))
            t.sent += 1
        except OSError as e:          # e.g. ECONNREFUSED from an earlier ICMP error
            t.note = f"send: {e.strerror}"

    def arrived(t, lan_port, peer):   # t's token showed up at the LAN listener on lan_port
        if t.port != lan_port:
            t.misrouted_to = lan_port
        elif t.arrived_from is None:
            t.arrived_from = peer

    udp = [t for t in targets if t.proto == "udp"]
    for t in udp:
        send_udp(t)
    start = time.monotonic()
    deadline = start + timeout
    resend_at = [start + 0.3, start + 0.8]      # UDP retries, same source port
    conns = {}                                  # accepted TCP socket -> (target, buffer)
    unexpected = []

    def pending():
        return [t for t in targets if t.arrived_from is None and t.misrouted_to is None]

    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if args.expect == "reach" and not pending():
            break
        if resend_at and now >= resend_at[0]:
            resend_at.pop(0)
            for t in udp:
                if t.arrived_from is None and t.misrouted_to is None:
                    send_udp(t)
        wake = min([deadline] + resend_at[:1])
        for key, _ in sel.select(max(0.0, wake - time.monotonic())):
            what, t = key.data
            s = key.fileobj
            if what == "listen" and t.proto == "udp":
                while True:
                    try:
                        data, peer = s.recvfrom(2048)
                    except BlockingIOError:
                        break
                    got = by_token.get(data)
                    if got is None or got.proto != "udp":
                        unexpected.append(f"udp {t.port}: unexpected datagram {data[:60]!r} from {peer}")
                    else:
                        arrived(got, t.port, peer)
            elif what == "listen":
                try:
                    c, peer = s.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                conns[c] = (t, b"", peer)
                sel.register(c, selectors.EVENT_READ, ("conn", t))
            elif what == "conn":
                lt, buf, peer = conns[s]
                try:
                    chunk = s.recv(256)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                buf += chunk
                if chunk and not buf.endswith(b"\n") and len(buf) < 256:
                    conns[s] = (lt, buf, peer)
                    continue
                sel.unregister(s)
                s.close()
                del conns[s]
                got = by_token.get(buf)
                if got is None or got.proto != "tcp":
                    unexpected.append(f"tcp {lt.port}: unexpected data {buf[:60]!r} from {peer}")
                else:
                    arrived(got, lt.port, peer)
            elif what == "connect":
                sel.unregister(s)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    t.note = ("connection refused by the gateway" if err == errno.ECONNREFUSED
                              else f"connect: {os.strerror(err)}")
                    continue
                try:
                    s.send(t.token)
                    t.sent += 1
                except OSError as e:
                    t.note = f"send: {e.strerror}"

    elapsed = time.monotonic() - start
    ok = True
    lines = []
    for t in targets:
        src = f"{t.src[0]}:{t.src[1]}" if t.src else "?"
        if t.arrived_from is not None:
            line = f"{t.name}: arrived in lan from {t.arrived_from[0]}:{t.arrived_from[1]}"
            good = args.expect == "reach"
        elif t.misrouted_to is not None:
            line = f"{t.name}: arrived in lan on the WRONG port {t.misrouted_to}"
            good = False
        else:
            how = f"; {t.note}" if t.note else ""
            line = f"{t.name}: nothing arrived (sent from {src}{how})"
            good = args.expect == "blocked"
        ok &= good
        lines.append((good, line))
    # every line for a short list; for a long one only what went wrong
    shown = [l for l in lines if args.verbose or len(lines) <= 12 or not l[0]]
    for good, line in shown:
        print(f"  {'ok ' if good else 'BAD'} {line}")
    for u in unexpected:
        print(f"  BAD {u}")
        ok = False
    left = len(lines) - len(shown)
    print(f"  ({len(targets)} target(s), expect {args.expect}, {elapsed:.2f} s"
          + (f"; {left} ok line(s) not shown)" if left else ")"))
    for c in list(conns):
        c.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
