#!/usr/bin/env bash
# lab.sh - the lab network natkeeper's end-to-end tests run in.
#
#   ns lan                 ns gw                                      ns wan ("internet")
#   eth0 10.77.0.2/24 ---- lan0 10.77.0.1/24 | wan0 203.0.113.1/24 ---- eth0 203.0.113.2/24
#   default via .1         ip_forward, nft NAT + filter, miniupnpd       + 203.0.113.3/24
#                          UPnP-IGD http :5000 + SSDP, NAT-PMP/PCP :5351  coturn STUN :3478/:3479
#
# Usage: lab.sh up|down|status|stop-gateway|start-gateway|restart-gateway|rules [--brief]|ns lan|gw|wan
#        lab.sh reap-after PID   (internal: tear the lab down once process PID is gone; see lib.sh)
#
# Environment:
#   LAB_PREFIX  namespace-name prefix, required, unique per lab ([A-Za-z0-9_-], at most 40 chars).
#               Labs with different prefixes run side by side: the veth pairs are created
#               straight inside the namespaces, so no interface name is shared.
#   LAB_STATE   directory for configs, logs and pid files
#               (default ${TMPDIR:-/tmp}/natkeeper-lab-$LAB_PREFIX).
#
# Root only (except `ns`). Needs iproute2, nftables, miniupnpd-nftables, coturn, util-linux.
# Daemons run in the foreground under `ip netns exec`, detached with setsid, logging to
# $LAB_STATE; they are stopped by recorded PID (checked against /proc/PID/comm). IPv4 only.
set -euo pipefail

readonly LAN_HOST=10.77.0.2 LAN_GW=10.77.0.1 WAN_GW=203.0.113.1 WAN_A=203.0.113.2 WAN_B=203.0.113.3
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
readonly NS_LAN=${PREFIX}lan NS_GW=${PREFIX}gw NS_WAN=${PREFIX}wan
STATE=${LAB_STATE:-${TMPDIR:-/tmp}/natkeeper-lab-$PREFIX}

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
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }                          # comm (field 2) may contain spaces and ')'
  read -r -a f <<<"$s"
  echo "${f[$(($2 - 3))]}"
}
pid_alive() {   # comm pidfile
  local pid st
  pid=$(cat "$2" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
  st=$(proc_stat "$pid" 3) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
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

# ---- configuration -------------------------------------------------------------------
write_configs() {
  # miniupnpd's nftables backend does not create its table or chains (Debian's nft_init.sh
  # only works with the full "miniupnpd" package). Names are its built-in defaults.
  cat >"$STATE/gw.nft" <<'EOF'
table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
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
  # 203.0.113.0/24 is reserved (TEST-NET-3): miniupnpd refuses every mapping on a reserved
  # external address unless its startup STUN check (against coturn in ns wan, RFC 5780
  # CHANGE-REQUEST) finds no filtering. Hence coturn starts first.
  cat >"$STATE/miniupnpd.conf" <<EOF
ext_ifname=wan0
listening_ip=lan0
http_port=5000
enable_upnp=yes
enable_natpmp=yes
secure_mode=yes
system_uptime=no
notify_interval=30
clean_ruleset_interval=600
min_lifetime=120
max_lifetime=86400
ipv6_disable=yes
ext_perform_stun=yes
ext_stun_host=$WAN_A
ext_stun_port=3478
lease_file=$STATE/upnp.leases
uuid=3f1c7a2e-5b9d-4c61-9e0a-77c0ffee0001
friendly_name=natkeeper lab gateway
allow 1024-65535 10.77.0.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
  # Keep test ports >= 1024: a NAT-PMP/PCP request for a denied internal port makes
  # miniupnpd 2.3.1 walk all 65535 external ports and stop answering for about a minute.
  : >"$STATE/turndb"
}

# ---- daemons ---------------------------------------------------------------------------
listening() {   # ns want...   every "proto local-addr:port" in want is a listening socket
  local ns=$1 have w; shift
  have=$(nsx "$ns" ss -Hlnut 2>/dev/null | awk '{print $1, $5}') || return 1
  for w in "$@"; do grep -qxF "$w" <<<"$have" || return 1; done
}

start_coturn() {
  pid_alive turnserver "$STATE/coturn.pid" && return 0
  ns_exists "$NS_WAN" || die "namespace $NS_WAN does not exist (run up)"
  # -n: no config file. Two -L addresses switch RFC 5780 (CHANGE-REQUEST) on.
  # --userdb: a private (empty) database instead of /var/lib/turn.
  close_fds setsid ip netns exec "$NS_WAN" turnserver -n --stun-only \
    -L "$WAN_A" -L "$WAN_B" -p 3478 --alt-listening-port 3479 \
    --no-cli --no-tls --no-dtls --no-tcp --userdb "$STATE/turndb" \
    --log-file stdout --simple-log --pidfile "$STATE/coturn.ownpid" \
    </dev/null >"$STATE/coturn.log" 2>&1 &
  local bg=$!
  disown "$bg"
  if ! wait_until 5 "$bg" listening "$NS_WAN" "udp $WAN_A:3478" "udp $WAN_A:3479" "udp $WAN_B:3478" "udp $WAN_B:3479" ||
     ! record_pid turnserver "$bg" "$STATE/coturn.ownpid" "$STATE/coturn.pid"; then
    kill -TERM "$bg" 2>/dev/null || true
    tail -n 20 "$STATE/coturn.log" >&2 || true
    log "coturn did not come up on $WAN_A/$WAN_B ports 3478/3479"
    return 1
  fi
}

start_miniupnpd() {
  pid_alive miniupnpd "$STATE/miniupnpd.pid" && return 0
  ns_exists "$NS_GW" || die "namespace $NS_GW does not exist (run up)"
  pid_alive turnserver "$STATE/coturn.pid" || start_coturn || return 1
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
  if [ "$ok" = 1 ] && ! tail -c "+$from" "$logf" | grep -q 'Port forwarding is now enabled'; then
    log "miniupnpd did not log 'Port forwarding is now enabled' (STUN check against coturn failed?)"
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

# ---- subcommands ---------------------------------------------------------------------
is_up() {
  ns_exists "$NS_LAN" && ns_exists "$NS_GW" && ns_exists "$NS_WAN" &&
    pid_alive turnserver "$STATE/coturn.pid" && pid_alive miniupnpd "$STATE/miniupnpd.pid"
}

cmd_up() {
  local t0 ns
  t0=$(now_us)
  if is_up; then log "already up (state $STATE)"; return 0; fi
  if ns_exists "$NS_LAN" || ns_exists "$NS_GW" || ns_exists "$NS_WAN"; then
    log "partial lab found, tearing it down first"; cmd_down
  fi
  mkdir -p "$STATE"
  rm -f "$STATE"/{gw.nft,miniupnpd.conf,upnp.leases,turndb,coturn.log,miniupnpd.log}
  write_configs
  # from here on a failure tears down whatever exists
  trap 'log "up failed, tearing down"; cmd_down' ERR
  set -E
  for ns in "$NS_LAN" "$NS_GW" "$NS_WAN"; do
    ip netns add "$ns"
    # a new namespace copies the host's IPv4 conf (rp_filter may be 1 or 2): set it
    nsx "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
      net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
  # veth pairs created straight inside the namespaces: nothing in the root namespace
  ip link add lan0 netns "$NS_GW" type veth peer name eth0 netns "$NS_LAN"
  ip link add wan0 netns "$NS_GW" type veth peer name eth0 netns "$NS_WAN"
  ip -n "$NS_LAN" -batch - <<EOF
link set lo up
addr add $LAN_HOST/24 dev eth0
link set eth0 up
route add default via $LAN_GW
EOF
  ip -n "$NS_GW" -batch - <<EOF
link set lo up
addr add $LAN_GW/24 dev lan0
addr add $WAN_GW/24 dev wan0
link set lan0 up
link set wan0 up
EOF
  ip -n "$NS_WAN" -batch - <<EOF
link set lo up
addr add $WAN_A/24 dev eth0
addr add $WAN_B/24 dev eth0
link set eth0 up
EOF
  nsx "$NS_GW" sysctl -qw net.ipv4.ip_forward=1
  nsx "$NS_GW" nft -f "$STATE/gw.nft"
  # coturn first: miniupnpd's startup STUN check decides whether it allows any mapping
  start_coturn
  start_miniupnpd
  trap - ERR
  log "up in $((($(now_us) - t0) / 1000)) ms: lan=$NS_LAN gw=$NS_GW wan=$NS_WAN state=$STATE"
}

cmd_down() {
  local ns pid i comm
  trap - ERR
  stop_pid miniupnpd "$STATE/miniupnpd.pid"
  stop_pid turnserver "$STATE/coturn.pid"
  for ns in "$NS_LAN" "$NS_GW" "$NS_WAN"; do
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
  rm -f "$STATE"/{miniupnpd.pid,miniupnpd.ownpid,coturn.pid,coturn.ownpid} 2>/dev/null || true
  if [ -d "$STATE" ]; then log "down (logs kept in $STATE)"; else log "down"; fi
}

cmd_status() {
  local ns rc=0
  for ns in "$NS_LAN" "$NS_GW" "$NS_WAN"; do
    if ns_exists "$ns"; then
      echo "ns $ns: $(ip -n "$ns" -br -4 addr show | awk '$1 != "lo" {$2=""; print}' | tr -s ' ' | paste -sd ';')"
    else echo "ns $ns: absent"; rc=1; fi
  done
  if pid_alive turnserver "$STATE/coturn.pid"; then echo "coturn: pid $(cat "$STATE/coturn.pid")"
  else echo "coturn: not running"; rc=1; fi
  if pid_alive miniupnpd "$STATE/miniupnpd.pid"; then echo "miniupnpd: pid $(cat "$STATE/miniupnpd.pid")"
  else echo "miniupnpd: not running"; rc=1; fi
  if ns_exists "$NS_GW"; then
    echo "dnat rules: $(cmd_rules | wc -l)"
  fi
  echo "state: $STATE"
  return $rc
}

# One DNAT rule per line, as nft prints it, e.g.
#   iif "wan0" @nh,72,8 0x11 th dport 7076 dnat ip to 10.77.0.2:7076
# --brief: "udp 7076 10.77.0.2:7076" (proto from the IPv4 protocol byte: 0x11 udp, 0x6 tcp)
cmd_rules() {
  ns_exists "$NS_GW" || die "namespace $NS_GW does not exist"
  local out
  out=$(nsx "$NS_GW" nft list chain inet filter prerouting_miniupnpd) || die "nft list failed"
  if [ "${1:-}" = --brief ]; then
    awk '/dnat/ {
           proto = "?"; port = "?"; to = "?"
           for (i = 1; i < NF; i++) {
             if ($i == "@nh,72,8") proto = ($(i+1) == "0x11" ? "udp" : $(i+1) == "0x6" ? "tcp" : $(i+1))
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
  case "${1:-}" in lan) echo "$NS_LAN" ;; gw) echo "$NS_GW" ;; wan) echo "$NS_WAN" ;; *) usage ;; esac
  exit 0
fi
[ "$(id -u)" = 0 ] || die "must run as root"
for t in ip nft ss turnserver setsid mount flock; do command -v "$t" >/dev/null || die "missing command: $t"; done
[ -x "$MINIUPNPD" ] || die "missing $MINIUPNPD (package miniupnpd-nftables)"
# one state-changing subcommand at a time per lab (e.g. the reaper's `down` waits for an
# `up` still running); the daemons must not inherit the lock (see close_fds)
lock() {
  mkdir -p "$STATE"
  exec {LOCK_FD}>"$STATE/lock"
  flock -w 20 "$LOCK_FD" || die "another lab.sh holds $STATE/lock for over 20 s"
}
case "$cmd" in up | down | stop-gateway | start-gateway | restart-gateway) lock ;; esac
case "$cmd" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  rules) cmd_rules "$@" ;;
  stop-gateway) stop_pid miniupnpd "$STATE/miniupnpd.pid" ;;
  start-gateway) start_miniupnpd ;;
  restart-gateway) stop_pid miniupnpd "$STATE/miniupnpd.pid"; start_miniupnpd ;;
  reap-after) cmd_reap_after "${1:-}" ;;
  *) usage ;;
esac
