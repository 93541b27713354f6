#!/usr/bin/env python3
"""lab_fake_reflector.py - a stand-in for natkeeper-reflector, to exercise the lab's
reflector machinery (lab.sh reflector-start/-stop, lib.sh lab_start_reflector) without it.

usage: lab_fake_reflector.py --listen ADDR:PORT [--listen ADDR:PORT ...]

Serves UDP and TCP on every ADDR:PORT. It speaks no reflector protocol: a UDP datagram is
answered with "ADDR:PORT\\n", the sender's address as seen here; a TCP connection gets the
same line, then is closed. Runs until SIGTERM/SIGINT. Not a probe: it never sends anywhere
but back to the sender.
"""

import argparse
import selectors
import signal
import socket
import sys


def endpoint(text):
    addr, sep, port = text.rpartition(":")
    if not sep or not addr or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"want ADDR:PORT, got {text!r}")
    return addr, int(port)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", type=endpoint, action="append", required=True)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sel = selectors.DefaultSelector()
    for addr in args.listen:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(addr)
        sel.register(u, selectors.EVENT_READ, "udp")
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind(addr)
        t.listen(16)
        sel.register(t, selectors.EVENT_READ, "tcp")
        print(f"listening on udp+tcp {addr[0]}:{addr[1]}", flush=True)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            try:
                if key.data == "udp":
                    _, peer = sock.recvfrom(2048)
                    sock.sendto(f"{peer[0]}:{peer[1]}\n".encode(), peer)
                else:
                    conn, peer = sock.accept()
                    with conn:
                        conn.settimeout(1)
                        conn.sendall(f"{peer[0]}:{peer[1]}\n".encode())
                print(f"{key.data} from {peer[0]}:{peer[1]}", flush=True)
            except OSError as e:
                print(f"{key.data}: {e}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
