#!/usr/bin/env python3
"""spoof.py - UDP datagrams with a forged source address, as any LAN device can send them.

A raw socket (IP_HDRINCL) writes the IPv4 and UDP headers itself, so the datagram claims
to come from SRC (the gateway, say) although it leaves the namespace it runs in (ns rogue).
Used by lab tests that prove a forged notice or reply does not steer natkeeper.

As a module: send(sock, src, dst, payload) with sock = raw_socket(); as a command:

  spoof.py --src A:P --dst A:P --hex PAYLOAD [--count N] [--interval S]

sends PAYLOAD (hex) COUNT times (default 1), INTERVAL seconds apart (default 0), and
prints the number sent. Needs CAP_NET_RAW (root in the namespace).
"""

import argparse
import socket
import struct
import sys
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def datagram(src, dst, payload):
    """The IPv4 packet carrying payload from src (addr, port) to dst (addr, port)."""
    src_ip, dst_ip = socket.inet_aton(src[0]), socket.inet_aton(dst[0])
    udp_len = 8 + len(payload)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_len)
    udp = struct.pack("!HHHH", src[1], dst[1], udp_len, 0) + payload
    udp_sum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    total = 20 + udp_len
    # the kernel fills in the IP checksum and, being 0, the packet id
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, socket.IPPROTO_UDP, 0, src_ip, dst_ip)
    return header + udp


def raw_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    return sock


def send(sock, src, dst, payload):
    sock.sendto(datagram(src, dst, payload), (dst[0], 0))


def endpoint(text):
    addr, _, port = text.rpartition(":")
    return addr, int(port)


def main():
    parser = argparse.ArgumentParser(description="send UDP datagrams with a forged source")
    parser.add_argument("--src", type=endpoint, required=True)
    parser.add_argument("--dst", type=endpoint, required=True)
    parser.add_argument("--hex", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.0)
    args = parser.parse_args()
    if not 1 <= args.count <= 100000 or not 0 <= args.interval <= 60:
        sys.exit("spoof.py: --count must be 1..100000 and --interval 0..60")
    payload = bytes.fromhex(args.hex)
    sock = raw_socket()
    for i in range(args.count):
        if i and args.interval:
            time.sleep(args.interval)
        send(sock, args.src, args.dst, payload)
    print(args.count)


if __name__ == "__main__":
    main()
