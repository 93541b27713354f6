#!/usr/bin/env bash
# test_progress.sh NATKEEPER - a plan of 200 mappings (above mapping.warn_above, 128):
#   on a terminal (a pty from script(1)), --once draws its progress bar on stderr and warns
#   first, while --json on stdout stays one clean JSON document;
#   with stderr not a terminal there is the warning but no bar;
#   with -q on a terminal, neither.
# Exit 0 pass, 1 fail, 77 skip (not root).
. "$(dirname "$0")/lib.sh"
e2e_init "$@"
lab_begin
command -v script >/dev/null || fail "script(1) is missing (util-linux)"

readonly SPEC=udp:20000-20199 COUNT=200
ARGS=(--once --protocol pcp --no-default-profile --map "$SPEC" --no-verify)
TYPESCRIPT=$LAB_STATE/typescript JSON_OUT=$LAB_STATE/progress.json

# on_terminal NAME ARGS...: natkeeper with stderr on a pty and stdout in $JSON_OUT
on_terminal() {
  local name=$1 command t0; shift
  printf -v command '%q ' "$NK" "$@"
  say "run on a terminal: natkeeper $*"
  : >"$TYPESCRIPT"
  t0=$(now_us)
  timeout -k 2 "$NK_TIMEOUT" ip netns exec "$LAB_NS_LAN" \
    script -qefc "$command >$(printf '%q' "$JSON_OUT")" "$TYPESCRIPT" </dev/null >/dev/null 2>&1
  NK_RC=$? NK_LAST=$name NK_LAST_ARGS="$*" NK_OUT=$JSON_OUT NK_ERR=$TYPESCRIPT
  NK_MS=$((($(now_us) - t0) / 1000))
  [ "$NK_RC" = 124 ] && fail "natkeeper $* did not finish within $NK_TIMEOUT s"
  return 0
}
clean_gateway() {
  nk_run delete --delete --protocol pcp --no-default-profile --map "$SPEC"
  assert_rc 0
  assert_eq "$(gw_rule_count)" 0 "DNAT rules after --delete"
}

on_terminal bar --json "${ARGS[@]}"
assert_rc 0
grep -q "about to ask the gateway for $COUNT mappings" "$TYPESCRIPT" ||
  fail "no warning before $COUNT mappings: $(tr '\r' '\n' <"$TYPESCRIPT" | head -5)"
pass "warned before asking for $COUNT mappings"
grep -q "mapping via PCP \[[#.]*\] [0-9]*/$COUNT" "$TYPESCRIPT" || fail "no progress bar on the terminal"
grep -q $'\r' "$TYPESCRIPT" || fail "the progress bar is not redrawn in place (no carriage return)"
pass "progress bar drawn in place: $(tr '\r' '\n' <"$TYPESCRIPT" | grep -o "mapping via PCP.*/$COUNT.*" | tail -1 | tr -d '\033' | sed 's/\[K$//')"
json_check "$JSON_OUT" 'check(len(doc.get("mappings", [])) == int(env["N"]), "the JSON on stdout lists %d mappings" % int(env["N"]))' \
  "N=$COUNT" || fail "--json output is not clean with the progress bar on stderr"
assert_eq "$(gw_rule_count)" "$COUNT" "DNAT rules"
clean_gateway

nk_run plain "${ARGS[@]}"
assert_rc 0
grep -q "about to ask the gateway for $COUNT mappings" "$NK_ERR" || fail "no warning when stderr is not a terminal"
if grep -q $'\r\|mapping via PCP \[' "$NK_ERR"; then fail "a progress bar although stderr is not a terminal"; fi
pass "stderr not a terminal: the warning, no progress bar"
clean_gateway

on_terminal quiet -q "${ARGS[@]}"
assert_rc 0
if grep -q "mapping via PCP \[\|about to ask" "$TYPESCRIPT"; then fail "-q still shows the bar or the warning"; fi
pass "-q: no progress bar and no warning on the terminal"

e2e_pass
