#!/usr/bin/env python3
"""scripted_igd.py - a UPnP Internet Gateway Device for the lab that plays real routers' quirks.

It runs in the lab's gateway namespace instead of miniupnpd (`lab.sh stop-gateway` first:
miniupnpd holds tcp :5000 and udp :1900 on lan0), or beside it with --http-port P --no-ssdp
(SSDP beside it works for multicast searches; a unicast search reaches only one of the two).
One process, one event loop: SSDP on 239.255.255.250:1900, HTTP (descriptions, SCPDs, SOAP
control) on LAN_ADDR:HTTP_PORT, and real nftables DNAT rules for what it grants, in a table
of its own (`table ip scripted_igd`, nat chain prerouting at priority -101: before
miniupnpd's). Its rules set the packet mark --fwmark, which the lab's forward chain accepts
(lab.sh, gw.nft), so a packet from the wan namespace to the gateway's WAN address and a
mapped port reaches the LAN host, as with miniupnpd. The chain is rewritten in one nft
transaction at every change; the table goes at exit (SIGTERM, SIGINT, --duration).

Without quirk options it is a well-behaved IGD:2 (WANIPConnection:2) like miniupnpd 2.3.1
in secure mode: it maps only for the asker (else 718, or 606 for AddAnyPortMapping),
answers a port mapped to another client with 718, a full table (--max-entries) with 728,
keeps lease 0 as permanent and expires finite leases (entry and rule). GetSpecific/
GetGenericPortMappingEntry and GetListOfPortMappings report the seconds left.

Devices and discovery
  --locations LIST     comma-separated, in the order SSDP answers name them (default igd2):
                       igd1, igd2  a root InternetGatewayDevice:1 / :2 at /igd1.xml, /igd2.xml
                                   (one NAT table behind both: AVM FRITZ!Box announces an
                                   IGD:1 and an IGD:2 side by side)
                       missing     a LOCATION that answers 404
                       junk        a LOCATION that answers 200 with a body that is no XML
                       refused     a LOCATION on LAN_ADDR:9, where nobody listens
                       The broken ones claim the types of the first igd entry (IGD:2 if none):
                       routers whose stack serves other root devices or stale LOCATIONs.
  --answer-st ST       answer only M-SEARCHes whose ST is one of these (repeatable; ssdp:all
                       and upnp:rootdevice too only if listed). Routers answering a search for
                       WANIPConnection:1 but not for InternetGatewayDevice:1 or ssdp:all are
                       why miniupnpc searches IGD:1, WANIPConnection:1, WANPPPConnection:1 and
                       upnp:rootdevice in turn (rust-igd #29).
  --notify-interval S  send ssdp:alive NOTIFYs for every NT at start and every S s, ssdp:byebye
                       at exit (0, the default: none)
  --no-ssdp            no SSDP at all (beside miniupnpd, or -u URL clients only)
  --wan-service ip|ppp the connection service: WANIPConnection (:2 on an IGD:2) or
                       WANPPPConnection:1 (DSL routers dialling PPPoE)
  --tr064              connection service types urn:dslforum-org:service:WANIPConnection:1 /
                       WANPPPConnection:1 (TR-064 stacks of DSL routers); miniupnpc does not
                       take them for a WAN connection service
  --two-wan            two WANConnectionDevices: first the other connection service, which is
                       Disconnected (GetStatusInfo; empty external address; Add* 501), then
                       the connected one (DSL routers listing an unused PPP or IP connection
                       first; miniupnpc's UPNP_GetValidIGD tries the second service for them)

Control quirks (on the connected service)
  --finite-lease-error 402|725  any NewLeaseDuration but 0 answered with this error, in
                       AddPortMapping and AddAnyPortMapping; 0 works. 725
                       OnlyPermanentLeasesSupported: MikroTik RouterOS 6, Zyxel VMG1312-B10B;
                       402 Invalid Args: ARRIS NVG578LX (Tailscale #15223, which retries with 0)
  --addany-error CODE  AddAnyPortMapping answered with CODE (401 Invalid Action, 602 Optional
                       Action Not Implemented) although the service type ends in :2
  --conflict-error CODE[:TEXT]  the answer for a port mapped to another client (default 718
                       ConflictInMappingEntry); e.g. 501 with a vendor's text
  --full-error CODE[:TEXT]  the answer once the table is full (default 728
                       NoPortMapsAvailable; 713 SpecifiedArrayIndexInvalid, or 501 with a
                       vendor's text, are seen too)
  --max-entries N      table size (default 128, at most 4096)
  --reserved SPEC      ports the router keeps for itself (web UI, VoIP): Add* answered with the
                       conflict error though no listing shows them - phantom conflicts
                       (Syncthing #9324: 718 for many random ports). SPEC as udp:5060,
                       tcp+udp:7000-7010; repeatable
  --phantom-once SPEC  the first Add* of each of these ports answered with the conflict error
                       though nobody holds it; asked again, it is mapped (a phantom conflict
                       that a second try gets past). SPEC as for --reserved; repeatable
  --conflict-own       re-adding one's own mapping (a refresh) answered with the conflict
                       error: routers that want a delete first (Open.NAT #14)
  --garbled-add        AddPortMapping's and AddAnyPortMapping's success answer is 200 with a
                       body that is no XML; the mapping is made
  --max-lease S        grant at most S seconds, for lease 0 (permanent) too; the listings show
                       the shorter lease (miniupnpd's IGD:2 grants 604800 for 0; a Technicolor
                       router 86400 whatever was asked, miniupnp #398)
  --forget-after S     each mapping (entry and rule) vanishes silently S s after its last Add:
                       routers that lose mappings without telling
  --external-ip ADDR   report ADDR (may be '' or 0.0.0.0) instead of the WAN interface's address
  --refuse CODE[:TEXT] answer every Add* with this error; with --external-ip '' (or 10.x,
                       100.64.x) it plays miniupnpd >= 2.2 behind a carrier NAT: no usable
                       external address, 501 ActionFailed
  --third-party        map for any LAN client, not only the asker
  --trickle KIND:MS    send those answers a byte every MS ms; KIND desc (descriptions), soap
                       (control answers) or all
  --oversize KIND:MIB  pad those answers to MIB MiB (an XML comment before the root element,
                       streamed, Content-Length set)
  --unframed           answers without Content-Length: they end when the connection closes
                       (HTTP/1.0 servers, some routers' stacks)

Control from outside (a silent loss behind the client's back): write commands, one a line,
to the --control FILE, then send SIGUSR1; the answers go to FILE.out (written whole), FILE is
removed.
  forget PROTO PORT    the mapping (any remote host) and its rule vanish
  forget-all           every mapping and rule vanishes
  unrule PROTO PORT    only its nft rule goes; the router keeps reporting the mapping, and a
                       refresh (AddPortMapping again) does not bring the rule back - as with
                       miniupnpd, which goes by its own list; Delete and Add again do
  list                 a line per mapping: PROTO EXT CLIENT:PORT lease=L left=S rule=yes|no desc=D
  trickle KIND:MS|off  from now on, as --trickle (a router whose HTTP server bogs down)

Limits: request head 16 KiB, body 64 KiB, 64 connections (more are closed at once), 10 s to
send a request, 300 s per connection (a trickled answer included), 4096 mappings; it ends
by itself after --duration s. --ready FILE is written once everything listens: a line
"location KIND URL" per LOCATION. Logs a line per request and event to stderr.

usage: scripted_igd.py [--lan-addr A] [--wan-if IF] [--http-port P] [--fwmark M]
                       [--nft-table NAME] [--control FILE] [--ready FILE] [--duration S]
                       [quirk options above]
"""

import argparse
import ctypes
import fcntl
import ipaddress
import math
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

SSDP_GROUP, SSDP_PORT = "239.255.255.250", 1900
REFUSED_PORT = 9
MAX_HEADER = 16384
MAX_BODY = 65536
MAX_CONNS = 64
READ_SECONDS = 10
CONN_SECONDS = 300
MAX_ENTRIES = 4096
MAX_LISTED = 1000
CONTROL_MAX_BYTES, CONTROL_MAX_LINES = 4096, 32
CHUNK = 65536
MAX_LEASE = 2**32 - 1
SERVER = "Linux/6 UPnP/1.1 scripted-igd/1"
UPNP = "urn:schemas-upnp-org"
LOCATION_PATHS = {"igd1": "/igd1.xml", "igd2": "/igd2.xml", "missing": "/missing.xml",
                  "junk": "/junk.xml", "refused": "/refused.xml"}
ERRORS = {
    401: "Invalid Action", 402: "Invalid Args", 501: "Action Failed",
    602: "Optional Action Not Implemented", 606: "Action not authorized",
    713: "SpecifiedArrayIndexInvalid", 714: "NoSuchEntryInArray",
    716: "WildCardNotPermittedInExtPort", 718: "ConflictInMappingEntry",
    725: "OnlyPermanentLeasesSupported", 728: "NoPortMapsAvailable",
    729: "ConflictWithOtherMechanisms", 730: "PortMappingNotFound", 733: "InconsistentParameters",
}
CONN_ACTIONS_V1 = ("GetConnectionTypeInfo", "GetStatusInfo", "GetExternalIPAddress", "AddPortMapping",
                   "DeletePortMapping", "GetSpecificPortMappingEntry", "GetGenericPortMappingEntry")
CONN_ACTIONS_V2 = CONN_ACTIONS_V1 + ("AddAnyPortMapping", "DeletePortMappingRange", "GetListOfPortMappings")
CIF_ACTIONS = ("GetCommonLinkProperties", "GetTotalBytesSent", "GetTotalBytesReceived",
               "GetTotalPacketsSent", "GetTotalPacketsReceived")
VERSIONED_URN = re.compile(r"^(urn:[^:]+:(?:device|service):[^:]+):(\d{1,3})$")
# a body that is no XML (junk LOCATION, --garbled-add)
GARBAGE = b"\x00\x1f<<s:Envelope <<\xff\xfe garbled \x00 >>\r\n"


T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:8.3f}] {msg}", file=sys.stderr, flush=True)


def set_comm(name):
    # a name of its own, so the lab stops it by PID and comm, not "python3"
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode() + b"\0", 0, 0, 0)
    except (OSError, AttributeError):
        pass


class UPnPError(Exception):
    def __init__(self, code, text=None):
        super().__init__(code)
        self.code, self.text = code, text or ERRORS.get(code, "Error")


def is_ipv4(text):
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False


def interface_address(name):
    """The interface's IPv4 address (SIOCGIFADDR), or '' without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            reply = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return ""
    return socket.inet_ntoa(reply[20:24])


# ---- options -------------------------------------------------------------------------------
def error_spec(text):
    code, _, message = text.partition(":")
    if not re.fullmatch(r"[1-9]\d{2}", code):
        raise argparse.ArgumentTypeError(f"want CODE[:TEXT] with a 3-digit CODE, got {text!r}")
    return int(code), message or None


def port_spec(text):
    m = re.fullmatch(r"(udp|tcp|tcp\+udp|udp\+tcp):(\d{1,5}(?:-\d{1,5})?(?:,\d{1,5}(?:-\d{1,5})?)*)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"want udp:PORT, tcp+udp:LOW-HIGH, udp:P1,P2..., got {text!r}")
    out = set()
    for part in m.group(2).split(","):
        lo, _, hi = part.partition("-")
        lo, hi = int(lo), int(hi or lo)
        if not 1 <= lo <= hi <= 65535:
            raise argparse.ArgumentTypeError(f"bad port range {part!r}")
        out.update((proto.upper(), p) for proto in m.group(1).split("+") for p in range(lo, hi + 1))
    return out


def kind_amount(text):
    kind, _, amount = text.partition(":")
    if kind not in ("desc", "soap", "all") or not re.fullmatch(r"\d{1,6}", amount) or int(amount) == 0:
        raise argparse.ArgumentTypeError(f"want desc|soap|all:N with N > 0, got {text!r}")
    return kind, int(amount)


def locations_spec(text):
    kinds = text.split(",")
    if not kinds or any(k not in LOCATION_PATHS for k in kinds) or len(set(kinds)) != len(kinds):
        raise argparse.ArgumentTypeError(f"want distinct kinds out of {', '.join(LOCATION_PATHS)}, got {text!r}")
    return kinds


def bounded_int(lo, hi):
    def parse(text):
        if not re.fullmatch(r"\d{1,10}", text) or not lo <= int(text) <= hi:
            raise argparse.ArgumentTypeError(f"want an integer in {lo}..{hi}, got {text!r}")
        return int(text)
    return parse


def parse_options(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lan-addr", default="10.77.0.1")
    ap.add_argument("--wan-if", default="wan0")
    ap.add_argument("--http-port", type=bounded_int(1, 65535), default=5000)
    ap.add_argument("--fwmark", type=lambda t: int(t, 0), default=0x5C1D)
    ap.add_argument("--nft-table", default="scripted_igd")
    ap.add_argument("--control")
    ap.add_argument("--ready")
    ap.add_argument("--duration", type=bounded_int(1, 86400), default=900)
    ap.add_argument("--locations", type=locations_spec, default=["igd2"])
    ap.add_argument("--answer-st", action="append")
    ap.add_argument("--notify-interval", type=bounded_int(0, 3600), default=0)
    ap.add_argument("--no-ssdp", action="store_true")
    ap.add_argument("--wan-service", choices=("ip", "ppp"), default="ip")
    ap.add_argument("--tr064", action="store_true")
    ap.add_argument("--two-wan", action="store_true")
    ap.add_argument("--finite-lease-error", type=int, choices=(402, 725))
    ap.add_argument("--addany-error", type=error_spec)
    ap.add_argument("--conflict-error", type=error_spec, default=(718, None))
    ap.add_argument("--full-error", type=error_spec, default=(728, None))
    ap.add_argument("--max-entries", type=bounded_int(1, MAX_ENTRIES), default=128)
    ap.add_argument("--reserved", type=port_spec, action="append", default=[])
    ap.add_argument("--phantom-once", type=port_spec, action="append", default=[])
    ap.add_argument("--conflict-own", action="store_true")
    ap.add_argument("--garbled-add", action="store_true")
    ap.add_argument("--max-lease", type=bounded_int(1, MAX_LEASE))
    ap.add_argument("--forget-after", type=bounded_int(1, 86400))
    ap.add_argument("--external-ip")
    ap.add_argument("--refuse", type=error_spec)
    ap.add_argument("--third-party", action="store_true")
    ap.add_argument("--trickle", type=kind_amount)
    ap.add_argument("--oversize", type=kind_amount)
    ap.add_argument("--unframed", action="store_true")
    o = ap.parse_args(argv)
    if not is_ipv4(o.lan_addr):
        ap.error(f"--lan-addr {o.lan_addr!r} is no IPv4 address")
    # both go into nft scripts verbatim
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", o.wan_if):
        ap.error(f"--wan-if {o.wan_if!r} is no interface name")
    if not re.fullmatch(r"[A-Za-z0-9_]{1,32}", o.nft_table):
        ap.error(f"--nft-table {o.nft_table!r} must match [A-Za-z0-9_]{{1,32}}")
    if not 0 < o.fwmark < 2**32:
        ap.error("--fwmark must be a 32-bit mark other than 0")
    if o.external_ip not in (None, "") and not is_ipv4(o.external_ip):
        ap.error(f"--external-ip {o.external_ip!r} is neither '' nor an IPv4 address")
    o.reserved = set().union(*o.reserved)
    o.phantom_once = set().union(*o.phantom_once)
    return o


# ---- the mapping table and its nftables rules -------------------------------------------------
@dataclass
class Mapping:
    proto: str              # "UDP" / "TCP"
    ext_port: int
    remote_host: str        # "" = any
    client: str
    int_port: int
    desc: str
    enabled: bool
    lease: int              # granted seconds, 0 = permanent
    expires: float | None = None   # monotonic; None = permanent
    forget: float | None = None    # --forget-after
    ruled: bool = True      # False once `unrule`d

    @property
    def key(self):
        return (self.remote_host, self.ext_port, self.proto)

    def left(self, now):
        return 0 if self.expires is None else max(1, math.ceil(self.expires - now))

    def deadline(self):
        return min((t for t in (self.expires, self.forget) if t is not None), default=None)

    def describe(self, now):
        return (f"{self.proto.lower()} {self.ext_port} {self.client}:{self.int_port} lease={self.lease} "
                f"left={self.left(now)} rule={'yes' if self.ruled and self.enabled else 'no'} desc={self.desc}")


class Nft:
    def __init__(self, table, wan_if, mark):
        self.table, self.wan_if, self.mark = table, wan_if, mark

    def run(self, script):
        try:
            r = subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            return str(e)
        return None if r.returncode == 0 else (r.stderr.strip() or f"nft exited {r.returncode}")

    def create(self):
        # add + delete first: a table left by a killed run goes in the same transaction
        return self.run(f"add table ip {self.table}\ndelete table ip {self.table}\n"
                        f"table ip {self.table} {{\n  chain prerouting {{\n"
                        f"    type nat hook prerouting priority -101; policy accept;\n  }}\n}}\n")

    def sync(self, mappings):
        lines = [f"flush chain ip {self.table} prerouting"]
        for m in mappings:
            if not (m.ruled and m.enabled):
                continue
            source = f"ip saddr {m.remote_host} " if m.remote_host else ""
            lines.append(f'add rule ip {self.table} prerouting iifname "{self.wan_if}" {source}'
                         f"{m.proto.lower()} dport {m.ext_port} meta mark set {self.mark:#x} "
                         f"dnat to {m.client}:{m.int_port}")
        return self.run("\n".join(lines) + "\n")

    def destroy(self):
        return self.run(f"delete table ip {self.table}\n")


class Table:
    """The NAT's port mappings, in the order GetGenericPortMappingEntry indexes them."""

    def __init__(self, nft):
        self.nft = nft
        self.entries = {}

    def __len__(self):
        return len(self.entries)

    def get(self, key):
        return self.entries.get(key)

    def put(self, m):
        old = self.entries.get(m.key)
        self.entries[m.key] = m
        err = self.nft.sync(self.entries.values())
        if err:
            if old is None:
                del self.entries[m.key]
            else:
                self.entries[m.key] = old
            log(f"nft failed, mapping not made: {err}")
            raise UPnPError(501)

    def remove(self, keys, why):
        for k in keys:
            m = self.entries.pop(k)
            log(f"{why}: {m.describe(time.monotonic())}")
        if keys:
            self.sync()

    def sync(self):
        err = self.nft.sync(self.entries.values())
        if err:
            log(f"nft failed: {err}")

    def next_deadline(self):
        return min((d for d in (m.deadline() for m in self.entries.values()) if d is not None), default=None)

    def sweep(self, now):
        expired = [k for k, m in self.entries.items() if m.expires is not None and m.expires <= now]
        self.remove(expired, "lease expired")
        forgotten = [k for k, m in self.entries.items() if m.forget is not None and m.forget <= now]
        self.remove(forgotten, "forgotten silently (--forget-after)")


# ---- devices: descriptions and what SSDP announces ----------------------------------------------
@dataclass
class Service:
    type: str
    sid: str
    control: str
    scpd: str
    actions: tuple
    version: int = 1          # 2: WANIPConnection:2 (AddAnyPortMapping, GetListOfPortMappings)
    connected: bool = True
    is_connection: bool = True


@dataclass
class Device:
    type: str
    uuid: str
    services: list = field(default_factory=list)
    children: list = field(default_factory=list)

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass
class Location:
    kind: str
    url: str
    path: str
    root: Device

    def notification_types(self):
        """(NT, USN) pairs: what NOTIFY announces and ssdp:all answers."""
        out = [("upnp:rootdevice", f"uuid:{self.root.uuid}::upnp:rootdevice")]
        for d in self.root.walk():
            out.append((f"uuid:{d.uuid}", f"uuid:{d.uuid}"))
            out.append((d.type, f"uuid:{d.uuid}::{d.type}"))
            out.extend((s.type, f"uuid:{d.uuid}::{s.type}") for s in d.services)
        return out


def connection_service(o, kind, n, what, igd_version, connected):
    org = "urn:dslforum-org" if o.tr064 else UPNP
    if what == "ip":
        version = 1 if o.tr064 else igd_version
        name, sid = f"WANIPConnection:{version}", "WANIPConn1"
    else:
        version, name, sid = 1, "WANPPPConnection:1", "WANPPPConn1"
    return Service(f"{org}:service:{name}", sid, f"/ctl/{kind}/conn{n}", f"/scpd/{what}{version}.xml",
                   CONN_ACTIONS_V2 if version == 2 else CONN_ACTIONS_V1, version, connected)


def device_tree(o, kind, index, version):
    def uuid(n):
        return f"5c1d{index:04x}-0000-4000-8000-{n:012x}"
    other = "ppp" if o.wan_service == "ip" else "ip"
    conns = [(other, False), (o.wan_service, True)] if o.two_wan else [(o.wan_service, True)]
    cds = [Device(f"{UPNP}:device:WANConnectionDevice:{version}", uuid(2 + n),
                  [connection_service(o, kind, n, what, version, connected)])
           for n, (what, connected) in enumerate(conns)]
    cif = Service(f"{UPNP}:service:WANCommonInterfaceConfig:1", "WANCommonIFC1", f"/ctl/{kind}/cif",
                  "/scpd/cif1.xml", CIF_ACTIONS, is_connection=False)
    wan = Device(f"{UPNP}:device:WANDevice:{version}", uuid(1), [cif], cds)
    return Device(f"{UPNP}:device:InternetGatewayDevice:{version}", uuid(0), [], [wan])


def build_locations(o):
    igds = [int(k[3]) for k in o.locations if k.startswith("igd")]
    claimed = igds[0] if igds else 2
    out = []
    for i, kind in enumerate(o.locations):
        version = int(kind[3]) if kind.startswith("igd") else claimed
        port = REFUSED_PORT if kind == "refused" else o.http_port
        path = LOCATION_PATHS[kind]
        out.append(Location(kind, f"http://{o.lan_addr}:{port}{path}", path, device_tree(o, kind, i, version)))
    return out


def description_xml(loc):
    def device(d, top):
        services = "".join(
            f"<service><serviceType>{s.type}</serviceType><serviceId>urn:upnp-org:serviceId:{s.sid}</serviceId>"
            f"<SCPDURL>{s.scpd}</SCPDURL><controlURL>{s.control}</controlURL>"
            f"<eventSubURL>/evt{s.control[4:]}</eventSubURL></service>" for s in d.services)
        children = "".join(device(c, False) for c in d.children)
        name = "natkeeper lab scripted IGD" if top else d.type.split(":")[-2]
        return (f"<device><deviceType>{d.type}</deviceType><friendlyName>{name}</friendlyName>"
                "<manufacturer>natkeeper lab</manufacturer><modelName>scripted_igd.py</modelName>"
                f"<UDN>uuid:{d.uuid}</UDN>"
                + (f"<serviceList>{services}</serviceList>" if services else "")
                + (f"<deviceList>{children}</deviceList>" if children else "") + "</device>")
    minor = 1 if loc.root.type.endswith(":2") else 0
    return ('<?xml version="1.0"?>\n<root xmlns="urn:schemas-upnp-org:device-1-0">'
            f"<specVersion><major>1</major><minor>{minor}</minor></specVersion>"
            + device(loc.root, True) + "</root>\n").encode()


def scpd_xml(actions):
    listed = "".join(f"<action><name>{a}</name></action>" for a in actions)
    return ('<?xml version="1.0"?>\n<scpd xmlns="urn:schemas-upnp-org:service-1-0">'
            f"<specVersion><major>1</major><minor>0</minor></specVersion><actionList>{listed}</actionList>"
            "</scpd>\n").encode()


def search_matches(st, nt):
    """A device of version N answers a search for the same type of any version <= N."""
    if st == nt:
        return True
    a, b = VERSIONED_URN.match(st), VERSIONED_URN.match(nt)
    return bool(a and b and a.group(1) == b.group(1) and int(b.group(2)) >= int(a.group(2)))


# ---- SOAP ----------------------------------------------------------------------------------
def local_name(tag):
    return tag.rpartition("}")[2]


def parse_soap(headers, body):
    """(action, {argument: text}); the action from the body, else from SOAPAction."""
    header_action = headers.get("soapaction", "").strip().strip('"').rpartition("#")[2]
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        if header_action:
            raise UPnPError(402) from None
        raise UPnPError(401) from None
    envelope_body = next((c for c in root if local_name(c.tag) == "Body"), None)
    call = envelope_body[0] if envelope_body is not None and len(envelope_body) else None
    if call is None:
        raise UPnPError(401)
    return local_name(call.tag), {local_name(a.tag): (a.text or "").strip() for a in call}


def soap_envelope(inner):
    return ('<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
            f"{inner}</s:Body></s:Envelope>\r\n").encode()


class CData(str):
    """An XML document as an argument's value: sent in a CDATA section, as miniupnpd does."""


def soap_response(action, service_type, out):
    args = "".join(f"<{k}><![CDATA[{v}]]></{k}>" if isinstance(v, CData) else f"<{k}>{escape(str(v))}</{k}>"
                   for k, v in out)
    return soap_envelope(f'<u:{action}Response xmlns:u="{service_type}">{args}</u:{action}Response>')


def soap_fault(err):
    return soap_envelope(
        "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"
        f'<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>{err.code}</errorCode>'
        f"<errorDescription>{escape(err.text)}</errorDescription></UPnPError></detail></s:Fault>")


def arg_int(args, name, lo, hi):
    text = args.get(name, "")
    if not re.fullmatch(r"\d{1,10}", text) or not lo <= int(text) <= hi:
        raise UPnPError(402)
    return int(text)


def arg_proto(args):
    proto = args.get("NewProtocol", "").upper()
    if proto not in ("UDP", "TCP"):
        raise UPnPError(402)
    return proto


def arg_remote_host(args):
    host = args.get("NewRemoteHost", "")
    if host not in ("", "*") and not is_ipv4(host):
        raise UPnPError(402)
    return "" if host == "*" else host


# ---- HTTP connections ------------------------------------------------------------------------
class Conn:
    def __init__(self, sock, peer, now):
        self.sock, self.peer = sock, peer
        self.inbuf = bytearray()
        self.head = None          # (method, path, headers) once the head is in
        self.body_at = self.need = 0
        self.chunks = None        # iterator of the answer's bytes, once answering
        self.pending = b""
        self.trickle = None       # seconds between two bytes
        self.next_byte = 0.0
        self.read_deadline = now + READ_SECONDS
        self.deadline = now + CONN_SECONDS

    def refill(self):
        while not self.pending and self.chunks is not None:
            self.pending = next(self.chunks, None)
            if self.pending is None:
                self.chunks, self.pending = None, b""
        return bool(self.pending)


COMMENT_BYTES = len(b"<!---->\n")


def padded(head, body, total):
    """body as `total` bytes (> len(body) + COMMENT_BYTES): an XML comment of filler right
    after the XML declaration, so that no prefix of it is a whole document."""
    split = body.find(b"?>") + 2 if body.startswith(b"<?xml") else 0
    filler = total - len(body) - COMMENT_BYTES
    yield head
    yield body[:split] + b"<!--"
    block = b"x" * CHUNK
    for _ in range(filler // CHUNK):
        yield block
    yield b"x" * (filler % CHUNK) + b"-->\n" + body[split:]


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           411: "Length Required", 413: "Payload Too Large", 431: "Request Header Fields Too Large",
           500: "Internal Server Error"}


# ---- the gateway -----------------------------------------------------------------------------
class Igd:
    def __init__(self, o):
        self.o = o
        self.start = time.monotonic()
        self.stop = self.usr1 = False
        self.sel = selectors.DefaultSelector()
        self.nft = Nft(o.nft_table, o.wan_if, o.fwmark)
        self.table = Table(self.nft)
        self.locations = build_locations(o)
        self.served = {loc.path: loc for loc in self.locations}
        self.services = {s.control: s for loc in self.locations if loc.kind.startswith("igd")
                         for d in loc.root.walk() for s in d.services}
        self.scpds = {s.scpd: scpd_xml(s.actions) for s in self.services.values()}
        self.answer_st = set(o.answer_st) if o.answer_st else None
        self.phantoms_left = set(o.phantom_once)
        self.conns = {}
        self.ssdp = self.notifier = None
        self.next_notify = None

    # -- setup and teardown
    def open(self):
        err = self.nft.create()
        if err:
            raise SystemExit(f"scripted_igd: cannot create nft table ip {self.o.nft_table}: {err}")
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((self.o.lan_addr, self.o.http_port))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        if not self.o.no_ssdp:
            self.ssdp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.ssdp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.ssdp.bind(("0.0.0.0", SSDP_PORT))
            self.ssdp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                 socket.inet_aton(SSDP_GROUP) + socket.inet_aton(self.o.lan_addr))
            self.ssdp.setblocking(False)
            self.sel.register(self.ssdp, selectors.EVENT_READ, "ssdp")
            if self.o.notify_interval:
                self.notifier = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.notifier.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.o.lan_addr))
                self.notifier.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
                self.notifier.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                self.notifier.bind((self.o.lan_addr, 0))
                self.next_notify = time.monotonic()
        # signals wake the loop through this socket; the handlers only set flags
        self.wake_r, self.wake_w = socket.socketpair()
        for s in (self.wake_r, self.wake_w):
            s.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stop", True))
        signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "usr1", True))

    def close(self):
        if self.notifier:
            self.notify("ssdp:byebye")
        for c in list(self.conns.values()):
            self.drop(c)
        err = self.nft.destroy()
        log(f"table ip {self.o.nft_table} " + (f"NOT deleted: {err}" if err else "deleted") + "; exiting")

    # -- the loop
    def run(self):
        end = self.start + self.o.duration
        while not self.stop:
            now = time.monotonic()
            if now >= end:
                log(f"--duration {self.o.duration} s is over")
                break
            self.sel_wait(min(self.wakeups(now) + [end]) - now)
            now = time.monotonic()
            if self.usr1:
                self.usr1 = False
                self.control()
            if (self.table.next_deadline() or math.inf) <= now:
                self.table.sweep(now)
            if self.next_notify is not None and self.next_notify <= now:
                self.notify("ssdp:alive")
                self.next_notify = now + self.o.notify_interval
            for c in list(self.conns.values()):
                self.tick(c, now)

    def wakeups(self, now):
        times = [now + 1.0, self.table.next_deadline() or math.inf, self.next_notify or math.inf]
        for c in self.conns.values():
            times.append(min(c.deadline, c.read_deadline if c.chunks is None and not c.pending else math.inf))
            if c.trickle is not None:
                times.append(c.next_byte)
        return times

    def sel_wait(self, timeout):
        for key, _ in self.sel.select(max(0.0, timeout)):
            what = key.data
            if what == "accept":
                self.accept()
            elif what == "ssdp":
                self.on_ssdp()
            elif what == "wake":
                try:
                    while self.wake_r.recv(512):
                        pass
                except BlockingIOError:
                    pass
            elif what[0] == "read":
                self.on_readable(what[1])
            elif what[0] == "write":
                self.on_writable(what[1])

    # -- SSDP
    def on_ssdp(self):
        for _ in range(64):   # a burst at most per wakeup
            try:
                data, peer = self.ssdp.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            lines = data.decode("latin-1").split("\r\n")
            if not lines[0].startswith("M-SEARCH * "):
                continue
            headers = {}
            for line in lines[1:32]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            st = headers.get("st", "")
            if headers.get("man", "").strip('"') != "ssdp:discover" or not st:
                continue
            answers = self.search_answers(st)
            log(f"M-SEARCH from {peer[0]}:{peer[1]} ST {st}: {len(answers)} answer(s)")
            for url, st_out, usn in answers:
                msg = (f"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: {st_out}\r\nUSN: {usn}\r\n"
                       f"EXT:\r\nSERVER: {SERVER}\r\nLOCATION: {url}\r\n\r\n")
                try:
                    self.ssdp.sendto(msg.encode(), peer)
                except OSError as e:
                    log(f"SSDP answer to {peer[0]}:{peer[1]} not sent: {e}")
                    break

    def search_answers(self, st):
        if self.answer_st is not None and st not in self.answer_st:
            return []
        out = []
        for loc in self.locations:
            for nt, usn in loc.notification_types():
                if st == "ssdp:all":
                    out.append((loc.url, nt, usn))
                elif search_matches(st, nt):
                    out.append((loc.url, st, usn.rpartition("::")[0] + "::" + st if "::" in usn else usn))
        return out

    def notify(self, nts):
        for loc in self.locations:
            for nt, usn in loc.notification_types():
                where = (f"CACHE-CONTROL: max-age={max(120, 2 * self.o.notify_interval)}\r\nLOCATION: {loc.url}\r\n"
                         if nts == "ssdp:alive" else "")
                msg = (f"NOTIFY * HTTP/1.1\r\nHOST: {SSDP_GROUP}:{SSDP_PORT}\r\n{where}NT: {nt}\r\nNTS: {nts}\r\n"
                       f"SERVER: {SERVER}\r\nUSN: {usn}\r\n\r\n")
                try:
                    self.notifier.sendto(msg.encode(), (SSDP_GROUP, SSDP_PORT))
                except OSError as e:
                    log(f"NOTIFY not sent: {e}")
                    return

    # -- HTTP
    def accept(self):
        for _ in range(MAX_CONNS):
            try:
                sock, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log(f"accept: {e}")
                return
            if len(self.conns) >= MAX_CONNS:
                log(f"connection from {peer[0]} closed at once: {MAX_CONNS} open already")
                sock.close()
                continue
            sock.setblocking(False)
            c = Conn(sock, peer, time.monotonic())
            self.conns[sock.fileno()] = c
            self.sel.register(sock, selectors.EVENT_READ, ("read", c))

    def drop(self, c):
        if self.conns.pop(c.sock.fileno(), None) is None:
            return
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def on_readable(self, c):
        try:
            data = c.sock.recv(16384)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(c)
            return
        c.inbuf += data
        if c.head is None:
            end = c.inbuf.find(b"\r\n\r\n")
            if end < 0 or end > MAX_HEADER:
                if end > MAX_HEADER or len(c.inbuf) > MAX_HEADER:
                    self.answer(c, 431, b"", "other", f"request head over {MAX_HEADER} bytes")
                return
            lines = c.inbuf[:end].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            if len(parts) != 3:
                self.answer(c, 400, b"", "other", f"bad request line {lines[0][:80]!r}")
                return
            path = re.sub(r"^https?://[^/]*", "", parts[1]).partition("?")[0]
            c.head, c.body_at = (parts[0], path, headers), end + 4
            length = headers.get("content-length", "0")
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self.answer(c, 411, b"", "other", "chunked request body")
                return
            if not re.fullmatch(r"\d{1,9}", length) or int(length) > MAX_BODY:
                self.answer(c, 413, b"", "other", f"Content-Length {length[:20]!r}")
                return
            c.need = int(length)
        if len(c.inbuf) - c.body_at >= c.need:
            self.dispatch(c, bytes(c.inbuf[c.body_at:c.body_at + c.need]))

    def dispatch(self, c, body):
        method, path, headers = c.head
        peer = c.peer[0]
        if method == "GET":
            loc = self.served.get(path)
            if path in self.scpds:
                self.answer(c, 200, self.scpds[path], "desc", f"GET {path} from {peer}")
            elif loc is not None and loc.kind.startswith("igd"):
                self.answer(c, 200, description_xml(loc), "desc", f"GET {path} from {peer}")
            elif loc is not None and loc.kind == "junk":
                self.answer(c, 200, GARBAGE, "desc", f"GET {path} from {peer}: junk")
            else:
                self.answer(c, 404, b"", "desc", f"GET {path} from {peer}: 404")
        elif method == "POST":
            svc = self.services.get(path)
            if svc is None:
                self.answer(c, 404, b"", "soap", f"POST {path} from {peer}: 404")
            else:
                self.soap(c, svc, headers, body)
        else:
            self.answer(c, 405, b"", "other", f"{method} {path} from {peer}: 405")

    def answer(self, c, status, body, kind, what):
        log(what)
        ctype = 'text/xml; charset="utf-8"'
        o = self.o
        total = o.oversize[1] << 20 if o.oversize and o.oversize[0] in (kind, "all") else 0
        length = total if total > len(body) + COMMENT_BYTES else len(body)
        framing = "" if o.unframed else f"Content-Length: {length}\r\n"
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
                f"{framing}Connection: close\r\nServer: {SERVER}\r\nEXT:\r\n\r\n").encode()
        c.chunks = padded(head, body, length) if length != len(body) else iter((head, body))
        c.inbuf = bytearray()
        if o.trickle and o.trickle[0] in (kind, "all"):
            c.trickle = o.trickle[1] / 1000
            c.next_byte = time.monotonic()
            self.sel.unregister(c.sock)
        else:
            self.sel.modify(c.sock, selectors.EVENT_WRITE, ("write", c))

    def on_writable(self, c):
        try:
            for _ in range(64):   # at most 4 MiB per wakeup: others get their turn
                if not c.refill():
                    self.drop(c)
                    return
                sent = c.sock.send(c.pending[:CHUNK])
                c.pending = c.pending[sent:]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.drop(c)

    def tick(self, c, now):
        if now >= c.deadline or (c.chunks is None and not c.pending and now >= c.read_deadline):
            log(f"connection from {c.peer[0]} closed after {'reading' if c.head is None else 'answering'} too long")
            self.drop(c)
            return
        if c.trickle is None or now < c.next_byte:
            return
        c.next_byte = now + c.trickle
        try:
            if not c.refill():
                self.drop(c)
                return
            if c.sock.send(c.pending[:1]) == 1:
                c.pending = c.pending[1:]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.drop(c)

    # -- SOAP control
    def soap(self, c, svc, headers, body):
        peer = c.peer[0]
        action = headers.get("soapaction", "?").strip('"').rpartition("#")[2]
        args = {}
        try:
            action, args = parse_soap(headers, body)
            if action not in svc.actions:
                raise UPnPError(401)
            out = getattr(self, "act_" + action)(svc, peer, args)
            status = 200
            payload = GARBAGE if out is GARBAGE else soap_response(action, svc.type, out)
            result = "garbled 200 (--garbled-add)" if out is GARBAGE else "OK " + " ".join(f"{k}={v}" for k, v in out)
        except UPnPError as e:
            status, payload, result = 500, soap_fault(e), f"{e.code} {e.text}"
        shown = " ".join(f"{k.removeprefix('New')}={v}" for k, v in args.items())[:300]
        self.answer(c, status, payload, "soap", f"{peer} {svc.control} {action}({shown}) -> {result[:300]}")

    def external_ip(self):
        return self.o.external_ip if self.o.external_ip is not None else interface_address(self.o.wan_if)

    def act_GetExternalIPAddress(self, svc, asker, args):
        return [("NewExternalIPAddress", self.external_ip() if svc.connected else "")]

    def act_GetStatusInfo(self, svc, asker, args):
        if not svc.connected:
            return [("NewConnectionStatus", "Disconnected"), ("NewLastConnectionError", "ERROR_NO_CARRIER"),
                    ("NewUptime", 0)]
        return [("NewConnectionStatus", "Connected"), ("NewLastConnectionError", "ERROR_NONE"),
                ("NewUptime", int(time.monotonic() - self.start))]

    def act_GetConnectionTypeInfo(self, svc, asker, args):
        return [("NewConnectionType", "IP_Routed"), ("NewPossibleConnectionTypes", "IP_Routed")]

    def act_GetCommonLinkProperties(self, svc, asker, args):
        return [("NewWANAccessType", "Ethernet"), ("NewLayer1UpstreamMaxBitRate", 100000000),
                ("NewLayer1DownstreamMaxBitRate", 100000000), ("NewPhysicalLinkStatus", "Up")]

    def act_GetTotalBytesSent(self, svc, asker, args):
        return [("NewTotalBytesSent", 0)]

    def act_GetTotalBytesReceived(self, svc, asker, args):
        return [("NewTotalBytesReceived", 0)]

    def act_GetTotalPacketsSent(self, svc, asker, args):
        return [("NewTotalPacketsSent", 0)]

    def act_GetTotalPacketsReceived(self, svc, asker, args):
        return [("NewTotalPacketsReceived", 0)]

    def act_AddPortMapping(self, svc, asker, args):
        self.add(svc, asker, args, any_port=False)
        return GARBAGE if self.o.garbled_add else []

    def act_AddAnyPortMapping(self, svc, asker, args):
        if self.o.addany_error:
            raise UPnPError(*self.o.addany_error)
        port = self.add(svc, asker, args, any_port=True)
        return GARBAGE if self.o.garbled_add else [("NewReservedPort", port)]

    def why_taken(self, key, client):
        """Why (remote host, port, proto) cannot be (re)mapped to client, or None."""
        if (key[2], key[1]) in self.o.reserved:
            return "reserved by the router (--reserved)"
        m = self.table.get(key)
        if m is None:
            return None
        if m.client != client:
            return f"mapped to {m.client}"
        return "the asker's own (--conflict-own)" if self.o.conflict_own else None

    def add(self, svc, asker, args, any_port):
        o = self.o
        if not svc.connected:
            raise UPnPError(501)
        if o.refuse:
            raise UPnPError(*o.refuse)
        remote = arg_remote_host(args)
        ext = arg_int(args, "NewExternalPort", 0, 65535)
        proto = arg_proto(args)
        int_port = arg_int(args, "NewInternalPort", 1, 65535)
        client = args.get("NewInternalClient", "") or asker
        lease = arg_int(args, "NewLeaseDuration", 0, MAX_LEASE) if args.get("NewLeaseDuration", "") else 0
        if not is_ipv4(client):
            raise UPnPError(402)
        if ext == 0 and not any_port:
            raise UPnPError(716)
        if client != asker and not o.third_party:
            raise UPnPError(606) if any_port else UPnPError(718)
        if lease and o.finite_lease_error:
            raise UPnPError(o.finite_lease_error)
        why = self.why_taken((remote, ext, proto), client) if ext else "wildcard"
        if not why and (proto, ext) in self.phantoms_left:
            self.phantoms_left.discard((proto, ext))
            why = "a phantom conflict, once (--phantom-once)"
        if why and not any_port:
            log(f"conflict: {proto.lower()} {ext} {why}")
            raise UPnPError(*o.conflict_error)
        if why:
            ext = self.free_port(remote, proto, ext)
        key = (remote, ext, proto)
        if self.table.get(key) is None and len(self.table) >= o.max_entries:
            raise UPnPError(*o.full_error)
        granted = o.max_lease if o.max_lease and (lease == 0 or lease > o.max_lease) else lease
        old = self.table.get(key)
        now = time.monotonic()
        self.table.put(Mapping(proto, ext, remote, client, int_port, args.get("NewPortMappingDescription", "")[:256],
                               args.get("NewEnabled", "1") not in ("0", "false", "no"), granted,
                               now + granted if granted else None,
                               now + o.forget_after if o.forget_after else None,
                               old.ruled if old else True))
        return ext

    def free_port(self, remote, proto, wanted):
        """AddAnyPortMapping's choice when the wanted port is taken: the next free one up."""
        start = max(wanted, 1023)
        for p in list(range(start + 1, 65536)) + list(range(1024, start + 1)):
            key = (remote, p, proto)
            if self.table.get(key) is None and (proto, p) not in self.o.reserved:
                return p
        raise UPnPError(728)

    def act_DeletePortMapping(self, svc, asker, args):
        if not svc.connected:
            raise UPnPError(501)
        key = (arg_remote_host(args), arg_int(args, "NewExternalPort", 1, 65535), arg_proto(args))
        m = self.table.get(key)
        if m is None:
            raise UPnPError(714)
        if m.client != asker and not self.o.third_party:
            raise UPnPError(606)
        self.table.remove([key], f"deleted by {asker}")
        return []

    def act_DeletePortMappingRange(self, svc, asker, args):
        if not svc.connected:
            raise UPnPError(501)
        lo, hi = arg_int(args, "NewStartPort", 0, 65535), arg_int(args, "NewEndPort", 0, 65535)
        proto = arg_proto(args)
        manage = args.get("NewManage", "0") in ("1", "true", "yes")
        if lo > hi:
            raise UPnPError(733)
        keys = [k for k, m in self.table.entries.items() if k[2] == proto and lo <= k[1] <= hi
                and (m.client == asker or (manage and self.o.third_party))]
        if not keys:
            raise UPnPError(730)
        self.table.remove(keys, f"deleted by {asker} (range)")
        return []

    def entry_fields(self, m):
        return [("NewInternalPort", m.int_port), ("NewInternalClient", m.client),
                ("NewEnabled", int(m.enabled)), ("NewPortMappingDescription", m.desc),
                ("NewLeaseDuration", m.left(time.monotonic()))]

    def act_GetSpecificPortMappingEntry(self, svc, asker, args):
        key = (arg_remote_host(args), arg_int(args, "NewExternalPort", 1, 65535), arg_proto(args))
        m = self.table.get(key) if svc.connected else None
        if m is None:
            raise UPnPError(714)
        return self.entry_fields(m)

    def act_GetGenericPortMappingEntry(self, svc, asker, args):
        index = arg_int(args, "NewPortMappingIndex", 0, 65535)
        listing = list(self.table.entries.values()) if svc.connected else []
        if index >= len(listing):
            raise UPnPError(713)
        m = listing[index]
        return [("NewRemoteHost", m.remote_host), ("NewExternalPort", m.ext_port),
                ("NewProtocol", m.proto)] + self.entry_fields(m)

    def act_GetListOfPortMappings(self, svc, asker, args):
        lo, hi = arg_int(args, "NewStartPort", 0, 65535), arg_int(args, "NewEndPort", 0, 65535)
        proto = arg_proto(args)
        manage = args.get("NewManage", "0") in ("1", "true", "yes")
        count = arg_int(args, "NewNumberOfPorts", 0, 65535) if args.get("NewNumberOfPorts") else 0
        if lo > hi:
            raise UPnPError(733)
        now = time.monotonic()
        found = [m for m in (self.table.entries.values() if svc.connected else ())
                 if m.proto == proto and lo <= m.ext_port <= hi and (manage or m.client == asker)]
        found = found[:min(count or MAX_LISTED, MAX_LISTED)]
        if not found:
            raise UPnPError(730)
        entries = "".join(
            f"<p:PortMappingEntry><p:NewRemoteHost>{m.remote_host}</p:NewRemoteHost>"
            f"<p:NewExternalPort>{m.ext_port}</p:NewExternalPort><p:NewProtocol>{m.proto}</p:NewProtocol>"
            f"<p:NewInternalPort>{m.int_port}</p:NewInternalPort><p:NewInternalClient>{m.client}</p:NewInternalClient>"
            f"<p:NewEnabled>{int(m.enabled)}</p:NewEnabled><p:NewDescription>{escape(m.desc)}</p:NewDescription>"
            f"<p:NewLeaseTime>{m.left(now)}</p:NewLeaseTime></p:PortMappingEntry>" for m in found)
        listing = ('<?xml version="1.0" encoding="UTF-8"?><p:PortMappingList '
                   'xmlns:p="urn:schemas-upnp-org:gw:WANIPConnection" '
                   'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' + entries + "</p:PortMappingList>")
        return [("NewPortListing", CData(listing))]

    # -- control from outside
    def control(self):
        path = self.o.control
        if not path:
            log("SIGUSR1 without --control: ignored")
            return
        try:
            with open(path, "rb") as f:
                text = f.read(CONTROL_MAX_BYTES).decode("utf-8", "replace")
        except OSError as e:
            log(f"SIGUSR1: cannot read {path}: {e}")
            return
        out = [self.command(line.split()) for line in text.splitlines()[:CONTROL_MAX_LINES] if line.strip()]
        tmp = f"{path}.out.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write("".join(line + "\n" for line in out))
        os.replace(tmp, path + ".out")
        os.unlink(path)

    def command(self, words):
        now = time.monotonic()
        entries = self.table.entries
        if words == ["list"]:
            return "\n".join(m.describe(now) for m in entries.values()) or "(no mappings)"
        if words == ["forget-all"]:
            n = len(entries)
            self.table.remove(list(entries), "forgotten silently (control)")
            return f"forgot {n} mapping(s)"
        if len(words) == 3 and words[0] in ("forget", "unrule") and words[1] in ("udp", "tcp") \
                and words[2].isdigit():
            keys = [k for k in entries if k[1] == int(words[2]) and k[2] == words[1].upper()]
            if not keys:
                return f"{words[0]} {words[1]} {words[2]}: no such mapping"
            if words[0] == "forget":
                self.table.remove(keys, "forgotten silently (control)")
            else:
                for k in keys:
                    entries[k].ruled = False
                    log(f"rule removed behind the table's back (control): {entries[k].describe(now)}")
                self.table.sync()
            return f"{words[0]} {words[1]} {words[2]}: done ({len(keys)})"
        if len(words) == 2 and words[0] == "trickle":
            try:
                self.o.trickle = None if words[1] == "off" else kind_amount(words[1])
            except argparse.ArgumentTypeError as e:
                return f"trickle: {e}"
            log(f"trickle {words[1]} (control)")
            return f"trickle {words[1]}: done"
        return (f"unknown command {' '.join(words)!r} (forget PROTO PORT, forget-all, unrule PROTO PORT, list, "
                "trickle KIND:MS|off)")


def main():
    o = parse_options(sys.argv[1:])
    set_comm("scripted-igd")
    igd = Igd(o)
    try:
        igd.open()
    except OSError as e:
        igd.nft.destroy()
        raise SystemExit(f"scripted_igd: {e}") from None
    log("up: " + " ".join(f"{loc.kind}={loc.url}" for loc in igd.locations)
        + ("" if o.no_ssdp else f"; SSDP on :{SSDP_PORT}") + f"; nft table ip {o.nft_table}")
    if o.ready:
        with open(o.ready + ".tmp", "w") as f:
            f.write("".join(f"location {loc.kind} {loc.url}\n" for loc in igd.locations))
        os.replace(o.ready + ".tmp", o.ready)
    try:
        igd.run()
    finally:
        igd.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
