#!/usr/bin/env bash
# lab.sh - the lab network natkeeper's end-to-end tests run in.
#
# LAB_TOPOLOGY=single (the default): one NAT, the gateway's WAN address is public
#
#   ns lan                 ns gw                                      ns wan ("internet")
#   eth0 10.77.0.2/24 ---- lan0 10.77.0.1/24 | wan0 203.0.113.1/24 ---- eth0 203.0.113.2/24
#   default via .1         ip_forward, nft NAT + filter, miniupnpd       + 203.0.113.3/24
#                          UPnP-IGD http :5000 + SSDP, NAT-PMP/PCP :5351  coturn STUN :3478/:3479
#                          (startup STUN check against 203.0.113.2)       [reflector :7000]
#
# LAB_TOPOLOGY=double: double NAT / CGNAT - the same lan and gw, but gw's WAN address is in
# 100.64.0.0/10 and an "isp" namespace NATs once more in front of it
#
#   ns lan               ns gw                         ns isp (carrier-grade NAT)    ns wan
#   eth0 10.77.0.2/24 -- lan0 10.77.0.1/24
#   default via .1       wan0 100.64.0.2/24 ---------- cpe0 100.64.0.1/24 + .3/24
#                        default via 100.64.0.1        wan0 203.0.113.1/24 --------- eth0 203.0.113.2/24
#                        nft NAT + filter, miniupnpd   ip_forward, masquerade out       + 203.0.113.3/24
#                        (STUN check against           of wan0, drops unsolicited    coturn STUN
#                        100.64.0.1: no filtering      inbound (forwarded or not)      :3478/:3479
#                        => maps, external address     coturn STUN on 100.64.0.1     [reflector :7000]
#                        100.64.0.2)                   and .3, :3478/:3479
#
#   So the gateway grants every mapping and reports external address 100.64.0.2, while the
#   internet sees 203.0.113.1 and nothing it sends there reaches lan: "router maps, internet
#   can't reach". (miniupnpd 2.3.1 refuses a reserved/private external address unless its
#   startup STUN check finds no filtering; the check goes to the STUN server inside the ISP.)
#
# LAB_ROGUE=1 (either topology): a hostile device on the LAN. gw's lan0 is then a bridge
# (same name, so miniupnpd's config and the nft rules stay as they are) with two ports:
#
#   ns lan    eth0 10.77.0.2/24  ---- lanp  \
#                                            lan0 (bridge) 10.77.0.1/24 in ns gw
#   ns rogue  eth0 10.77.0.66/24 ---- roguep /
#
#   `rogue-start` runs rogue_device.py there (SSDP answers with bad LOCATIONs, a fake IGD,
#   NAT-PMP/PCP spray) and the traps a follower of those LOCATIONs would reach.
#
# LAB_DOORBELL=1 (either topology, with or without the rogue): a Ring doorbell on the LAN,
# a device of its own that natkeeper (on the lan host) maps ports for. lan0 is the bridge
# as above, with one more port:
#
#   ns doorbell  eth0 10.77.0.50/24 ---- bellp (lan0's port)   default via 10.77.0.1
#                MAC 54:e0:19:00:00:50 (Ring LLC's OUI)
#
#   `up` has the doorbell send one datagram to the lan host, so the lan host's neighbour
#   table holds the doorbell (address and MAC) once the lab is up, as on a real LAN where
#   the device talks. `doorbell-listen` counts what reaches the device; `wan-send` knocks
#   from the internet.
#
# LAB_THIRD_PARTY=secure (default) or open: whether the gateway maps ports for a LAN host
# other than the one that asks. secure: secure_mode=yes, pcp_allow_thirdparty=no - what
# miniupnpd's sample config and most routers ship. Seen with 2.3.1 when the lan host asks
# for the doorbell: UPnP AddPortMapping 718 ConflictInMappingEntry, AddAnyPortMapping 606
# Action not authorized, PCP MAP with THIRD_PARTY UNSUPP_OPTION (5), PCP MAP whose client
# field is the doorbell ADDRESS_MISMATCH (12). open: secure_mode=no,
# pcp_allow_thirdparty=yes; all of these map to the doorbell. (2.3.1 without a
# secure_mode line does not check the UPnP client: the lab always writes both keys.)
# NAT-PMP always maps for the sender. Read and recorded by `up`; `gw-third-party`
# switches it.
#
# Usage: lab.sh up|down|status|stop-gateway|start-gateway|restart-gateway|rules [--brief]|ns lan|gw|isp|wan|rogue|doorbell
#        lab.sh reflector-start BINARY [ARG...]   run BINARY --listen 203.0.113.2:7000
#                  --listen 203.0.113.3:7000 [ARG...] in ns wan (log: $LAB_STATE/reflector.log);
#                  returns once it listens on UDP and TCP on both (at most 5 s)
#        lab.sh reflector-stop
#        lab.sh drop-dnat udp|tcp PORT   delete the DNAT rule for external PORT and its filter
#                  accept rule from gw's nftables behind miniupnpd's back (by rule handle)
#        lab.sh gw-reboot [--kill]   a reboot that loses the gateway's state: gw-stop, gw-start
#        lab.sh gw-stop [--kill] [--drop]   stop miniupnpd (SIGTERM: it sends ssdp:byebye;
#                  --kill: SIGKILL, a power cut), flush its nftables chains, delete its lease
#                  file; --drop: until gw-start the gateway also drops all it receives
#                  (requests time out instead of ICMP port unreachable, nothing is routed)
#        lab.sh gw-start   start miniupnpd (again); logs how long the gateway was down
#                  (also in $LAB_STATE/gw-down-ms)
#        lab.sh gw-wan-address ADDR[/LEN]   renumber gw's wan0 (default /24) as a DHCP client
#                  does (old address off, new one on, routes fixed on both sides); miniupnpd
#                  notices by itself; returns once it has re-checked the address by STUN
#        lab.sh gw-announce   SIGUSR1 to miniupnpd: STUN check again, one NAT-PMP notice
#                  and one PCP ANNOUNCE, epoch back to 0
#        lab.sh rogue-start [ARG...]   (LAB_ROGUE=1 labs) run rogue_device.py rogue in ns rogue
#                  (HTTP :8000-8003 and :8010-8059, SSDP; LOCATIONs 127.0.0.1:8000 and
#                  203.0.113.3:8080; [ARG...] e.g. --spray-ports LO-HI) and traps counting
#                  TCP connections on 127.0.0.1:8000 in ns lan and 203.0.113.3:8080 in ns wan;
#                  returns once all three listen (at most 5 s). Counts: $LAB_STATE/rogue-*.json
#        lab.sh rogue-counts   have the three write their counts now (at most 2 s)
#        lab.sh rogue-stop   stop them (they write their counts on the way out)
#        lab.sh doorbell-listen [SPEC...]   (LAB_DOORBELL=1 labs) run doorbell.py listen in
#                  ns doorbell on 0.0.0.0 (SPEC: udp:PORT, tcp+udp:LOW-HIGH, udp:P1,P2...;
#                  default the Ring profile, 108 ports): it counts UDP datagrams and
#                  accepted TCP connections per port, keeping $STATE/doorbell-counts.json
#                  current; replaces a running one (counts start at 0); returns once it
#                  listens (at most 5 s); ends by itself after 900 s
#        lab.sh doorbell-counts   have it write its counts now and print them (at most 2 s)
#        lab.sh doorbell-stop   stop it (it writes its counts on the way out)
#        lab.sh doorbell-renumber ADDR   renumber the doorbell in 10.77.0.0/24 as a DHCP
#                  client does (old address off, new one on, default route back), then it
#                  sends to the lan host, whose neighbour table learns ADDR; the entry for
#                  the old address is left to go stale as the kernel does
#        lab.sh gw-third-party open|secure   set the gateway's third-party policy (see
#                  LAB_THIRD_PARTY) and restart miniupnpd with it (its mappings stay; the
#                  restart resets its epoch and sends a PCP ANNOUNCE, as any restart does)
#        lab.sh wan-send udp|tcp PORT[-PORT][,...] [ADDR]   from ns wan (203.0.113.2), one
#                  token per port to ADDR (default: where the internet reaches the lab, gw's
#                  wan0 address in the single topology, the ISP's 203.0.113.1 in the
#                  double), each from a fresh source port: a UDP datagram, or a TCP connect
#                  (2 s at most, all at once) + write. Prints a line per port; exit 0 if all
#                  were sent/connected, 1 if a connection was refused or got no answer, 2 on
#                  a usage or setup error
#        lab.sh scripted-igd-start [ARG...]   run scripted_igd.py (a UPnP IGD that plays
#                  routers' quirks, see its header) in ns gw, replacing a running one, with
#                  --lan-addr 10.77.0.1 --wan-if wan0 --fwmark (the mark gw's forward chain
#                  accepts) --control $LAB_STATE/scripted-igd.ctl and [ARG...]; returns once it
#                  listens (at most 5 s). Its LOCATIONs: $LAB_STATE/scripted-igd.ready (a line
#                  "location KIND URL" each); log: $LAB_STATE/scripted-igd.log. miniupnpd holds
#                  tcp :5000 and udp :1900: stop-gateway first, or pass --http-port P --no-ssdp
#        lab.sh scripted-igd-stop   SIGTERM: it deletes its nftables table and exits
#        lab.sh scripted-igd-ctl COMMAND...   one control command (forget PROTO PORT,
#                  forget-all, unrule PROTO PORT, list, trickle KIND:MS|off); prints the
#                  answer (at most 2 s)
#        lab.sh reap-after PID   (internal: tear the lab down once process PID is gone; see lib.sh)
#
# Environment:
#   LAB_PREFIX  namespace-name prefix, required, unique per lab ([A-Za-z0-9_-], at most 40 chars).
#               Labs with different prefixes run side by side: the veth pairs are created
#               straight inside the namespaces, so no interface name is shared.
#   LAB_STATE   directory for configs, logs and pid files
#               (default ${TMPDIR:-/tmp}/natkeeper-lab-$LAB_PREFIX).
#   LAB_TOPOLOGY  single (default) or double; read by `up`, which records it in $LAB_STATE;
#               later subcommands use the recorded one. `up` rebuilds a lab of the other kind.
#   LAB_ROGUE   1: add the rogue namespace (see above); 0 (default): the lab above, exactly.
#               Read and recorded by `up` like LAB_TOPOLOGY.
#   LAB_DOORBELL  1: add the doorbell namespace (see above); 0 (default). Read and recorded
#               by `up` like LAB_TOPOLOGY.
#   LAB_THIRD_PARTY  secure (default) or open (see above). Read and recorded by `up`.
#
# Root only (except `ns`). Needs iproute2, nftables, miniupnpd-nftables, coturn, util-linux
# (and python3 for the rogue, the doorbell and wan-send).
# Daemons run in the foreground under `ip netns exec`, detached with setsid, logging to
# $LAB_STATE; they are stopped by recorded PID (checked against /proc/PID/comm). IPv4 only.
set -euo pipefail

readonly LAN_HOST=10.77.0.2 LAN_GW=10.77.0.1 WAN_GW=203.0.113.1 WAN_A=203.0.113.2 WAN_B=203.0.113.3
# double topology: gw's WAN address, the ISP's inner addresses (gateway, second STUN address)
readonly CGN_GW=100.64.0.2 ISP_A=100.64.0.1 ISP_B=100.64.0.3
readonly REFLECTOR_PORT=7000
# the rogue's address, its first HTTP port, and where its LOCATIONs that no one may follow point
readonly ROGUE_HOST=10.77.0.66 ROGUE_HTTP=8000 TRAP_LOOPBACK=127.0.0.1:8000 TRAP_OFFNET=$WAN_B:8080
# the doorbell: its address at `up`, and a MAC in Ring LLC's IEEE-registered block 54:e0:19
readonly DOORBELL_HOST=10.77.0.50 DOORBELL_MAC=54:e0:19:00:00:50
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly ROGUE_PY=$E2E_DIR/rogue_device.py DOORBELL_PY=$E2E_DIR/doorbell.py
# the scripted IGD marks what its DNAT rules let in; gw's forward chain accepts that mark
readonly SCRIPTED_IGD_PY=$E2E_DIR/scripted_igd.py SCRIPTED_IGD_MARK=0x5c1d SCRIPTED_IGD_TABLE=scripted_igd
readonly MINIUPNPD=/usr/sbin/miniupnpd

log() { printf '[lab %s] %s\n' "${LAB_PREFIX:-?}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  sed -n 's/^# \{0,1\}//; /^Usage:/,/^$/p' "$0" | sed '/^$/d' >&2
  exit 64
}

PREFIX=${LAB_PREFIX:-}
[ -n "$PREFIX" ] || { log "LAB_PREFIX is not set (e.g. LAB_PREFIX=nk\$\$)"; usage; }
[[ $PREFIX =~ ^[A-Za-z0-9_-]{1,40}$ ]] || die "LAB_PREFIX '$PREFIX' must match [A-Za-z0-9_-]{1,40}"
readonly NS_LAN=${PREFIX}lan NS_GW=${PREFIX}gw NS_ISP=${PREFIX}isp NS_WAN=${PREFIX}wan NS_ROGUE=${PREFIX}rogue
readonly NS_DOORBELL=${PREFIX}doorbell
readonly ALL_NS=("$NS_LAN" "$NS_GW" "$NS_ISP" "$NS_WAN" "$NS_ROGUE" "$NS_DOORBELL")
STATE=${LAB_STATE:-${TMPDIR:-/tmp}/natkeeper-lab-$PREFIX}

# set_topology single|double: the namespaces (NS_LIST), gw's WAN address (GW_EXT) and the
# coturn instance miniupnpd's startup STUN check talks to (STUN_COTURN, STUN_HOST)
set_topology() {
  TOPOLOGY=$1
  case "$TOPOLOGY" in
    single) NS_LIST=("$NS_LAN" "$NS_GW" "$NS_WAN"); GW_EXT=$WAN_GW
            STUN_COTURN=coturn STUN_HOST=$WAN_A ;;
    double) NS_LIST=("$NS_LAN" "$NS_GW" "$NS_ISP" "$NS_WAN"); GW_EXT=$CGN_GW
            STUN_COTURN=coturn-isp STUN_HOST=$ISP_A ;;
    *) die "LAB_TOPOLOGY '$TOPOLOGY' must be single or double" ;;
  esac
}
# the topology an existing lab was built with (recorded by `up`), else $LAB_TOPOLOGY
recorded_topology() { cat "$STATE/topology" 2>/dev/null || echo "${LAB_TOPOLOGY:-single}"; }
# set_rogue 0|1 (after set_topology): ROGUE, and ns rogue in NS_LIST
set_rogue() {
  case "$1" in
    '' | 0) ROGUE=0 ;;
    1) ROGUE=1; NS_LIST+=("$NS_ROGUE") ;;
    *) die "LAB_ROGUE '$1' must be 0 or 1" ;;
  esac
}
recorded_rogue() { cat "$STATE/rogue" 2>/dev/null || echo "${LAB_ROGUE:-0}"; }
# set_doorbell 0|1 (after set_rogue): DOORBELL, and ns doorbell in NS_LIST
set_doorbell() {
  case "$1" in
    '' | 0) DOORBELL=0 ;;
    1) DOORBELL=1; NS_LIST+=("$NS_DOORBELL") ;;
    *) die "LAB_DOORBELL '$1' must be 0 or 1" ;;
  esac
}
recorded_doorbell() { cat "$STATE/doorbell" 2>/dev/null || echo "${LAB_DOORBELL:-0}"; }
# set_third_party secure|open: THIRD_PARTY, the gateway's policy (see the header)
set_third_party() {
  case "${1:-secure}" in
    secure | open) THIRD_PARTY=${1:-secure} ;;
    *) die "third-party policy '$1' must be secure or open" ;;
  esac
}
recorded_third_party() { cat "$STATE/third-party" 2>/dev/null || echo "${LAB_THIRD_PARTY:-secure}"; }
# lan0 is a bridge as soon as a second LAN host (rogue, doorbell) shares the segment
lan_bridged() { [ "$ROGUE" = 1 ] || [ "$DOORBELL" = 1 ]; }

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# iproute2 keeps named namespaces as files here (NETNS_RUN_DIR; /var/run -> /run on Debian).
ns_exists() { [ -e "/var/run/netns/$1" ]; }
# short sleep without a fork where possible (read -t on a descriptor that never delivers)
exec {NAP_FD}<> <(:)
nap() { read -r -t "$1" -u "$NAP_FD" _ || true; }

# run a command without this script's private descriptors (lock, nap pipe): a daemon
# holding the lock would block every later subcommand
close_fds() {
  exec {NAP_FD}>&-
  [ -z "${LOCK_FD:-}" ] || exec {LOCK_FD}>&-
  exec "$@"
}
now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }
# wait_until SECONDS PID COMMAND...: poll COMMAND every 20 ms until it succeeds; give up
# after SECONDS (by the clock and by count) or as soon as process PID has exited.
wait_until() {
  local secs=$1 pid=$2 i end; shift 2
  end=$(($(now_us) + secs * 1000000))
  for ((i = 0; i < secs * 50; i++)); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(now_us)" -lt "$end" ] || return 1
    nap 0.02
  done
  return 1
}

# ---- processes: only ever signal a PID we recorded, and only while /proc/PID/comm still
# names the program we started there (guards against PID reuse). Zombies count as dead.
proc_stat() {   # pid field  -> field of /proc/PID/stat (3 = state, 22 = start time)
  local s f
  { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
  s=${s##*) }                          # comm (field 2) may contain spaces and ')'
  read -r -a f <<<"$s"
  echo "${f[$(($2 - 3))]}"
}
pid_alive() {   # comm pidfile   (builtins only: it runs in every poll loop)
  local pid comm s f
  { read -r pid <"$2"; } 2>/dev/null || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  { read -r comm <"/proc/$pid/comm"; } 2>/dev/null || return 1
  [ "$comm" = "$1" ] || return 1
  { read -r s <"/proc/$pid/stat"; } 2>/dev/null || return 1
  s=${s##*) }
  read -r -a f <<<"$s"
  [ -n "${f[0]:-}" ] && [ "${f[0]}" != Z ] && [ "${f[0]}" != X ]
}
stop_pid() {    # comm pidfile [KILL]   (KILL: no SIGTERM first)
  local pid i
  pid_alive "$1" "$2" || { rm -f "$2"; return 0; }
  pid=$(cat "$2")
  kill "-${3:-TERM}" "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do pid_alive "$1" "$2" || break; nap 0.02; done   # <= 2 s
  if pid_alive "$1" "$2"; then
    log "$1 (pid $pid) still there 2 s after SIG${3:-TERM}, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do pid_alive "$1" "$2" || break; nap 0.02; done
  fi
  rm -f "$2"
}
# $! is the daemon itself when neither setsid nor `ip netns exec` had to fork (the usual
# case: setsid only forks for a process-group leader). Wait briefly for the exec chain,
# then fall back to the pid file the daemon writes itself.
record_pid() {  # comm bgpid daemon_pidfile our_pidfile
  local i
  echo "$2" >"$4"
  for ((i = 0; i < 50; i++)); do pid_alive "$1" "$4" && return 0; nap 0.01; done
  cat "$3" >"$4" 2>/dev/null || true
  pid_alive "$1" "$4"
}

# the distribution's python3 if present, as lib.sh (a pyenv shim is slow and may differ)
python_bin() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
  elif [ -x /usr/bin/python3 ]; then echo /usr/bin/python3
  else echo python3; fi
}

# ---- configuration -------------------------------------------------------------------
write_miniupnpd_conf() {
  # the third-party policy (see the header), both keys always written: 2.3.1's built-in
  # default is secure_mode off, its sample config's is on
  local secure=yes pcp3rd=no
  [ "$THIRD_PARTY" = secure ] || secure=no pcp3rd=yes
  # 203.0.113.0/24 is reserved (TEST-NET-3): miniupnpd refuses every mapping on a reserved
  # external address unless its startup STUN check (against coturn in ns wan, RFC 5780
  # CHANGE-REQUEST) finds no filtering. Hence coturn starts first. In the double topology
  # the check goes to the coturn inside the ISP (100.64.0.1), which sees gw unfiltered, so
  # miniupnpd maps on its 100.64.0.2 although the outer NAT drops all inbound traffic.
  cat >"$STATE/miniupnpd.conf" <<EOF
ext_ifname=wan0
listening_ip=lan0
http_port=5000
enable_upnp=yes
enable_natpmp=yes
secure_mode=$secure
pcp_allow_thirdparty=$pcp3rd
system_uptime=no
notify_interval=30
clean_ruleset_interval=600
min_lifetime=120
max_lifetime=86400
ipv6_disable=yes
ext_perform_stun=yes
ext_stun_host=$STUN_HOST
ext_stun_port=3478
lease_file=$STATE/upnp.leases
uuid=3f1c7a2e-5b9d-4c61-9e0a-77c0ffee0001
friendly_name=natkeeper lab gateway
allow 1024-65535 10.77.0.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
  # Keep test ports >= 1024: a NAT-PMP/PCP request for a denied internal port makes
  # miniupnpd 2.3.1 walk all 65535 external ports and stop answering for about a minute.
}

write_configs() {
  # miniupnpd's nftables backend does not create its table or chains (Debian's nft_init.sh
  # only works with the full "miniupnpd" package). Names are its built-in defaults.
  cat >"$STATE/gw.nft" <<EOF
table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
    meta mark $SCRIPTED_IGD_MARK accept       # DNATed by scripted_igd.py (its own table)
    jump miniupnpd                  # miniupnpd adds: iif wan0 th dport N ... accept
  }
  chain miniupnpd { }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd       # miniupnpd adds: iif wan0 ... dnat ip to host:port
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd      # PCP PEER rules
    oifname "wan0" masquerade
  }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
EOF
  write_miniupnpd_conf
  : >"$STATE/turndb"
  [ "$TOPOLOGY" = double ] || return 0
  # the ISP: NAT out of wan0; from outside only replies get in (forwarded or to itself)
  cat >"$STATE/isp.nft" <<'EOF'
table ip cgnat {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "cpe0" oifname "wan0" accept
  }
  chain input {
    type filter hook input priority 0; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" drop
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    oifname "wan0" masquerade
  }
}
EOF
}

# ---- daemons ---------------------------------------------------------------------------
listening() {   # ns want...   every "proto local-addr:port" in want is a listening socket
  local ns=$1 have w; shift
  have=$(nsx "$ns" ss -Hlnut 2>/dev/null | awk '{print $1, $5}') || return 1
  for w in "$@"; do grep -qxF "$w" <<<"$have" || return 1; done
}

# coturn instances: "coturn" in ns wan (the internet's STUN server, both topologies) and
# "coturn-isp" in ns isp (double only: the one miniupnpd's startup check uses there).
# Pid files $STATE/NAME.pid, logs $STATE/NAME.log.
coturn_where() {   # name -> "ns addr_a addr_b"
  case "$1" in
    coturn) echo "$NS_WAN $WAN_A $WAN_B" ;;
    coturn-isp) echo "$NS_ISP $ISP_A $ISP_B" ;;
    *) die "unknown coturn instance '$1'" ;;
  esac
}
declare -A COTURN_BG=()
# launch_coturn NAME: start it without waiting (await_coturn does); nothing if it runs
launch_coturn() {
  local name=$1 ns a b
  read -r ns a b <<<"$(coturn_where "$name")"
  COTURN_BG[$name]=
  pid_alive turnserver "$STATE/$name.pid" && return 0
  ns_exists "$ns" || die "namespace $ns does not exist (run up)"
  # -n: no config file. Two -L addresses switch RFC 5780 (CHANGE-REQUEST) on.
  # --userdb: a private (empty) database instead of /var/lib/turn.
  close_fds setsid ip netns exec "$ns" turnserver -n --stun-only \
    -L "$a" -L "$b" -p 3478 --alt-listening-port 3479 \
    --no-cli --no-tls --no-dtls --no-tcp --userdb "$STATE/turndb" \
    --log-file stdout --simple-log --pidfile "$STATE/$name.ownpid" \
    </dev/null >"$STATE/$name.log" 2>&1 &
  COTURN_BG[$name]=$!
  disown "$!"
}
await_coturn() {
  local name=$1 bg=${COTURN_BG[$1]:-} ns a b
  [ -n "$bg" ] || { pid_alive turnserver "$STATE/$name.pid"; return; }
  read -r ns a b <<<"$(coturn_where "$name")"
  if ! wait_until 5 "$bg" listening "$ns" "udp $a:3478" "udp $a:3479" "udp $b:3478" "udp $b:3479" ||
     ! record_pid turnserver "$bg" "$STATE/$name.ownpid" "$STATE/$name.pid"; then
    kill -TERM "$bg" 2>/dev/null || true
    tail -n 20 "$STATE/$name.log" >&2 || true
    log "$name did not come up on $a/$b ports 3478/3479 in $ns"
    return 1
  fi
}
start_coturn() { launch_coturn "$1" && await_coturn "$1"; }

start_miniupnpd() {
  pid_alive miniupnpd "$STATE/miniupnpd.pid" && return 0
  ns_exists "$NS_GW" || die "namespace $NS_GW does not exist (run up)"
  pid_alive turnserver "$STATE/$STUN_COTURN.pid" || start_coturn "$STUN_COTURN" || return 1
  local logf=$STATE/miniupnpd.log from bg ok=0
  rm -f "$STATE/miniupnpd.ownpid"   # a stale pid file => "MiniUPnPd is already running"
  printf '=== lab.sh: starting miniupnpd at %(%F %T)T ===\n' -1 >>"$logf"
  from=$(($(stat -c %s "$logf") + 1))
  # -d keeps miniupnpd in the foreground logging to stderr - and, with no syslog socket,
  # also writes every line to /dev/console (LOG_CONS): slow, and a console every user of
  # the machine shares. `ip netns exec` gives the daemon a private mount namespace, so
  # bind /dev/null over /dev/console there. Refuse to start if that bind fails.
  close_fds setsid ip netns exec "$NS_GW" sh -c '
      if [ -e /dev/console ]; then
        mount --bind /dev/null /dev/console || { echo "lab.sh: cannot hide /dev/console" >&2; exit 1; }
      fi
      exec "$@"' sh \
    "$MINIUPNPD" -d -f "$STATE/miniupnpd.conf" -P "$STATE/miniupnpd.ownpid" \
    </dev/null >>"$logf" 2>&1 &
  bg=$!
  disown "$bg"   # no "Killed" job notice from this shell
  # its startup STUN check takes a few ms with coturn up (3 x 3 s without an answer)
  wait_until 5 "$bg" listening "$NS_GW" "tcp 0.0.0.0%lan0:5000" "udp 0.0.0.0%lan0:1900" "udp $LAN_GW:5351" && ok=1
  # grep without -q reads to the end: with -q it may exit first, and tail's SIGPIPE then
  # fails the pipeline (pipefail) although the line is there
  if [ "$ok" = 1 ] && ! tail -c "+$from" "$logf" | grep 'Port forwarding is now enabled' >/dev/null; then
    log "miniupnpd did not log 'Port forwarding is now enabled' (STUN check against $STUN_HOST failed?)"
    ok=0
  fi
  if [ "$ok" = 1 ] && ! record_pid miniupnpd "$bg" "$STATE/miniupnpd.ownpid" "$STATE/miniupnpd.pid"; then
    log "cannot find miniupnpd's pid"; ok=0
  fi
  if [ "$ok" != 1 ]; then
    # (during its startup STUN wait miniupnpd does not act on SIGTERM)
    echo "$bg" >"$STATE/miniupnpd.pid"; stop_pid miniupnpd "$STATE/miniupnpd.pid" KILL
    tail -c "+$from" "$logf" | grep -v table_cb | tail -n 20 >&2 || true
    log "miniupnpd did not come up (log: $logf)"
    return 1
  fi
}

# ---- natkeeper's reflector (or any stand-in) in ns wan ----------------------------------
# BINARY --listen 203.0.113.2:7000 --listen 203.0.113.3:7000 [ARG...]; it must serve UDP and
# TCP on each. Stopped by PID like the daemons; its comm (the binary's name, 15 chars at
# most) and path are recorded next to the pid file.
reflector_alive() {
  local comm
  comm=$(cat "$STATE/reflector.comm" 2>/dev/null) || return 1
  pid_alive "$comm" "$STATE/reflector.pid"
}
cmd_reflector_stop() {
  local comm
  if comm=$(cat "$STATE/reflector.comm" 2>/dev/null); then stop_pid "$comm" "$STATE/reflector.pid"; fi
  rm -f "$STATE"/{reflector.pid,reflector.comm,reflector.bin}
}
cmd_reflector_start() {
  [ $# -ge 1 ] || usage
  local bin comm bg from why logf=$STATE/reflector.log a=$WAN_A:$REFLECTOR_PORT b=$WAN_B:$REFLECTOR_PORT
  bin=$(realpath -e -- "$1" 2>/dev/null) || die "reflector binary '$1' does not exist"
  shift
  if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then die "reflector '$bin' is not an executable file"; fi
  if reflector_alive; then
    if [ "$(cat "$STATE/reflector.bin" 2>/dev/null)" = "$bin" ]; then
      log "reflector already running (pid $(cat "$STATE/reflector.pid"))"; return 0
    fi
    cmd_reflector_stop
  fi
  ns_exists "$NS_WAN" || die "namespace $NS_WAN does not exist (run up)"
  echo "$bin" >"$STATE/reflector.bin"
  printf '=== lab.sh: starting %s --listen %s --listen %s %s at %(%F %T)T ===\n' \
    "$bin" "$a" "$b" "$*" -1 >>"$logf"
  from=$(($(stat -c %s "$logf") + 1))
  close_fds setsid ip netns exec "$NS_WAN" "$bin" --listen "$a" --listen "$b" "$@" \
    </dev/null >>"$logf" 2>&1 &
  bg=$!
  disown "$bg"
  # $bg ends up as the reflector itself (neither setsid nor `ip netns exec` forks here).
  # Its comm is the binary's name - or the interpreter's, for a script run through
  # `#!/usr/bin/env`: record what it is once it listens (by then the execs are done).
  comm=${bin##*/}; comm=${comm:0:15}
  if wait_until 5 "$bg" listening "$NS_WAN" "udp $a" "tcp $a" "udp $b" "tcp $b"; then
    comm=$(cat "/proc/$bg/comm" 2>/dev/null) || comm=
    case "$comm" in ''|setsid|ip) comm=${bin##*/}; comm=${comm:0:15} ;; esac
  fi
  echo "$comm" >"$STATE/reflector.comm"
  if ! listening "$NS_WAN" "udp $a" "tcp $a" "udp $b" "tcp $b" ||
     ! record_pid "$comm" "$bg" /dev/null "$STATE/reflector.pid"; then
    # our child, whatever it runs by now (seconds ago it was started, so no PID reuse)
    why="exited"
    if comm=$(cat "/proc/$bg/comm" 2>/dev/null); then
      why="did not listen on UDP+TCP $a and $b within 5 s"
      echo "$bg" >"$STATE/reflector.pid"; stop_pid "$comm" "$STATE/reflector.pid" KILL
    fi
    rm -f "$STATE"/{reflector.pid,reflector.comm,reflector.bin}
    tail -c "+$from" "$logf" | tail -n 20 >&2 || true
    log "reflector $bin $why (log: $logf)"
    return 1
  fi
  log "reflector $comm (pid $(cat "$STATE/reflector.pid")) on udp+tcp $a $b"
}

# ---- the rogue device (LAB_ROGUE=1) and its traps ----------------------------------------
# NAME -> namespace; each runs rogue_device.py with --counts $STATE/NAME.json and
# --ready $STATE/NAME.ready, logs to $STATE/NAME.log, and is stopped by PID and comm
# (it names itself nk-rogue / nk-trap; the comm is read back once it is ready).
readonly ROGUE_DAEMONS=(rogue-device rogue-trap-lan rogue-trap-wan)
rogue_ns() {
  case "$1" in rogue-device) echo "$NS_ROGUE" ;; rogue-trap-lan) echo "$NS_LAN" ;; rogue-trap-wan) echo "$NS_WAN" ;; esac
}
rogue_alive() {
  local comm
  comm=$(cat "$STATE/$1.comm" 2>/dev/null) || return 1
  pid_alive "$comm" "$STATE/$1.pid"
}
cmd_rogue_stop() {
  local name comm
  for name in "${ROGUE_DAEMONS[@]}"; do
    if comm=$(cat "$STATE/$name.comm" 2>/dev/null); then stop_pid "$comm" "$STATE/$name.pid"; fi
    rm -f "$STATE"/{"$name".pid,"$name".comm,"$name".ready}
  done
}
cmd_rogue_start() {
  local name ns bg comm py ok=1
  py=$(python_bin)
  local -A bgs=()
  [ "$ROGUE" = 1 ] || die "rogue-start: this lab has no rogue namespace (LAB_ROGUE=1 at up)"
  ns_exists "$NS_ROGUE" || die "namespace $NS_ROGUE does not exist (run up)"
  [ -f "$ROGUE_PY" ] || die "missing $ROGUE_PY"
  cmd_rogue_stop
  for name in "${ROGUE_DAEMONS[@]}"; do
    local args=()
    case "$name" in
      rogue-device) args=(rogue --addr "$ROGUE_HOST" --target "$LAN_HOST" --http-base "$ROGUE_HTTP"
                          --loopback-port "${TRAP_LOOPBACK##*:}" --offnet "$TRAP_OFFNET" "$@") ;;
      rogue-trap-lan) args=(trap --listen "$TRAP_LOOPBACK") ;;
      rogue-trap-wan) args=(trap --listen "$TRAP_OFFNET") ;;
    esac
    ns=$(rogue_ns "$name")
    rm -f "$STATE"/{"$name".json,"$name".ready}
    printf '=== lab.sh: starting rogue_device.py %s at %(%F %T)T ===\n' "${args[*]}" -1 >>"$STATE/$name.log"
    # --duration: it ends by itself should every teardown miss it
    close_fds setsid ip netns exec "$ns" "$py" "$ROGUE_PY" "${args[@]}" --duration 900 \
      --counts "$STATE/$name.json" --ready "$STATE/$name.ready" </dev/null >>"$STATE/$name.log" 2>&1 &
    bgs[$name]=$!
    disown "$!"
  done
  # $! is the interpreter itself (neither setsid nor `ip netns exec` forks here)
  for name in "${ROGUE_DAEMONS[@]}"; do
    bg=${bgs[$name]}
    if wait_until 5 "$bg" test -e "$STATE/$name.ready" &&
       comm=$(cat "/proc/$bg/comm" 2>/dev/null) && echo "$comm" >"$STATE/$name.comm" &&
       record_pid "$comm" "$bg" /dev/null "$STATE/$name.pid"; then
      log "$name ($comm, pid $bg) runs in $(rogue_ns "$name")"
    else
      ok=0
      tail -n 20 "$STATE/$name.log" >&2 || true
      log "$name did not come up (log: $STATE/$name.log)"
      # our child, started seconds ago: no PID reuse
      if comm=$(cat "/proc/$bg/comm" 2>/dev/null); then
        echo "$bg" >"$STATE/$name.pid"; echo "$comm" >"$STATE/$name.comm"
      fi
    fi
  done
  [ "$ok" = 1 ] || { cmd_rogue_stop; return 1; }
}
# cmd_rogue_counts: each running one writes $STATE/NAME.json now (SIGUSR1); at most 2 s each
cmd_rogue_counts() {
  local name pid rc=0
  for name in "${ROGUE_DAEMONS[@]}"; do
    rogue_alive "$name" || { log "rogue-counts: $name does not run"; rc=1; continue; }
    pid=$(cat "$STATE/$name.pid")
    rm -f "$STATE/$name.json"
    kill -USR1 "$pid"
    wait_until 2 "$pid" test -s "$STATE/$name.json" || { log "rogue-counts: no counts from $name"; rc=1; }
  done
  return $rc
}

# ---- the doorbell (LAB_DOORBELL=1) --------------------------------------------------------
# lan_knows ADDR: the lan host's neighbour table has ADDR with the doorbell's MAC
lan_knows() { ip -n "$NS_LAN" neigh show to "$1" dev eth0 | grep -q " lladdr $DOORBELL_MAC "; }
# doorbell_hello ADDR: the doorbell (now at ADDR) sends one datagram to the lan host's
# discard port: its ARP request puts ADDR into the lan host's neighbour table, as a device
# that talks on the LAN does. Waits (at most 2 s) until the entry is there.
doorbell_hello() {
  # shellcheck disable=SC2016  # ($1 expands in the doorbell's shell)
  nsx "$NS_DOORBELL" bash -c 'echo doorbell >"/dev/udp/$1/9"' _ "$LAN_HOST" ||
    { log "the doorbell cannot send to $LAN_HOST"; return 1; }
  wait_until 2 "$BASHPID" lan_knows "$1" ||
    { log "$NS_LAN did not learn $1 ($DOORBELL_MAC) within 2 s"; return 1; }
}
doorbell_alive() { pid_alive nk-doorbell "$STATE/doorbell.pid"; }
cmd_doorbell_stop() {
  stop_pid nk-doorbell "$STATE/doorbell.pid"
  rm -f "$STATE/doorbell.ready"
}
cmd_doorbell_listen() {
  local bg spec
  [ "$DOORBELL" = 1 ] || die "doorbell-listen: this lab has no doorbell (LAB_DOORBELL=1 at up)"
  ns_exists "$NS_DOORBELL" || die "namespace $NS_DOORBELL does not exist (run up)"
  [ -f "$DOORBELL_PY" ] || die "missing $DOORBELL_PY"
  for spec in "$@"; do
    [[ $spec =~ ^(udp|tcp|tcp\+udp|udp\+tcp):[0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?)*$ ]] ||
      die "doorbell-listen: bad SPEC '$spec' (want udp:PORT, tcp+udp:LOW-HIGH, udp:P1,P2...)"
  done
  cmd_doorbell_stop
  rm -f "$STATE"/{doorbell-counts.json,doorbell.ready}
  printf '=== lab.sh: starting doorbell.py listen %s at %(%F %T)T ===\n' "${*:-(Ring profile)}" -1 >>"$STATE/doorbell.log"
  # --duration: it ends by itself should every teardown miss it
  close_fds setsid ip netns exec "$NS_DOORBELL" "$(python_bin)" "$DOORBELL_PY" listen --duration 900 \
    --counts "$STATE/doorbell-counts.json" --ready "$STATE/doorbell.ready" "$@" \
    </dev/null >>"$STATE/doorbell.log" 2>&1 &
  bg=$!
  disown "$bg"
  # $bg is the interpreter itself (neither setsid nor `ip netns exec` forks here); it
  # names itself nk-doorbell before it binds
  if ! wait_until 5 "$bg" test -e "$STATE/doorbell.ready" ||
     ! record_pid nk-doorbell "$bg" /dev/null "$STATE/doorbell.pid"; then
    # our child, started seconds ago: no PID reuse
    kill -KILL "$bg" 2>/dev/null || true
    tail -n 20 "$STATE/doorbell.log" >&2 || true
    die "doorbell listener did not come up (log: $STATE/doorbell.log)"
  fi
  log "doorbell listener (pid $bg) counts ${*:-the Ring profile} in $NS_DOORBELL"
}
# cmd_doorbell_counts: the listener writes $STATE/doorbell-counts.json now (SIGUSR1);
# printed to stdout
cmd_doorbell_counts() {
  local pid f=$STATE/doorbell-counts.json
  doorbell_alive || die "doorbell-counts: the doorbell listener does not run"
  pid=$(cat "$STATE/doorbell.pid")
  rm -f "$f"
  kill -USR1 "$pid"
  wait_until 2 "$pid" test -s "$f" || die "doorbell-counts: no counts from the listener within 2 s"
  cat "$f"
}
# cmd_doorbell_renumber ADDR: a new DHCP lease for the doorbell, in the lan's /24
cmd_doorbell_renumber() {
  local addr=${1:-} old o
  [ "$DOORBELL" = 1 ] || die "doorbell-renumber: this lab has no doorbell (LAB_DOORBELL=1 at up)"
  [[ $addr =~ ^10\.77\.0\.([0-9]{1,3})$ ]] || die "doorbell-renumber: want an address in 10.77.0.0/24, got '$addr'"
  o=$((10#${BASH_REMATCH[1]}))
  if [ "$o" -lt 3 ] || [ "$o" -gt 254 ] || [ "10.77.0.$o" = "$ROGUE_HOST" ]; then
    die "doorbell-renumber: 10.77.0.$o is not free for the doorbell"
  fi
  addr=10.77.0.$o
  ns_exists "$NS_DOORBELL" || die "namespace $NS_DOORBELL does not exist (run up)"
  old=$(ip -n "$NS_DOORBELL" -4 -o addr show dev eth0 | awk '{print $4}' | paste -sd ' ')
  if [ "$old" = "$addr/24" ]; then log "doorbell-renumber: the doorbell has $addr already"; return 0; fi
  # as dhclient-script does: the old address off (its routes go with it), the new one on
  ip -n "$NS_DOORBELL" addr flush dev eth0
  ip -n "$NS_DOORBELL" addr add "$addr/24" dev eth0
  ip -n "$NS_DOORBELL" route replace default via "$LAN_GW"
  echo "$addr" >"$STATE/doorbell-address"
  doorbell_hello "$addr" || return 1
  log "doorbell-renumber: ${old:-none} -> $addr/24; $NS_LAN knows $addr"
}

# ---- the scripted IGD (scripted_igd.py) in ns gw ---------------------------------------------
# It names itself scripted-igd before it binds; stopped by PID and comm like the daemons.
scripted_igd_alive() { pid_alive scripted-igd "$STATE/scripted-igd.pid"; }
cmd_scripted_igd_stop() {
  stop_pid scripted-igd "$STATE/scripted-igd.pid"
  rm -f "$STATE"/{scripted-igd.ready,scripted-igd.ctl,scripted-igd.ctl.out}
}
cmd_scripted_igd_start() {
  local bg
  ns_exists "$NS_GW" || die "namespace $NS_GW does not exist (run up)"
  [ -f "$SCRIPTED_IGD_PY" ] || die "missing $SCRIPTED_IGD_PY"
  cmd_scripted_igd_stop
  printf '=== lab.sh: starting scripted_igd.py %s at %(%F %T)T ===\n' "$*" -1 >>"$STATE/scripted-igd.log"
  # --duration: it ends by itself should every teardown miss it
  close_fds setsid ip netns exec "$NS_GW" "$(python_bin)" "$SCRIPTED_IGD_PY" --lan-addr "$LAN_GW" \
    --wan-if wan0 --fwmark "$SCRIPTED_IGD_MARK" --nft-table "$SCRIPTED_IGD_TABLE" --duration 900 \
    --control "$STATE/scripted-igd.ctl" --ready "$STATE/scripted-igd.ready" "$@" \
    </dev/null >>"$STATE/scripted-igd.log" 2>&1 &
  bg=$!
  disown "$bg"
  # $bg is the interpreter itself (neither setsid nor `ip netns exec` forks here)
  if ! wait_until 5 "$bg" test -e "$STATE/scripted-igd.ready" ||
     ! record_pid scripted-igd "$bg" /dev/null "$STATE/scripted-igd.pid"; then
    # our child, started seconds ago: no PID reuse
    kill -KILL "$bg" 2>/dev/null || true
    tail -n 20 "$STATE/scripted-igd.log" >&2 || true
    die "scripted IGD did not come up (log: $STATE/scripted-igd.log)"
  fi
  log "scripted IGD (pid $bg) in $NS_GW: $(awk '{print $2 "=" $3}' "$STATE/scripted-igd.ready" | paste -sd ' ')"
}
# cmd_scripted_igd_ctl COMMAND...: write it to the control file, SIGUSR1, print the answer
cmd_scripted_igd_ctl() {
  local pid ctl=$STATE/scripted-igd.ctl
  [ $# -ge 1 ] || usage
  scripted_igd_alive || die "scripted-igd-ctl: the scripted IGD does not run"
  pid=$(cat "$STATE/scripted-igd.pid")
  rm -f "$ctl.out"
  echo "$*" >"$ctl"
  kill -USR1 "$pid"
  wait_until 2 "$pid" test -e "$ctl.out" || die "scripted-igd-ctl: no answer to '$*' within 2 s"
  cat "$ctl.out"
}

# ---- the gateway's third-party policy (LAB_THIRD_PARTY) ----------------------------------
cmd_gw_third_party() {
  local want=${1:-}
  case "$want" in secure | open) ;; *) die "gw-third-party: want open or secure, got '$want'" ;; esac
  ns_exists "$NS_GW" || die "namespace $NS_GW does not exist (run up)"
  if [ "$want" = "$THIRD_PARTY" ] && pid_alive miniupnpd "$STATE/miniupnpd.pid"; then
    log "gw-third-party: already $want"; return 0
  fi
  set_third_party "$want"
  echo "$THIRD_PARTY" >"$STATE/third-party"
  write_miniupnpd_conf
  # miniupnpd reads its config only at start
  stop_pid miniupnpd "$STATE/miniupnpd.pid"
  start_miniupnpd || return 1
  log "gw-third-party: $THIRD_PARTY ($(grep -E '^(secure_mode|pcp_allow_thirdparty)=' "$STATE/miniupnpd.conf" | paste -sd ' '))"
}

# ---- knocking from the internet -----------------------------------------------------------
# cmd_wan_send PROTO PORTS [ADDR]: see the usage; doorbell.py send in ns wan. Exit
# status 1 means "refused or no answer", so a setup error is 2, as doorbell.py's.
wan_send_error() { log "ERROR: wan-send: $*"; exit 2; }
cmd_wan_send() {
  local proto=${1:-} ports=${2:-} dst=${3:-} part lo hi parts
  case "$proto" in udp | tcp) ;; *) wan_send_error "PROTO must be udp or tcp" ;; esac
  [[ $ports =~ ^[0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?)*$ ]] || wan_send_error "bad PORTS '$ports'"
  IFS=, read -r -a parts <<<"$ports"
  for part in "${parts[@]}"; do
    lo=$((10#${part%-*})) hi=$((10#${part#*-}))
    if [ "$lo" -lt 1 ] || [ "$hi" -gt 65535 ] || [ "$lo" -gt "$hi" ]; then wan_send_error "bad port range '$part'"; fi
  done
  if [ -z "$dst" ]; then
    # the single topology's public address is gw's wan0, as gw-wan-address last set it
    dst=$WAN_GW
    [ "$TOPOLOGY" = double ] || dst=$(cat "$STATE/gw-wan-address" 2>/dev/null || echo "$WAN_GW")
  fi
  [[ $dst =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || wan_send_error "ADDR must be an IPv4 address, got '$dst'"
  ns_exists "$NS_WAN" || wan_send_error "namespace $NS_WAN does not exist (run up)"
  # the source-port file is probe.py's (lib.sh's expect_reaches): neither reuses a port
  timeout -k 1 10 ip netns exec "$NS_WAN" "$(python_bin)" "$DOORBELL_PY" send --to "$dst" --from "$WAN_A" \
    --used-ports "$STATE/probe-source-ports" "$proto:$ports"
}

# ---- a rule deleted behind miniupnpd's back ---------------------------------------------
# cmd_drop_dnat PROTO PORT: delete the DNAT rule(s) for external PORT from
# prerouting_miniupnpd and, for each, one matching accept rule (internal address, port and
# protocol) from the forward chain's miniupnpd chain, by handle, in one nft transaction.
# miniupnpd keeps reporting the mapping; the gateway no longer forwards new flows (an
# established conntrack flow keeps going: probe from a fresh source port).
ip_hex() { local IFS=. o; read -r -a o <<<"$1"; printf '0x%x' $(((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3])); }
cmd_drop_dnat() {
  local proto=${1:-} port=${2:-} pb dn fl h to fh batch='' n=0 used=' '
  case "$proto" in udp) pb=0x11 ;; tcp) pb=0x6 ;; *) die "drop-dnat: PROTO must be udp or tcp" ;; esac
  if ! [[ $port =~ ^[0-9]{1,5}$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "drop-dnat: bad port '$port'"; fi
  ns_exists "$NS_GW" || die "namespace $NS_GW does not exist"
  # "handle proto dport to" per DNAT rule / "handle proto dport daddr-hex" per accept rule
  dn=$(nsx "$NS_GW" nft -a list chain inet filter prerouting_miniupnpd | awk '/ dnat / {
        h = p = d = t = ""
        for (i = 1; i < NF; i++) {
          if ($i == "@nh,72,8") p = $(i+1); if ($i == "dport") d = $(i+1)
          if ($i == "to") t = $(i+1); if ($i == "handle") h = $(i+1)
        }
        print h, p, d, t }') || die "nft list failed"
  fl=$(nsx "$NS_GW" nft -a list chain inet filter miniupnpd | awk '/ accept / {
        h = p = d = a = ""
        for (i = 1; i < NF; i++) {
          if ($i == "@nh,72,8") p = $(i+1); if ($i == "dport") d = $(i+1)
          if ($i == "@nh,128,32") a = $(i+1); if ($i == "handle") h = $(i+1)
        }
        print h, p, d, a }') || die "nft list failed"
  while read -r h p d to; do
    if [ "$p" != "$pb" ] || [ "$d" != "$port" ] || ! [[ $h =~ ^[0-9]+$ ]]; then continue; fi
    batch+="delete rule inet filter prerouting_miniupnpd handle $h"$'\n'
    n=$((n + 1))
    fh=$(awk -v p="$pb" -v d="${to##*:}" -v a="$(ip_hex "${to%:*}")" -v used="$used" \
           '$2 == p && $3 == d && $4 == a && index(used, " " $1 " ") == 0 { print $1; exit }' <<<"$fl")
    if [ -n "$fh" ]; then
      batch+="delete rule inet filter miniupnpd handle $fh"$'\n'; used+="$fh "
    else
      log "drop-dnat: no accept rule for $proto to $to in chain miniupnpd (deleting the DNAT rule only)"
    fi
  done <<<"$dn"
  [ "$n" -gt 0 ] || { log "drop-dnat: no DNAT rule for $proto $port"; return 1; }
  nsx "$NS_GW" nft -f - <<<"$batch" || die "drop-dnat: nft delete failed"
  log "drop-dnat: $proto $port: deleted $(grep -c . <<<"$batch") rule(s) behind miniupnpd's back"
}

# ---- gateway faults: reboot, outage, WAN renumbering ------------------------------------
# What miniupnpd 2.3.1 sends on lan0 (measured here), all from 10.77.0.1:
#   start      one PCP ANNOUNCE (24 bytes: version 2, opcode 0x80, result 0, lifetime 0,
#              epoch 0) from :5351 to 224.0.0.1:5350 - no NAT-PMP notice; ssdp:alive for
#              its 13 NTs, twice 250 ms apart, then every notify_interval, from an ephemeral
#              port (new at each start), BOOTID.UPNP.ORG = its start time in Unix seconds,
#              CONFIGID.UPNP.ORG 1337
#   SIGTERM    ssdp:byebye for the 13 NTs (old BOOTID); its rules and lease file stay, and
#              a restart reloads them (hence the flush below). SIGKILL: nothing.
#   wan0 address added/removed (its netlink watcher) or SIGUSR1: the STUN check again
#              (blocking: 3 x 3 s without an answer), then one NAT-PMP notice (12 bytes,
#              opcode 128, the address STUN found) and one PCP ANNOUNCE, from :5351 to
#              224.0.0.1:5350, and the epoch (NAT-PMP and PCP share it) restarts at 0.
#              Nothing is repeated; no SSDP message; BOOTID unchanged.
readonly GW_OFF_TABLE=lab_gw_off
# gw_log_has FROM REGEX: miniupnpd's log from byte FROM on has a line matching REGEX
gw_log_has() { grep -qE -- "$2" < <(tail -c "+$1" "$STATE/miniupnpd.log" 2>/dev/null); }
gw_log_end() { echo $(($(stat -c %s "$STATE/miniupnpd.log" 2>/dev/null || echo 0) + 1)); }

cmd_gw_stop() {
  local sig=TERM drop=0 a
  for a in "$@"; do
    case "$a" in --kill) sig=KILL ;; --drop) drop=1 ;; *) die "gw-stop: unknown option '$a'" ;; esac
  done
  ns_exists "$NS_GW" || die "namespace $NS_GW does not exist (run up)"
  # the outage starts now, unless the gateway is already down
  [ -e "$STATE/gw-down-since" ] || now_us >"$STATE/gw-down-since"
  stop_pid miniupnpd "$STATE/miniupnpd.pid" "$sig"
  # what a reboot loses: the chains are in gw.nft and stay, their rules go
  nsx "$NS_GW" nft -f - <<'EOF' || die "gw-stop: cannot flush miniupnpd's chains"
flush chain inet filter miniupnpd
flush chain inet filter prerouting_miniupnpd
flush chain inet filter postrouting_miniupnpd
EOF
  rm -f "$STATE/upnp.leases"
  if [ "$drop" = 1 ]; then
    # a gateway that is off: no answer (not even ICMP) and no routing, either side
    nsx "$NS_GW" nft -f - <<EOF || die "gw-stop: cannot add table $GW_OFF_TABLE"
table inet $GW_OFF_TABLE {
  chain input { type filter hook input priority -50; policy accept; iifname { "lan0", "wan0" } drop; }
  chain forward { type filter hook forward priority -50; policy accept; iifname { "lan0", "wan0" } drop; }
}
EOF
  fi
  log "gw-stop: miniupnpd stopped (SIG$sig), its rules and lease file deleted$([ "$drop" = 0 ] || echo ', gateway drops everything')"
}

cmd_gw_start() {
  local since ms
  ns_exists "$NS_GW" || die "namespace $NS_GW does not exist (run up)"
  if nsx "$NS_GW" nft list table inet "$GW_OFF_TABLE" >/dev/null 2>&1; then
    nsx "$NS_GW" nft delete table inet "$GW_OFF_TABLE" || die "gw-start: cannot delete table $GW_OFF_TABLE"
  fi
  start_miniupnpd || return 1
  since=$(cat "$STATE/gw-down-since" 2>/dev/null) || { log "gw-start: miniupnpd runs"; return 0; }
  ms=$((($(now_us) - since) / 1000))
  echo "$ms" >"$STATE/gw-down-ms"
  rm -f "$STATE/gw-down-since"
  log "gw-start: miniupnpd answers again; the gateway was down for $ms ms"
}

cmd_gw_reboot() {
  [ "${1:-}" = --kill ] || [ $# -eq 0 ] || die "gw-reboot: unknown option '$1'"
  cmd_gw_stop "$@" && cmd_gw_start
}

# gw_await_stun FROM WHAT: wait (at most 15 s: a STUN check without answer takes 9 s) for
# miniupnpd to finish the STUN check it started after log byte FROM; 1 if it failed
gw_await_stun() {
  local from=$1 what=$2 pid end='Port forwarding is now (en|dis)abled|STUN: \.\.\. done|Performing STUN failed|Cannot get IP address for ext'
  pid=$(cat "$STATE/miniupnpd.pid")
  if ! wait_until 15 "$pid" gw_log_has "$from" "$end"; then
    log "$what: miniupnpd logged no end of a STUN check within 15 s"; return 1
  fi
  if gw_log_has "$from" 'Port forwarding is now disabled|Performing STUN failed|Cannot get IP address for ext'; then
    tail -c "+$from" "$STATE/miniupnpd.log" | grep -E 'STUN|Port forwarding' | tail -n 5 >&2
    log "$what: miniupnpd's STUN check failed: it refuses mappings and reports a stale address"
    return 1
  fi
}

cmd_gw_announce() {
  local from t0
  pid_alive miniupnpd "$STATE/miniupnpd.pid" || die "gw-announce: miniupnpd is not running"
  from=$(gw_log_end) t0=$(now_us)
  kill -USR1 "$(cat "$STATE/miniupnpd.pid")"
  gw_await_stun "$from" gw-announce || return 1
  log "gw-announce: miniupnpd re-checked its address and announced it ($((($(now_us) - t0) / 1000)) ms)"
}

ip_int() { local IFS=. o; read -r -a o <<<"$1"; echo $(((10#${o[0]} << 24) | (10#${o[1]} << 16) | (10#${o[2]} << 8) | 10#${o[3]})); }
in_net() { [ $(($(ip_int "$1") >> (32 - $3))) = $(($(ip_int "$2") >> (32 - $3))) ]; }   # addr net len

# cmd_gw_wan_address ADDR[/LEN]: old address off, new one on (as dhclient-script does), in
# two steps miniupnpd sees apart: first it has no address (it reports the old one, as the
# STUN result it keeps, and refuses mappings), then it checks the new one by STUN. Where
# the new address is outside the link's /24, on-link routes connect both sides.
cmd_gw_wan_address() {
  local spec=${1:-} addr len o peer_ns peer_dev peer_addr old from t0 t1 running=0 pid
  [[ $spec =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(/([0-9]{1,2}))?$ ]] ||
    die "gw-wan-address: want an IPv4 ADDR[/LEN], got '$spec'"
  for o in 1 2 3 4; do [ $((10#${BASH_REMATCH[$o]})) -le 255 ] || die "gw-wan-address: bad address '$spec'"; done
  addr=$((10#${BASH_REMATCH[1]})).$((10#${BASH_REMATCH[2]})).$((10#${BASH_REMATCH[3]})).$((10#${BASH_REMATCH[4]}))
  len=$((10#${BASH_REMATCH[6]:-24}))
  if [ "$len" -lt 8 ] || [ "$len" -gt 30 ]; then die "gw-wan-address: prefix length must be 8-30"; fi
  o=${addr%%.*}
  if [ "$o" = 0 ] || [ "$o" = 127 ] || [ "$o" -ge 224 ]; then die "gw-wan-address: '$addr' is no unicast host address"; fi
  in_net "$addr" "$LAN_GW" 24 && die "gw-wan-address: '$addr' is in the lan's 10.77.0.0/24"
  if [ "$TOPOLOGY" = single ]; then
    peer_ns=$NS_WAN peer_dev=eth0 peer_addr=$WAN_A
    if [ "$addr" = "$WAN_A" ] || [ "$addr" = "$WAN_B" ]; then die "gw-wan-address: $addr is ns wan's"; fi
  else
    peer_ns=$NS_ISP peer_dev=cpe0 peer_addr=$ISP_A
    if [ "$addr" = "$ISP_A" ] || [ "$addr" = "$ISP_B" ] || in_net "$addr" "$WAN_GW" 24; then
      die "gw-wan-address: $addr is taken in the ISP"
    fi
  fi
  { ns_exists "$NS_GW" && ns_exists "$peer_ns"; } || die "the lab is not up"
  old=$(nsx "$NS_GW" ip -4 -o addr show dev wan0 | awk '{print $4}' | paste -sd ' ')
  if [ "$old" = "$addr/$len" ]; then log "gw-wan-address: wan0 has $addr/$len already"; return 0; fi
  pid_alive miniupnpd "$STATE/miniupnpd.pid" && running=1
  from=$(gw_log_end) t0=$(now_us)
  nsx "$NS_GW" ip addr flush dev wan0
  # the other side forgets the old address's MAC: miniupnpd's DNAT rules match any
  # destination arriving on wan0, so a stale entry would keep the old address forwarding
  for o in $old; do
    ip -n "$peer_ns" neigh flush to "${o%/*}" dev "$peer_dev" || log "gw-wan-address: cannot flush ${o%/*} from $peer_ns's neighbours"
  done
  # let miniupnpd handle the loss on its own (else both changes may reach it as one)
  if [ "$running" = 1 ]; then
    pid=$(cat "$STATE/miniupnpd.pid")
    wait_until 5 "$pid" gw_log_has "$from" 'Cannot get IP address for ext' ||
      log "gw-wan-address: miniupnpd did not log the loss of wan0's address within 5 s"
  fi
  # on-link routes of an earlier renumbering go; new ones if the address is off the /24
  ip -n "$NS_GW" route flush proto static
  ip -n "$peer_ns" route flush proto static
  in_net "$addr" "$peer_addr" 24 || ip -n "$peer_ns" route replace "$addr/32" dev "$peer_dev" proto static
  if ! in_net "$peer_addr" "$addr" "$len"; then
    if [ "$TOPOLOGY" = single ]; then ip -n "$NS_GW" route replace "${peer_addr%.*}.0/24" dev wan0 proto static
    else ip -n "$NS_GW" route replace default via "$ISP_A" dev wan0 onlink proto static; fi
  fi
  from=$(gw_log_end) t1=$(now_us)
  nsx "$NS_GW" ip addr add "$addr/$len" dev wan0
  # the default route went with the last address (double topology)
  if [ "$TOPOLOGY" = double ] && in_net "$peer_addr" "$addr" "$len"; then
    ip -n "$NS_GW" route replace default via "$ISP_A" dev wan0
  fi
  echo "$addr" >"$STATE/gw-wan-address"
  if [ "$running" = 0 ]; then
    log "gw-wan-address: wan0 ${old:-none} -> $addr/$len (miniupnpd not running: it checks it at its start)"
    return 0
  fi
  gw_await_stun "$from" gw-wan-address || return 1
  log "gw-wan-address: wan0 ${old:-none} -> $addr/$len; without address for $(((t1 - t0) / 1000)) ms, miniupnpd re-checked the new one in $((($(now_us) - t1) / 1000)) ms"
}

# ---- subcommands ---------------------------------------------------------------------
is_up() {
  local ns
  [ "$(cat "$STATE/topology" 2>/dev/null)" = "$TOPOLOGY" ] || return 1
  [ "$(cat "$STATE/rogue" 2>/dev/null || echo 0)" = "$ROGUE" ] || return 1
  [ "$(cat "$STATE/doorbell" 2>/dev/null || echo 0)" = "$DOORBELL" ] || return 1
  [ "$(cat "$STATE/third-party" 2>/dev/null || echo secure)" = "$THIRD_PARTY" ] || return 1
  for ns in "${NS_LIST[@]}"; do ns_exists "$ns" || return 1; done
  pid_alive turnserver "$STATE/coturn.pid" && pid_alive miniupnpd "$STATE/miniupnpd.pid" &&
    { [ "$TOPOLOGY" = single ] || pid_alive turnserver "$STATE/coturn-isp.pid"; }
}

cmd_up() {
  local t0 ns fwd
  t0=$(now_us)
  if is_up; then log "already up ($TOPOLOGY, state $STATE)"; return 0; fi
  for ns in "${ALL_NS[@]}"; do
    if ns_exists "$ns"; then log "partial (or other topology) lab found, tearing it down first"; cmd_down; break; fi
  done
  mkdir -p "$STATE"
  rm -f "$STATE"/{gw.nft,isp.nft,miniupnpd.conf,upnp.leases,turndb,coturn.log,coturn-isp.log,miniupnpd.log}
  echo "$TOPOLOGY" >"$STATE/topology"
  echo "$ROGUE" >"$STATE/rogue"
  echo "$DOORBELL" >"$STATE/doorbell"
  echo "$THIRD_PARTY" >"$STATE/third-party"
  write_configs
  # from here on a failure tears down whatever exists
  trap 'log "up failed, tearing down"; cmd_down' ERR
  set -E
  for ns in "${NS_LIST[@]}"; do
    ip netns add "$ns"
    fwd=0
    case "$ns" in "$NS_GW" | "$NS_ISP") fwd=1 ;; esac   # the routers
    # a new namespace copies the host's IPv4 conf (rp_filter may be 1 or 2): set it
    nsx "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
      net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 net.ipv4.ip_forward=$fwd
  done
  # veth pairs created straight inside the namespaces: nothing in the root namespace
  if lan_bridged; then
    # lan0 becomes a bridge: the gateway's LAN a segment that more than one host shares.
    # No multicast snooping: there is no IGMP querier, and SSDP must reach every port.
    local ports=(lanp)
    ip link add lanp netns "$NS_GW" type veth peer name eth0 netns "$NS_LAN"
    if [ "$ROGUE" = 1 ]; then
      ip link add roguep netns "$NS_GW" type veth peer name eth0 netns "$NS_ROGUE"
      ports+=(roguep)
    fi
    if [ "$DOORBELL" = 1 ]; then
      ip link add bellp netns "$NS_GW" type veth peer name eth0 netns "$NS_DOORBELL"
      ports+=(bellp)
    fi
    ip -n "$NS_GW" -batch - < <(
      echo "link add lan0 type bridge mcast_snooping 0"
      for p in "${ports[@]}"; do echo "link set $p master lan0"; echo "link set $p up"; done)
    # with br_netfilter loaded (by anything on the host), bridged frames would pass the
    # gateway's forward chain, whose policy drops lan-to-lan traffic
    if nsx "$NS_GW" test -d /proc/sys/net/bridge; then
      nsx "$NS_GW" sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-arptables=0 \
        net.bridge.bridge-nf-call-ip6tables=0
    fi
    [ "$ROGUE" = 0 ] || ip -n "$NS_ROGUE" -batch - <<EOF
link set lo up
addr add $ROGUE_HOST/24 dev eth0
link set eth0 up
route add default via $LAN_GW
EOF
    [ "$DOORBELL" = 0 ] || ip -n "$NS_DOORBELL" -batch - <<EOF
link set lo up
link set eth0 address $DOORBELL_MAC
addr add $DOORBELL_HOST/24 dev eth0
link set eth0 up
route add default via $LAN_GW
EOF
  else
    ip link add lan0 netns "$NS_GW" type veth peer name eth0 netns "$NS_LAN"
  fi
  if [ "$TOPOLOGY" = double ]; then
    ip link add wan0 netns "$NS_GW" type veth peer name cpe0 netns "$NS_ISP"
    ip link add wan0 netns "$NS_ISP" type veth peer name eth0 netns "$NS_WAN"
  else
    ip link add wan0 netns "$NS_GW" type veth peer name eth0 netns "$NS_WAN"
  fi
  # The coturns start as soon as their addresses exist, and come up (~0.1 s) while the
  # rest is configured: miniupnpd's startup STUN check decides whether it allows any
  # mapping, so the one it uses must be there first. The other one is awaited last.
  ip -n "$NS_WAN" -batch - <<EOF
link set lo up
addr add $WAN_A/24 dev eth0
addr add $WAN_B/24 dev eth0
link set eth0 up
EOF
  launch_coturn coturn
  if [ "$TOPOLOGY" = double ]; then
    ip -n "$NS_ISP" -batch - <<EOF
link set lo up
addr add $ISP_A/24 dev cpe0
addr add $ISP_B/24 dev cpe0
addr add $WAN_GW/24 dev wan0
link set cpe0 up
link set wan0 up
EOF
    launch_coturn coturn-isp
    nsx "$NS_ISP" nft -f "$STATE/isp.nft"
  fi
  ip -n "$NS_LAN" -batch - <<EOF
link set lo up
addr add $LAN_HOST/24 dev eth0
link set eth0 up
route add default via $LAN_GW
EOF
  ip -n "$NS_GW" -batch - <<EOF
link set lo up
addr add $LAN_GW/24 dev lan0
addr add $GW_EXT/24 dev wan0
link set lan0 up
link set wan0 up
$([ "$TOPOLOGY" = single ] || echo "route add default via $ISP_A")
EOF
  nsx "$NS_GW" nft -f "$STATE/gw.nft"
  if [ "$DOORBELL" = 1 ]; then
    echo "$DOORBELL_HOST" >"$STATE/doorbell-address"
    doorbell_hello "$DOORBELL_HOST"
  fi
  await_coturn "$STUN_COTURN"
  start_miniupnpd
  [ "$TOPOLOGY" = single ] || await_coturn coturn
  trap - ERR
  log "up ($TOPOLOGY$([ "$ROGUE" = 0 ] || echo ', rogue')$([ "$DOORBELL" = 0 ] || echo ', doorbell'), third-party $THIRD_PARTY) in $((($(now_us) - t0) / 1000)) ms: ${NS_LIST[*]} state=$STATE"
}

# topology-independent: whatever of either topology exists goes (the reaper may not know)
cmd_down() {
  local ns pid i comm
  trap - ERR
  cmd_reflector_stop
  cmd_rogue_stop
  cmd_doorbell_stop
  cmd_scripted_igd_stop
  stop_pid miniupnpd "$STATE/miniupnpd.pid"
  stop_pid turnserver "$STATE/coturn.pid"
  stop_pid turnserver "$STATE/coturn-isp.pid"
  for ns in "${ALL_NS[@]}"; do
    ns_exists "$ns" || continue
    # `ip netns del` does not stop what runs inside; a leftover process (a test helper, a
    # natkeeper that outlived its test) would keep the namespace alive. These were all
    # started inside this lab's namespaces: end each by PID.
    for ((i = 0; i < 3; i++)); do
      pid=$(ip netns pids "$ns" 2>/dev/null) || true
      [ -n "$pid" ] || break
      for pid in $pid; do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        if [ "$i" -lt 2 ]; then
          log "ending leftover pid $pid ($comm) in $ns"; kill -TERM "$pid" 2>/dev/null || true
        else
          log "killing leftover pid $pid ($comm) in $ns"; kill -KILL "$pid" 2>/dev/null || true
        fi
      done
      nap 0.3
    done
    ip netns del "$ns" 2>/dev/null || { nap 0.1; ip netns del "$ns"; } || log "cannot delete netns $ns"
  done
  rm -f "$STATE"/{miniupnpd.pid,miniupnpd.ownpid,coturn.pid,coturn.ownpid,coturn-isp.pid,coturn-isp.ownpid,topology,rogue} 2>/dev/null || true
  rm -f "$STATE"/{gw-down-since,gw-wan-address,doorbell,doorbell-address,third-party} 2>/dev/null || true
  if [ -d "$STATE" ]; then log "down (logs kept in $STATE)"; else log "down"; fi
}

cmd_status() {
  local ns name rc=0
  echo "topology: $TOPOLOGY$([ "$ROGUE" = 0 ] || echo ' + rogue')$([ "$DOORBELL" = 0 ] || echo ' + doorbell')"
  echo "third-party: $THIRD_PARTY"
  for ns in "${NS_LIST[@]}"; do
    if ns_exists "$ns"; then
      echo "ns $ns: $(ip -n "$ns" -br -4 addr show | awk '$1 != "lo" {$2=""; print}' | tr -s ' ' | paste -sd ';')"
    else echo "ns $ns: absent"; rc=1; fi
  done
  for name in coturn coturn-isp; do
    [ "$name" = coturn ] || [ "$TOPOLOGY" = double ] || continue
    if pid_alive turnserver "$STATE/$name.pid"; then echo "$name: pid $(cat "$STATE/$name.pid")"
    else echo "$name: not running"; rc=1; fi
  done
  if pid_alive miniupnpd "$STATE/miniupnpd.pid"; then echo "miniupnpd: pid $(cat "$STATE/miniupnpd.pid")"
  else echo "miniupnpd: not running"; rc=1; fi
  # the reflector is optional: only a started one that died counts as a fault
  if reflector_alive; then echo "reflector: pid $(cat "$STATE/reflector.pid") ($(cat "$STATE/reflector.bin"))"
  elif [ -e "$STATE/reflector.comm" ]; then echo "reflector: died (log: $STATE/reflector.log)"; rc=1
  else echo "reflector: not started"; fi
  if [ "$ROGUE" = 1 ]; then
    for name in "${ROGUE_DAEMONS[@]}"; do
      if rogue_alive "$name"; then echo "$name: pid $(cat "$STATE/$name.pid")"
      elif [ -e "$STATE/$name.comm" ]; then echo "$name: died (log: $STATE/$name.log)"; rc=1
      else echo "$name: not started"; fi
    done
  fi
  if [ "$DOORBELL" = 1 ]; then
    # optional too: a started listener keeps its pid file until doorbell-stop
    if doorbell_alive; then echo "doorbell listener: pid $(cat "$STATE/doorbell.pid")"
    elif [ -e "$STATE/doorbell.pid" ]; then echo "doorbell listener: died (log: $STATE/doorbell.log)"; rc=1
    else echo "doorbell listener: not started"; fi
  fi
  # optional too: a started one keeps its pid file until scripted-igd-stop
  if scripted_igd_alive; then echo "scripted IGD: pid $(cat "$STATE/scripted-igd.pid")"
  elif [ -e "$STATE/scripted-igd.pid" ]; then echo "scripted IGD: died (log: $STATE/scripted-igd.log)"; rc=1
  else echo "scripted IGD: not started"; fi
  if ns_exists "$NS_GW"; then
    echo "dnat rules: $(cmd_rules | wc -l)"
  fi
  echo "state: $STATE"
  return $rc
}

# One DNAT rule per line, as nft prints it, miniupnpd's and then the scripted IGD's (while its
# table exists), e.g.
#   iif "wan0" @nh,72,8 0x11 th dport 7076 dnat ip to 10.77.0.2:7076
#   iifname "wan0" udp dport 7076 meta mark set 0x00005c1d dnat to 10.77.0.2:7076
# --brief: "udp 7076 10.77.0.2:7076" (miniupnpd's proto from the IPv4 protocol byte: 0x11
# udp, 0x6 tcp)
cmd_rules() {
  ns_exists "$NS_GW" || die "namespace $NS_GW does not exist"
  local out
  out=$(nsx "$NS_GW" nft list chain inet filter prerouting_miniupnpd) || die "nft list failed"
  out+=$'\n'$(nsx "$NS_GW" nft list chain ip "$SCRIPTED_IGD_TABLE" prerouting 2>/dev/null || true)
  if [ "${1:-}" = --brief ]; then
    awk '/dnat/ {
           proto = "?"; port = "?"; to = "?"
           for (i = 1; i < NF; i++) {
             if ($i == "@nh,72,8") proto = ($(i+1) == "0x11" ? "udp" : $(i+1) == "0x6" ? "tcp" : $(i+1))
             if (($i == "udp" || $i == "tcp") && $(i+1) == "dport") proto = $i
             if ($i == "dport") port = $(i+1)
             if ($i == "to") to = $(i+1)
           }
           print proto, port, to
         }' <<<"$out"
  else
    sed -n '/dnat/ { s/^[[:space:]]*//; p }' <<<"$out"
  fi
}

# Internal, started by lib.sh's lab_begin before `up` (double-forked, setsid, so a kill of
# the test's process tree misses it): if the test shell that owns this lab dies without
# running its EXIT trap (SIGKILL, e.g. a ctest timeout), tear the lab down. lab_end stops
# it by PID; it also ends by itself once the state dir is gone, or after LAB_REAP_MAX s.
cmd_reap_after() {
  local owner=$1 start i
  [[ $owner =~ ^[0-9]+$ ]] || die "reap-after: bad pid '$owner'"
  echo "$BASHPID" >"$STATE/reaper.pid"
  start=$(proc_stat "$owner" 22) || start=gone
  for ((i = 0; i < ${LAB_REAP_MAX:-7200}; i++)); do
    [ -d "$STATE" ] || return 0                       # lab_end finished and cleaned up
    if [ "$start" = gone ] || [ "$(proc_stat "$owner" 22 || true)" != "$start" ] ||
       [[ $(proc_stat "$owner" 3 || true) == [ZX] ]]; then
      log "owner pid $owner is gone without tearing the lab down: tearing down"
      lock; cmd_down; return 0
    fi
    nap 1
  done
  log "lab still there after ${LAB_REAP_MAX:-7200} s: tearing down"; lock; cmd_down
}

[ $# -ge 1 ] || usage
cmd=$1; shift
if [ "$cmd" = ns ]; then
  case "${1:-}" in
    lan) echo "$NS_LAN" ;; gw) echo "$NS_GW" ;; isp) echo "$NS_ISP" ;; wan) echo "$NS_WAN" ;; rogue) echo "$NS_ROGUE" ;;
    doorbell) echo "$NS_DOORBELL" ;;
    *) usage ;;
  esac
  exit 0
fi
[ "$(id -u)" = 0 ] || die "must run as root"
for t in ip nft ss turnserver setsid mount flock realpath; do command -v "$t" >/dev/null || die "missing command: $t"; done
[ -x "$MINIUPNPD" ] || die "missing $MINIUPNPD (package miniupnpd-nftables)"
# one state-changing subcommand at a time per lab (e.g. the reaper's `down` waits for an
# `up` still running); the daemons must not inherit the lock (see close_fds)
lock() {
  mkdir -p "$STATE"
  exec {LOCK_FD}>"$STATE/lock"
  flock -w 20 "$LOCK_FD" || die "another lab.sh holds $STATE/lock for over 20 s"
}
case "$cmd" in up | down | stop-gateway | start-gateway | restart-gateway | reflector-start | reflector-stop) lock ;; esac
case "$cmd" in gw-reboot | gw-stop | gw-start | gw-wan-address | gw-announce) lock ;; esac
case "$cmd" in rogue-start | rogue-stop | rogue-counts) lock ;; esac
case "$cmd" in doorbell-listen | doorbell-stop | doorbell-counts | doorbell-renumber | gw-third-party) lock ;; esac
case "$cmd" in scripted-igd-start | scripted-igd-stop | scripted-igd-ctl) lock ;; esac
# `up` builds $LAB_TOPOLOGY; everything else works on the topology the lab was built with
# (read after taking the lock, so it is not read halfway through an `up`)
if [ "$cmd" = up ]; then
  set_topology "${LAB_TOPOLOGY:-single}"; set_rogue "${LAB_ROGUE:-0}"; set_doorbell "${LAB_DOORBELL:-0}"
  set_third_party "${LAB_THIRD_PARTY:-secure}"
else
  set_topology "$(recorded_topology)"; set_rogue "$(recorded_rogue)"; set_doorbell "$(recorded_doorbell)"
  set_third_party "$(recorded_third_party)"
fi
case "$cmd" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  rules) cmd_rules "$@" ;;
  stop-gateway) stop_pid miniupnpd "$STATE/miniupnpd.pid" ;;
  start-gateway) start_miniupnpd ;;
  restart-gateway) stop_pid miniupnpd "$STATE/miniupnpd.pid"; start_miniupnpd ;;
  reflector-start) cmd_reflector_start "$@" ;;
  reflector-stop) cmd_reflector_stop ;;
  drop-dnat) cmd_drop_dnat "$@" ;;
  gw-reboot) cmd_gw_reboot "$@" ;;
  gw-stop) cmd_gw_stop "$@" ;;
  gw-start) cmd_gw_start ;;
  gw-wan-address) cmd_gw_wan_address "$@" ;;
  gw-announce) cmd_gw_announce ;;
  rogue-start) cmd_rogue_start "$@" ;;
  rogue-stop) cmd_rogue_stop ;;
  rogue-counts) cmd_rogue_counts ;;
  doorbell-listen) cmd_doorbell_listen "$@" ;;
  doorbell-counts) cmd_doorbell_counts ;;
  doorbell-stop) cmd_doorbell_stop ;;
  doorbell-renumber) cmd_doorbell_renumber "$@" ;;
  gw-third-party) cmd_gw_third_party "$@" ;;
  wan-send) cmd_wan_send "$@" ;;
  scripted-igd-start) cmd_scripted_igd_start "$@" ;;
  scripted-igd-stop) cmd_scripted_igd_stop ;;
  scripted-igd-ctl) cmd_scripted_igd_ctl "$@" ;;
  reap-after) cmd_reap_after "${1:-}" ;;
  *) usage ;;
esac
