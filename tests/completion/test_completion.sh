#!/usr/bin/env bash
# test_completion.sh COMPLETION_FILE NATKEEPER [NATKEEPER-REFLECTOR] - the bash completion
# of both commands (contrib/bash-completion/natkeeper): every flag that the binaries'
# --help prints is offered, and none that it does not print (a new flag without
# completion fails here); the values of --protocol, the protocol of --map, file names
# after -c/--config, --reflector-key-file and --key-file, nothing after flags that take
# an address, MAC or number (--device among them). Each check runs twice: with
# bash-completion's bash_completion loaded (when it is installed), and with the file's
# own fallback. With bash-completion, its loader also finds the file for
# natkeeper-reflector through a symlink.
# NATKEEPER-REFLECTOR defaults to natkeeper-reflector next to NATKEEPER.
# Exit 0 pass, 1 fail.
set -u -o pipefail

BASH_COMPLETION=${BASH_COMPLETION:-/usr/share/bash-completion/bash_completion}

if [ $# -lt 2 ]; then
  echo "usage: $0 COMPLETION_FILE NATKEEPER [NATKEEPER-REFLECTOR]" >&2
  exit 64
fi
COMP_FILE=$(realpath "$1") NK=$2 NKR=${3:-$(dirname "$2")/natkeeper-reflector}
for f in "$COMP_FILE" "$NK" "$NKR"; do
  [ -f "$f" ] || { echo "FAIL: $f does not exist"; exit 1; }
done

ok() { printf 'ok: %s\n' "$*"; }
bad() { printf 'FAIL: %s\n' "$*"; }

# flags_of BINARY: the flags in the Options section of BINARY --help, one a line
flags_of() {
  "$1" --help | sed -n '/^Options:/,/^$/p' | grep -E '^ +-' |
    grep -oE '(^|[ ,])--?[A-Za-z][A-Za-z0-9-]*' | tr -d ' ,' | sort -u
}
NK_FLAGS=$(flags_of "$NK") || { echo "FAIL: $NK --help failed"; exit 1; }
NKR_FLAGS=$(flags_of "$NKR") || { echo "FAIL: $NKR --help failed"; exit 1; }
[ "$(grep -c . <<<"$NK_FLAGS")" -ge 20 ] || { echo "FAIL: too few flags in natkeeper --help: $NK_FLAGS"; exit 1; }
[ "$(grep -c . <<<"$NKR_FLAGS")" -ge 6 ] || { echo "FAIL: too few flags in natkeeper-reflector --help"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/natkeeper-completion.XXXXXXXX") || exit 1
trap 'rm -rf -- "$WORK"' EXIT
mkdir "$WORK/files" "$WORK/files/conf.d" "$WORK/compat"
touch "$WORK/files/natkeeper.toml" "$WORK/files/reflector.key"

# run_completion LINE: what completing at the end of LINE offers, as bash does it: the line
# split into COMP_WORDS at blanks and at '=' and ':' (of COMP_WORDBREAKS), then the
# function registered for the command called. Sets REPLY_WORDS (sorted, one a line) and
# COMPOPTS (the compopt options asked for).
compopt() { local IFS=" "; COMPOPTS+=" $*"; }   # the builtin works only while readline completes
run_completion() {
  local line=$1 w='' c i func
  COMP_WORDS=()
  for ((i = 0; i < ${#line}; i++)); do
    c=${line:i:1}
    case $c in
      ' ') [ -n "$w" ] && COMP_WORDS+=("$w"); w='' ;;
      [=:])
        if [[ -n $w && $w != [=:]* ]]; then COMP_WORDS+=("$w"); w=''; fi
        w+=$c ;;
      *)
        if [[ $w == [=:]* ]]; then COMP_WORDS+=("$w"); w=''; fi
        w+=$c ;;
    esac
  done
  COMP_WORDS+=("$w")   # the word being completed, maybe empty
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) COMP_LINE=$line COMP_POINT=${#line}
  func=$(builtin complete -p "${COMP_WORDS[0]}" 2>/dev/null | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
  COMPREPLY=() COMPOPTS=''
  if [ -z "$func" ]; then REPLY_WORDS='(no completion registered)'; return; fi
  "$func" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  REPLY_WORDS=$(printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort)
}
show() { paste -sd ' ' <<<"$1"; }

expect() {   # LINE WORD...: offers exactly these
  local want; want=$(printf '%s\n' "${@:2}" | sed '/^$/d' | sort)
  run_completion "$1"
  if [ "$REPLY_WORDS" = "$want" ]; then ok "$MODE: '$1<TAB>' -> $(show "$want")"
  else bad "$MODE: '$1<TAB>' offers [$(show "$REPLY_WORDS")], expected [$(show "$want")]"; fi
}
expect_opt() {   # LINE OPTION: compopt -o OPTION was asked for
  run_completion "$1"
  if [[ $COMPOPTS == *"-o $2"* ]]; then ok "$MODE: '$1<TAB>' asks for -o $2"
  else bad "$MODE: '$1<TAB>' does not ask for -o $2 (compopt:$COMPOPTS)"; fi
}
expect_flags() {   # COMMAND FLAGS: COMMAND --<TAB> and -<TAB> offer exactly the flags of its --help
  local cmd=$1 flags=$2 missing extra long
  run_completion "$cmd -"
  missing=$(comm -23 <(echo "$flags") <(echo "$REPLY_WORDS")) extra=$(comm -13 <(echo "$flags") <(echo "$REPLY_WORDS"))
  if [ -z "$missing$extra" ]; then ok "$MODE: '$cmd -<TAB>' offers the $(grep -c . <<<"$flags") flags of $cmd --help"
  else
    [ -z "$missing" ] || bad "$MODE: '$cmd -<TAB>' does not offer $(show "$missing"), which $cmd --help prints"
    [ -z "$extra" ] || bad "$MODE: '$cmd -<TAB>' offers $(show "$extra"), which $cmd --help does not print"
  fi
  mapfile -t long < <(grep -- '^--' <<<"$flags")
  expect "$cmd --" "${long[@]}"
}

checks() {
  cd "$WORK/files" || exit 1
  expect_flags natkeeper "$NK_FLAGS"
  expect_flags natkeeper-reflector "$NKR_FLAGS"
  expect 'natkeeper --pro' --protocol
  expect 'natkeeper --once --protocol ' auto natpmp pcp upnp
  expect 'natkeeper --protocol n' natpmp
  expect 'natkeeper --protocol=' auto natpmp pcp upnp
  expect 'natkeeper --protocol=u' upnp
  # file names
  expect 'natkeeper -c ' conf.d natkeeper.toml reflector.key
  expect 'natkeeper -c nat' natkeeper.toml
  expect_opt 'natkeeper -c nat' filenames
  expect 'natkeeper --once --config ' conf.d natkeeper.toml reflector.key
  expect 'natkeeper --config=n' natkeeper.toml
  expect 'natkeeper --reflector-key-file r' reflector.key
  expect 'natkeeper-reflector --key-file ' conf.d natkeeper.toml reflector.key
  expect 'natkeeper-reflector --listen 0.0.0.0:7000 --key-file=r' reflector.key
  # --map: the protocol, no space after it
  expect 'natkeeper --map ' tcp+udp: tcp: udp:
  expect 'natkeeper --map t' tcp+udp: tcp:
  expect_opt 'natkeeper --map t' nospace
  expect 'natkeeper --map udp:'
  expect 'natkeeper --map udp:70'
  # nothing after flags that take an address or a number, nor as an argument
  expect 'natkeeper --reflector '
  expect 'natkeeper --reflector 203.0.113.2:'
  expect 'natkeeper --stun='
  expect 'natkeeper --gateway '
  expect 'natkeeper --lease '
  expect 'natkeeper --igd '
  expect 'natkeeper --device '
  expect 'natkeeper --once --device 54:e0:19:'
  expect 'natkeeper --device=192.168.1.'
  expect 'natkeeper '
  expect 'natkeeper n'
  expect 'natkeeper-reflector --listen '
  expect 'natkeeper-reflector --rate '
  # the modes exclude one another; flags after a value still complete
  expect 'natkeeper --once --d' --device
  expect 'natkeeper --once --di'
  expect 'natkeeper --d' --delete --device --discover
  expect 'natkeeper --f' --find-devices
  expect 'natkeeper --find-devices --d' --device
  expect 'natkeeper --once --device 192.168.1.50 --dev' --device
  expect 'natkeeper --status --js' --json
  expect 'natkeeper -c natkeeper.toml --check' --check-config
  expect 'natkeeper --map tcp:80 --no-' --no-default-profile --no-verify
  expect 'natkeeper-reflector --listen 0.0.0.0 --k' --key-file
}

# with_bash_completion, fallback: set up a shell of each kind (run in a subshell each)
with_bash_completion() {
  MODE=bash-completion
  # nothing but bash-completion itself (not the compat directory, not ~/.bash_completion)
  export BASH_COMPLETION_COMPAT_DIR=$WORK/compat BASH_COMPLETION_USER_FILE=/dev/null
  # shellcheck source=/dev/null
  . "$BASH_COMPLETION" || { bad "cannot source $BASH_COMPLETION"; return 1; }
  declare -F _init_completion >/dev/null || { bad "$BASH_COMPLETION has no _init_completion"; return 1; }
  # its on-demand loader: completions/natkeeper, and natkeeper-reflector as a symlink
  mkdir -p "$WORK/user/completions"
  cp "$COMP_FILE" "$WORK/user/completions/natkeeper"
  ln -s natkeeper "$WORK/user/completions/natkeeper-reflector"
  export BASH_COMPLETION_USER_DIR=$WORK/user
  __load_completion natkeeper-reflector || bad "$MODE: the loader does not find natkeeper-reflector"
  if builtin complete -p natkeeper-reflector 2>/dev/null | grep -q -- '-F _natkeeper_reflector '; then
    ok "$MODE: the loader loads completions/natkeeper-reflector, a symlink to natkeeper"
  else bad "$MODE: the loader did not register natkeeper-reflector"; fi
  builtin complete -r natkeeper natkeeper-reflector
  # shellcheck source=/dev/null
  . "$COMP_FILE" || { bad "cannot source $COMP_FILE"; return 1; }
  checks
}
fallback() {
  MODE=fallback
  # shellcheck source=/dev/null
  . "$COMP_FILE" || { bad "cannot source $COMP_FILE"; return 1; }
  declare -F _init_completion >/dev/null && { bad "_init_completion is defined in the fallback run"; return 1; }
  checks
}

out=''
if [ -r "$BASH_COMPLETION" ]; then
  out+=$(with_bash_completion)$'\n'
else
  out+="note: $BASH_COMPLETION not found (package bash-completion): fallback only"$'\n'
fi
out+=$(fallback)
printf '%s\n' "$out"
checks=$(grep -c '^ok: ' <<<"$out") failed=$(grep -c '^FAIL: ' <<<"$out")
if [ "$failed" -gt 0 ] || [ "$checks" -lt 30 ]; then
  echo "FAIL: test_completion ($failed of $((checks + failed)) checks failed)"
  exit 1
fi
echo "PASS: test_completion ($checks checks)"
