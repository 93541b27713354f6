#!/usr/bin/env bash
# discovery.sh NATKEEPER [RUNS] - a benchmark, not a test: brings up the lab and times,
# in the same run and RUNS times each (default 5), how long gateway discovery takes:
#   natkeeper --discover           (PCP, NAT-PMP and UPnP-IGD all answering)
#   upnpc -m eth0 -l               (libminiupnpc's discovery plus one listing)
#   natpmpc -g 10.77.0.1           (one NAT-PMP public address request)
# and, from `natkeeper --once -v`, how long after discovery started the first mapping
# request left. Prints medians with min/max and the ratio against upnpc.
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init "$1"
RUNS=${2:-5}
lab_begin

# wall_ms CMD...: run in the lan namespace, print wall-clock milliseconds (3 decimals)
wall_ms() {
  local t0 t1
  t0=$(now_us)
  in_lan "$@" >/dev/null 2>&1
  t1=$(now_us)
  printf '%d.%03d\n' $(((t1 - t0) / 1000)) $(((t1 - t0) % 1000))
}
stats() {  # name values... -> "name median min max"
  local name=$1; shift
  printf '%s\n' "$@" | sort -g | awk -v n="$name" '{v[NR]=$1} END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%s %.1f %.1f %.1f\n", n, m, v[1], v[NR] }'
}

declare -a nk up pmp first
for ((i = 0; i < RUNS; i++)); do
  nk+=("$(wall_ms "$NK" --discover)")
  up+=("$(wall_ms upnpc -m eth0 -l)")
  pmp+=("$(wall_ms natpmpc -g "$LAN_GW")")
  # "decided in X ms": the first mapping request leaves right after the decision
  in_lan "$NK" --once -v --no-default-profile --map udp:20000 >/dev/null 2>"$LAB_STATE/once.err"
  first+=("$(sed -n 's/.*discovery decided in \([0-9.]*\) ms.*/\1/p' "$LAB_STATE/once.err" | head -n1)")
  in_lan "$NK" --delete --no-default-profile --map udp:20000 >/dev/null 2>&1
done

{
  stats "natkeeper--discover" "${nk[@]}"
  stats "upnpc-l" "${up[@]}"
  stats "natpmpc-g" "${pmp[@]}"
  stats "once:first-request-after" "${first[@]}"
} | awk -v runs="$RUNS" 'BEGIN { printf "%-28s %10s %10s %10s   (ms, %d runs)\n", "", "median", "min", "max", runs }
  { printf "%-28s %10.1f %10.1f %10.1f\n", $1, $2, $3, $4; med[$1] = $2 }
  END { if (med["natkeeper--discover"] > 0)
          printf "upnpc -l / natkeeper --discover = %.1fx\n", med["upnpc-l"] / med["natkeeper--discover"] }'
