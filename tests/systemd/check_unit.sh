#!/usr/bin/env bash
# check_unit.sh UNIT PATH_IN_UNIT BUILT_BINARY MAX_SCORE [REGEX...]
#
# Checks a systemd unit file without installing or starting it:
#  1. `systemd-analyze verify` on a copy of UNIT in which the program path
#     PATH_IN_UNIT (e.g. /usr/sbin/natkeeper) is replaced by BUILT_BINARY,
#     since verify checks that every Exec*= program exists. Any message it
#     prints about the unit, even a warning that leaves its exit status at 0
#     (an unknown key, a value it cannot parse), fails the test.
#  2. `systemd-analyze security --offline=true`: prints the overall exposure
#     score and fails when it is above MAX_SCORE (e.g. 1.2).
#  3. Each REGEX (extended, grep -E) must match a line of UNIT, comments
#     left out; a REGEX written !REGEX must match none.
# Exit 0 pass, 1 fail, 77 skip (no systemd-analyze).
set -u

if [ $# -lt 4 ]; then
  echo "usage: $0 UNIT PATH_IN_UNIT BUILT_BINARY MAX_SCORE [REGEX|!REGEX...]" >&2
  exit 1
fi
unit=$1 path_in_unit=$2 built=$3 max_score=$4
shift 4

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "SKIP: systemd-analyze not found"
  exit 77
fi

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

[ -f "$unit" ] || { echo "FAIL: no unit file $unit"; exit 1; }
[ -x "$built" ] || { echo "FAIL: $built is not an executable file"; exit 1; }
case $max_score in
  [0-9].[0-9] | [0-9] | 10 | 10.0) ;;
  *) echo "FAIL: MAX_SCORE must be a number from 0.0 to 10.0, not '$max_score'"; exit 1 ;;
esac
name=$(basename -- "$unit")

echo "systemd-analyze: $(systemd-analyze --version | head -n 1)"

work=$(mktemp -d) || exit 1
trap 'rm -rf -- "$work"' EXIT
# The copy keeps the unit's file name (the unit name comes from it). The
# built binary is reached through a symlink with a plain path, so that a
# build directory with spaces or '%' in its name needs no unit-file quoting.
program=$work/bin/$(basename -- "$path_in_unit")
case $program in
  *[!A-Za-z0-9/._-]*) echo "FAIL: $program has characters a unit file would need quoted"; exit 1 ;;
esac
mkdir -p "$work/unit" "$work/bin"
ln -s -- "$(cd "$(dirname -- "$built")" && pwd)/$(basename -- "$built")" "$program"
# The path is matched as a whole word: /usr/sbin/natkeeper is not a part of
# /usr/sbin/natkeeper-reflector.
ere_quote() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; }
escaped=$(ere_quote "$path_in_unit")
if ! grep -Eq -- "${escaped}([[:space:]]|\$)" "$unit"; then
  echo "FAIL: $unit does not run $path_in_unit"
  exit 1
fi
d=$'\001'  # a sed delimiter that is in neither path
sed -E "s${d}${escaped}([[:space:]]|\$)${d}${program}\\1${d}g" "$unit" >"$work/unit/$name"

# Messages go to stderr, plain, whatever the environment would choose.
export SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_COLOR=0 SYSTEMD_LOG_TIME=0 \
  SYSTEMD_LOG_LOCATION=0 SYSTEMD_LOG_LEVEL=info SYSTEMD_COLORS=0 SYSTEMD_PAGER=cat
escaped_name=$(ere_quote "$name")

# verify also loads, from the host, the units this one depends on; a message
# about one of them ("other.target: ..." or "/lib/systemd/system/x.target:9:
# ...") is shown but not counted. Every other line counts against the unit.
unit_prefix='^([^ :]*/)?[A-Za-z0-9@_.\-]+[.](service|socket|target|device|mount|automount|swap|timer|path|slice|scope)(:[0-9]+)?: '
this_prefix="^([^ :]*/)?${escaped_name}(:[0-9]+)?: "
about_this_unit() {  # FILE
  { grep -Ev "$unit_prefix" "$1"; grep -E "$this_prefix" "$1"; } || true
}
about_other_units() {  # FILE
  grep -E "$unit_prefix" "$1" | grep -Ev "$this_prefix" || true
}
report_messages() {  # WHAT FILE
  local mine others
  mine=$(about_this_unit "$2")
  others=$(about_other_units "$2")
  if [ -n "$mine" ]; then
    fail "$1 printed messages about $name:"
    printf '%s\n' "$mine" | sed 's/^/    /'
  fi
  if [ -n "$others" ]; then
    echo "note: $1 printed messages about other units (not counted):"
    printf '%s\n' "$others" | sed 's/^/    /'
  fi
}

# 1. verify. --man=no: the manual pages the unit names are not installed
# from a build tree (verify would run man(1) for each, and fail).
# --recursive-errors=no: the exit status is about this unit only, not about
# the host's units it depends on.
verify_command=(systemd-analyze verify --man=no --recursive-errors=no "$work/unit/$name")
echo "running: ${verify_command[*]}"
"${verify_command[@]}" >"$work/verify.out" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "systemd-analyze verify exited $rc"
report_messages "systemd-analyze verify" "$work/verify.out"
[ $rc -eq 0 ] && [ -z "$(about_this_unit "$work/verify.out")" ] && pass "systemd-analyze verify: no message about $name"

# 2. security.
security_command=(systemd-analyze security --offline=true --no-pager "$work/unit/$name")
echo "running: ${security_command[*]}"
"${security_command[@]}" >"$work/security.out" 2>"$work/security.err"
rc=$?
if [ $rc -ne 0 ]; then
  fail "systemd-analyze security exited $rc"
  sed 's/^/    /' "$work/security.err"
else
  report_messages "systemd-analyze security" "$work/security.err"
fi
score=$(sed -n 's/^.*Overall exposure level for .*: \([0-9][0-9]*\.[0-9]\).*$/\1/p' "$work/security.out" | head -n 1)
if [ -z "$score" ]; then
  fail "no overall exposure level in the output of systemd-analyze security"
  sed 's/^/    /' "$work/security.out"
else
  echo "exposure of $name: settings left open:"
  grep '✗' "$work/security.out" | sed -E 's/[[:space:]]+$//; s/^/    /'
  echo "overall exposure level for $name: $score (limit $max_score)"
  if LC_ALL=C awk -v s="$score" -v m="$max_score" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
    pass "exposure $score <= $max_score"
  else
    fail "exposure $score is above $max_score"
  fi
fi

# 3. required (and forbidden) lines.
grep -Ev '^[[:space:]]*([#;]|$)' "$unit" >"$work/lines"
for regex in "$@"; do
  case $regex in
    !*)
      if grep -Eq -- "${regex#!}" "$work/lines"; then
        fail "$name has a line matching ${regex#!}:"
        grep -E -- "${regex#!}" "$work/lines" | sed 's/^/    /'
      else
        pass "no line matches ${regex#!}"
      fi
      ;;
    *)
      if grep -Eq -- "$regex" "$work/lines"; then
        pass "a line matches $regex"
      else
        fail "$name has no line matching $regex"
      fi
      ;;
  esac
done

if [ $failures -gt 0 ]; then
  echo "$name: $failures check(s) failed"
  exit 1
fi
echo "$name: all checks passed"
exit 0
