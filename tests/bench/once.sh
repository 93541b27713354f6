#!/usr/bin/env bash
# once.sh NATKEEPER [RUNS] [REFLECTOR] - a benchmark, not a test: brings up the lab and times, RUNS
# times each (default 5) in the same run, mapping the default Ring profile (108 mappings)
# from an empty gateway table:
#   natkeeper --once --protocol upnp|natpmp|pcp
#   upnpc -u URL -r ...            (one upnpc process mapping all 108, the reference client)
#   natpmpc -g GW -a ... per port  (108 natpmpc processes, as a shell script would)
#   natkeeper --once --reflector / --stun   (with REFLECTOR: mapped and verified from outside)
# Every run is followed by an untimed --delete. Prints median/min/max and the ratios.
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init "$1"
RUNS=${2:-5}
[ -n "${3:-}" ] && LAB_REFLECTOR=$3
lab_begin
URL=http://$LAN_GW:5000/rootDesc.xml

ring_ports() {  # "proto port" lines of the profile
  local p
  for p in 7076 7077 9078 9079; do echo "udp $p"; done
  for p in 15063 15064; do echo "tcp $p"; echo "udp $p"; done
  for ((p = 16500; p <= 16599; p++)); do echo "udp $p"; done
}
mapfile -t RING < <(ring_ports)
upnpc_args=()
for entry in "${RING[@]}"; do upnpc_args+=("${entry#* }" "${entry% *}"); done

export LAN_GW RING_LIST="${RING[*]}"  # for the natpmpc loop in bash -c

time_ms() {  # CMD... in lan -> wall ms (3 decimals); fails loudly if CMD fails
  local t0 t1
  t0=$(now_us)
  in_lan "$@" >/dev/null 2>"$LAB_STATE/bench.err" || { cat "$LAB_STATE/bench.err" >&2; fail "$* failed"; }
  t1=$(now_us)
  printf '%d.%03d\n' $(((t1 - t0) / 1000)) $(((t1 - t0) % 1000))
}
clean() {  # PROTOCOL the mappings were made with (miniupnpd deletes per protocol)
  in_lan "$NK" --delete --protocol "$1" >/dev/null 2>&1
  [ "$(gw_rule_count)" = 0 ] || fail "the gateway still holds $(gw_rule_count) rules after cleaning"
}
stats() {
  local name=$1; shift
  printf '%s\n' "$@" | sort -g | awk -v n="$name" '{v[NR]=$1} END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%s %.1f %.1f %.1f\n", n, m, v[1], v[NR] }'
}

declare -a nk_upnp nk_natpmp nk_pcp ref_upnpc ref_natpmpc nk_verified_reflector nk_verified_stun
for ((i = 0; i < RUNS; i++)); do
  nk_upnp+=("$(time_ms "$NK" --once --protocol upnp)"); clean upnp
  ref_upnpc+=("$(time_ms upnpc -u "$URL" -r "${upnpc_args[@]}")")
  [ "$(gw_rule_count)" = "${#RING[@]}" ] || fail "upnpc made $(gw_rule_count) of ${#RING[@]} mappings"
  clean upnp
  nk_natpmp+=("$(time_ms "$NK" --once --protocol natpmp)"); clean natpmp
  ref_natpmpc+=("$(time_ms bash -c '
    set -- $RING_LIST
    while [ $# -gt 1 ]; do natpmpc -g "$LAN_GW" -a "$2" "$2" "$1" 3600 >/dev/null || exit 1; shift 2; done')")
  [ "$(gw_rule_count)" = "${#RING[@]}" ] || fail "natpmpc made $(gw_rule_count) of ${#RING[@]} mappings"
  clean natpmp
  nk_pcp+=("$(time_ms "$NK" --once --protocol pcp)"); clean pcp
  if [ -n "${LAB_REFLECTOR:-}" ]; then
    nk_verified_reflector+=("$(time_ms "$NK" --once --reflector "$REFLECTOR")"); clean pcp
    nk_verified_stun+=("$(time_ms "$NK" --once --stun "$STUN" --no-default-profile --map udp:7076-7077 \
      --map udp:9078-9079 --map udp:15063-15064 --map udp:16500-16599)"); clean pcp
  fi
done

{
  stats "natkeeper-once-upnp" "${nk_upnp[@]}"
  stats "upnpc-r(108)" "${ref_upnpc[@]}"
  stats "natkeeper-once-natpmp" "${nk_natpmp[@]}"
  stats "natpmpc-x108" "${ref_natpmpc[@]}"
  stats "natkeeper-once-pcp" "${nk_pcp[@]}"
  if [ -n "${LAB_REFLECTOR:-}" ]; then
    stats "once+verify(reflector)" "${nk_verified_reflector[@]}"
    stats "once+verify(stun,106udp)" "${nk_verified_stun[@]}"
  fi
} | awk -v runs="$RUNS" 'BEGIN { printf "%-24s %10s %10s %10s   (ms, %d runs, 108 mappings)\n", "", "median", "min", "max", runs }
  { printf "%-24s %10.1f %10.1f %10.1f\n", $1, $2, $3, $4; med[$1] = $2 }
  END {
    printf "upnpc / natkeeper(upnp)     = %.2fx\n", med["upnpc-r(108)"] / med["natkeeper-once-upnp"]
    printf "natpmpc / natkeeper(natpmp) = %.2fx\n", med["natpmpc-x108"] / med["natkeeper-once-natpmp"] }'
