#!/usr/bin/env python3
"""doorbell.py - the lab's doorbell (a LAN device that is not natkeeper's host), and the
internet side that knocks on it.

listen mode (run it in ns doorbell): binds 0.0.0.0:PORT for every port of the SPECs (the
Ring profile by default) and counts, per port, the UDP datagrams received and the TCP
connections accepted. It accepts, so a sender's handshake completes with the device
itself; it reads what a connection sends (discarded) until EOF or 2 s. One process, one
event loop: 108 ports cost 110 sockets and no threads. Binding 0.0.0.0 keeps it listening
across a renumbering of the device.
  counts   written to --counts (atomically: a new file renamed over the old) once at the
           start, after every round of the loop that counted something, on SIGUSR1, and
           at exit. One "proto/port": count pair per line, every listened port present:
             {
             "tcp/15063": 1,
             "udp/7076": 0
             }
  --ready  created once every socket is bound; it exits after --duration seconds, on
           SIGTERM or SIGINT. At most 256 connections are held (more are counted and closed).

send mode (run it in ns wan): one token per port of the SPECs to --to, each from a fresh
source port (recorded in --used-ports, the file probe.py uses, so neither reuses the
other's: a conntrack entry of an earlier flow would bypass a new mapping). UDP: one
datagram. TCP: connect (all at once, --timeout 2 s), write the token, close. A line per
port says what happened; exit status 0 if every datagram was sent and every connection
completed its handshake, 1 if a connection was refused or timed out, 2 on a setup error.

SPEC: udp:PORT, tcp:PORT, tcp+udp:PORT, udp:LOW-HIGH, udp:P1,P2,...

usage: doorbell.py listen [--counts FILE] [--ready FILE] [--duration S] [SPEC...]
       doorbell.py send --to ADDR --from ADDR [--used-ports FILE] [--timeout S] SPEC...
"""

import argparse
import ctypes
import errno
import json
import os
import secrets
import selectors
import signal
import socket
import sys
import time

# probe.py's source-port bookkeeping, shared so that the two never pick the same port
from probe import SetupError, SourcePorts, bind_with_fresh_port, parse_specs

RING_SPECS = ["udp:7076,7077,9078,9079", "tcp+udp:15063,15064", "udp:16500-16599"]
MAX_CONNS = 256
CONN_SECONDS = 2.0
UDP_BURST = 64          # datagrams read from one socket per round: no port starves the rest


def set_comm(name):
    # a name of its own, so the lab stops it by PID and comm, not "python3"
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode() + b"\0", 0, 0, 0)
    except (OSError, AttributeError):
        pass


def write_counts(path, counts):
    if not path:
        return
    body = ",\n".join(f"{json.dumps(f'{proto}/{port}')}: {n}"
                      for (proto, port), n in sorted(counts.items()))
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("{\n" + body + ("\n" if body else "") + "}\n")
    os.replace(tmp, path)


def listen(args):
    set_comm("nk-doorbell")
    targets = parse_specs(args.specs or RING_SPECS)
    counts = {t: 0 for t in targets}
    sel = selectors.DefaultSelector()
    for proto, port in targets:
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        s = socket.socket(socket.AF_INET, kind)
        if proto == "tcp":   # a restarted listener must not wait out TIME_WAIT
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError as e:
            raise SetupError(f"cannot bind {proto} 0.0.0.0:{port}: {e.strerror}")
        if proto == "tcp":
            s.listen(64)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("listen", (proto, port)))
    # signals wake the loop through this socket; the handlers only set flags
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    sel.register(wake_r, selectors.EVENT_READ, ("wake", None))
    flags = {"stop": False, "dump": False}
    signal.signal(signal.SIGTERM, lambda *_: flags.update(stop=True))
    signal.signal(signal.SIGINT, lambda *_: flags.update(stop=True))
    signal.signal(signal.SIGUSR1, lambda *_: flags.update(dump=True))
    write_counts(args.counts, counts)
    if args.ready:
        open(args.ready, "w").close()

    conns = {}    # accepted socket -> the time to give up on it
    deadline = time.monotonic() + args.duration
    while not flags["stop"]:
        now = time.monotonic()
        if now >= deadline:
            break
        for c, until in list(conns.items()):
            if now >= until:
                sel.unregister(c)
                c.close()
                del conns[c]
        wake = min([deadline] + list(conns.values()))
        changed = False
        for key, _ in sel.select(max(0.0, wake - now)):
            what, target = key.data
            s = key.fileobj
            if what == "wake":
                try:
                    while s.recv(64):
                        pass
                except BlockingIOError:
                    pass
            elif what == "listen" and target[0] == "udp":
                for _ in range(UDP_BURST):
                    try:
                        s.recvfrom(2048)
                    except BlockingIOError:
                        break
                    except OSError:      # e.g. an ICMP error queued on the socket
                        continue
                    counts[target] += 1
                    changed = True
            elif what == "listen":
                try:
                    c, _peer = s.accept()
                except (BlockingIOError, ConnectionAbortedError):
                    continue
                counts[target] += 1
                changed = True
                if len(conns) >= MAX_CONNS:
                    c.close()
                    continue
                c.setblocking(False)
                conns[c] = time.monotonic() + CONN_SECONDS
                sel.register(c, selectors.EVENT_READ, ("conn", target))
            else:   # a held connection: drain it, close at EOF
                try:
                    chunk = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(s)
                    s.close()
                    del conns[s]
        if changed or flags["dump"]:
            flags["dump"] = False
            write_counts(args.counts, counts)
    write_counts(args.counts, counts)
    for c in conns:
        c.close()
    return 0


def send(args):
    targets = parse_specs(args.specs)
    run = secrets.token_hex(6)
    ports = SourcePorts(args.used_ports)
    sel = selectors.DefaultSelector()
    results = {}     # (proto, port) -> (ok, text)
    pending = {}     # connecting socket -> (target, source port)
    try:
        for proto, port in targets:
            token = f"natkeeper-e2e doorbell {run} {proto} {port}\n".encode()
            kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
            s = socket.socket(socket.AF_INET, kind)
            src = bind_with_fresh_port(s, args.src, ports)
            s.setblocking(False)
            if proto == "udp":
                try:
                    s.sendto(token, (args.to, port))
                    results[(proto, port)] = (True, f"sent from {args.src}:{src}")
                except OSError as e:
                    results[(proto, port)] = (False, f"send from {args.src}:{src}: {e.strerror}")
                s.close()
                continue
            rc = s.connect_ex((args.to, port))
            if rc not in (0, errno.EINPROGRESS):
                results[(proto, port)] = (False, f"connect from {args.src}:{src}: {os.strerror(rc)}")
                s.close()
                continue
            pending[s] = ((proto, port), src, token)
            sel.register(s, selectors.EVENT_WRITE)
    except SetupError as e:
        print(f"doorbell.py send: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"doorbell.py send: setup failed: {e}", file=sys.stderr)
        return 2
    finally:
        ports.save()

    deadline = time.monotonic() + args.timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for key, _ in sel.select(left):
            s = key.fileobj
            target, src, token = pending.pop(s)
            sel.unregister(s)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                why = "refused" if err == errno.ECONNREFUSED else os.strerror(err)
                results[target] = (False, f"connect from {args.src}:{src}: {why}")
            else:
                try:
                    s.send(token)
                    results[target] = (True, f"connected from {args.src}:{src}, token written")
                except OSError as e:
                    results[target] = (True, f"connected from {args.src}:{src}, write: {e.strerror}")
            s.close()
    for s, (target, src, _token) in pending.items():
        results[target] = (False, f"connect from {args.src}:{src}: no answer within {args.timeout:g} s")
        s.close()
    for proto, port in targets:
        ok, text = results[(proto, port)]
        print(f"  {'ok ' if ok else 'NO '} {proto} {args.to}:{port}: {text}")
    return 0 if all(ok for ok, _ in results.values()) else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    li = sub.add_parser("listen")
    li.add_argument("--counts", default="")
    li.add_argument("--ready", default="")
    li.add_argument("--duration", type=float, default=900)
    li.add_argument("specs", nargs="*", metavar="SPEC")
    se = sub.add_parser("send")
    se.add_argument("--to", required=True, help="where the internet reaches the lab")
    se.add_argument("--from", dest="src", required=True, help="sender's address (ns wan)")
    se.add_argument("--used-ports", default="")
    se.add_argument("--timeout", type=float, default=2.0)
    se.add_argument("specs", nargs="+", metavar="SPEC")
    args = ap.parse_args()
    try:
        return listen(args) if args.mode == "listen" else send(args)
    except SetupError as e:
        print(f"doorbell.py {args.mode}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
