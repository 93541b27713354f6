#!/usr/bin/env bash
# service_idle.sh NATKEEPER [SECONDS] - a benchmark, not a test: brings up the lab and runs
# the service with the default Ring profile (108 mappings) over each protocol, then, once
# the mappings are made, watches it idle for SECONDS (default 60): resident memory (VmRSS,
# and the peak VmHWM) and the CPU time it used meanwhile (utime + stime from /proc).
# Prints one line per protocol.
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init "$1"
SECONDS_IDLE=${2:-60}
lab_begin

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

printf '%-7s %10s %10s %14s %s\n' protocol "RSS KiB" "peak KiB" "CPU ms/${SECONDS_IDLE}s" "wakeups"
for proto in upnp natpmp pcp; do
  nk_service_start --protocol "$proto" || fail "the service did not start"
  gw_wait_rule_count "$RING_COUNT" 10 >/dev/null || fail "$proto: the profile was not mapped"
  sleep 1   # the first round's replies and logging settle
  t0=$(cpu_ticks "$NK_SVC_PID") w0=$(awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$NK_SVC_PID/status")
  sleep "$SECONDS_IDLE"
  t1=$(cpu_ticks "$NK_SVC_PID") w1=$(awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$NK_SVC_PID/status")
  hz=$(getconf CLK_TCK)
  printf '%-7s %10s %10s %14s %s\n' "$proto" "$(kib "$NK_SVC_PID" VmRSS)" "$(kib "$NK_SVC_PID" VmHWM)" \
    "$(((t1 - t0) * 1000 / hz))" "$((w1 - w0))"
  nk_service_stop 5
  gw_wait_rule_count 0 5 >/dev/null || fail "$proto: rules left after stopping"
done
e2e_pass
