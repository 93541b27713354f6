#!/usr/bin/env python3
"""natpmp_gateway.py ADDRESS EXTERNAL_IP COUNT_FILE - a NAT-PMP gateway (RFC 6886) that grants every
request at once, on the port asked for, for the lifetime asked for. It maps nothing: it
lets the benchmark give the service a plan of tens of thousands of active mappings in
seconds, which the lab's miniupnpd (re-reading all its rules at each change) would take
hours to grant. Whenever it has been idle for half a second it writes to COUNT_FILE how
many mappings it holds (granted and not deleted since). Runs until killed.
"""
import os
import socket
import struct
import sys
import time


def main():
    address, external, count_file = sys.argv[1], socket.inet_aton(sys.argv[2]), sys.argv[3]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((address, 5351))
    sock.settimeout(0.5)
    start = time.monotonic()
    held, written = set(), None
    while True:
        try:
            data, peer = sock.recvfrom(64)
        except socket.timeout:
            if written != len(held):
                written = len(held)
                with open(count_file + ".new", "w") as f:
                    f.write(f"{written}\n")
                os.replace(count_file + ".new", count_file)
            continue
        if len(data) < 2 or data[0] != 0:
            continue
        epoch = int(time.monotonic() - start)
        op = data[1]
        if op == 0:
            sock.sendto(struct.pack("!BBHI", 0, 128, 0, epoch) + external, peer)
        elif op in (1, 2) and len(data) >= 12:
            internal, wanted, lifetime = struct.unpack("!HHI", data[4:12])
            external_port = (wanted or internal) if lifetime else 0
            (held.add if lifetime else held.discard)((op, internal))
            sock.sendto(struct.pack("!BBHIHHI", 0, 128 + op, 0, epoch, internal, external_port, lifetime), peer)


if __name__ == "__main__":
    main()
