#!/usr/bin/env bash
# check_package.sh: checks `cmake --install` and the Debian package of a build.
#
#  1. `cmake --install` into a DESTDIR: exactly the expected files, where
#     GNUInstallDirs and the pkg-config files of systemd and bash-completion
#     put them; the units run the installed programs; the agent's compiled-in
#     default configuration path is the installed configuration.
#  2. `cpack -G DEB` into a temporary directory, then `lintian` on the
#     package: any E: line fails.
#  3. The package: its files and their modes (dpkg-deb -c), its control
#     fields (Depends from dpkg-shlibdeps names the four libraries), its
#     conffiles, its maintainer scripts (run against a scratch root with
#     DPKG_ROOT, so nothing on this host changes), its changelog's version.
#  4. The units as the package installs them, with the programs it installs:
#     `systemd-analyze verify` through tests/systemd/check_unit.sh.
#
# The package needs a build configured with -DCMAKE_INSTALL_PREFIX=/usr.
# Everything comes from the environment (tests/package/CMakeLists.txt):
#   NK_BUILD_DIR NK_SOURCE_DIR NK_CMAKE NK_CPACK NK_VERSION NK_PREFIX
#   NK_SBINDIR NK_MANDIR NK_SYSCONFDIR NK_DOCDIR NK_UNITDIR NK_COMPLETIONDIR
# (all absolute paths). Exit 0 pass, 1 fail, 77 skip (no cpack or dpkg-deb).
set -u

for var in NK_BUILD_DIR NK_SOURCE_DIR NK_CMAKE NK_CPACK NK_VERSION NK_PREFIX NK_SBINDIR \
           NK_MANDIR NK_SYSCONFDIR NK_DOCDIR NK_UNITDIR NK_COMPLETIONDIR; do
  if [ -z "${!var:-}" ]; then
    echo "FAIL: $var is not set (run this test through ctest)"
    exit 1
  fi
done

if ! command -v "$NK_CPACK" >/dev/null 2>&1; then
  echo "SKIP: cpack not found"
  exit 77
fi
if ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "SKIP: dpkg-deb not found"
  exit 77
fi

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
indent() { sed 's/^/    /'; }

work=$(mktemp -d) || exit 1
trap 'rm -rf -- "$work"' EXIT

# Every file and symlink the install puts down, with its mode (as ls shows it)
# or, for a symlink, its target.
expected_entries() {
  cat <<EOF
-rwxr-xr-x $NK_SBINDIR/natkeeper
-rwxr-xr-x $NK_SBINDIR/natkeeper-reflector
-rw-r--r-- $NK_MANDIR/man8/natkeeper.8.gz
-rw-r--r-- $NK_MANDIR/man8/natkeeper-reflector.8.gz
-rw-r--r-- $NK_MANDIR/man5/natkeeper.toml.5.gz
-rw-r--r-- $NK_SYSCONFDIR/natkeeper/natkeeper.toml
-rw-r--r-- $NK_UNITDIR/natkeeper.service
-rw-r--r-- $NK_UNITDIR/natkeeper-reflector.service
-rw-r--r-- $NK_COMPLETIONDIR/natkeeper
lrwxrwxrwx $NK_COMPLETIONDIR/natkeeper-reflector -> natkeeper
-rw-r--r-- $NK_DOCDIR/copyright
-rw-r--r-- $NK_DOCDIR/changelog.gz
EOF
}
expected_entries | sort -k2 >"$work/expected"

# compare_entries WHAT ACTUAL_FILE: ACTUAL_FILE in the format of expected_entries.
compare_entries() {
  sort -k2 "$2" >"$work/actual.sorted"
  if diff -u "$work/expected" "$work/actual.sorted" >"$work/diff"; then
    pass "$1: the $(wc -l <"$work/expected") expected files, modes and links, nothing else"
  else
    fail "$1 differs from what is expected (- expected, + found):"
    tail -n +3 "$work/diff" | grep '^[-+]' | indent
  fi
}

# check_tree WHAT ROOT: the installed tree under ROOT.
check_tree() {
  local what=$1 root=$2 path f
  (
    cd "$root" || exit 1
    find . \( -type f -o -type l \) | sed 's|^[.]||' | while read -r path; do
      if [ -L ".$path" ]; then
        printf 'lrwxrwxrwx %s -> %s\n' "$path" "$(readlink ".$path")"
      else
        printf '%s %s\n' "$(stat -c %A ".$path")" "$path"
      fi
    done
  ) >"$work/tree"
  compare_entries "$what" "$work/tree"

  for f in "$NK_MANDIR"/man8/natkeeper.8.gz "$NK_MANDIR"/man8/natkeeper-reflector.8.gz \
           "$NK_MANDIR"/man5/natkeeper.toml.5.gz "$NK_DOCDIR"/changelog.gz; do
    [ -f "$root$f" ] || continue
    if gzip -t "$root$f" 2>/dev/null; then
      pass "$what: $f is gzip-compressed"
    else
      fail "$what: $f is not a valid gzip file"
    fi
  done
  for page in man8/natkeeper.8 man8/natkeeper-reflector.8 man5/natkeeper.toml.5; do
    [ -f "$root$NK_MANDIR/$page.gz" ] || continue
    if gzip -dc "$root$NK_MANDIR/$page.gz" | cmp -s - "$NK_SOURCE_DIR/man/${page#*/}"; then
      pass "$what: $page.gz is man/${page#*/}"
    else
      fail "$what: $page.gz is not man/${page#*/}"
    fi
  done
  if cmp -s "$root$NK_SYSCONFDIR/natkeeper/natkeeper.toml" "$NK_SOURCE_DIR/config/natkeeper.toml"; then
    pass "$what: $NK_SYSCONFDIR/natkeeper/natkeeper.toml is config/natkeeper.toml"
  else
    fail "$what: $NK_SYSCONFDIR/natkeeper/natkeeper.toml is not config/natkeeper.toml"
  fi
  # The agent reads its configuration by default where it is installed.
  if [ -f "$root$NK_SBINDIR/natkeeper" ] &&
     grep -qaF "$NK_SYSCONFDIR/natkeeper/natkeeper.toml" "$root$NK_SBINDIR/natkeeper"; then
    pass "$what: natkeeper's default configuration is $NK_SYSCONFDIR/natkeeper/natkeeper.toml"
  else
    fail "$what: natkeeper's default configuration is not $NK_SYSCONFDIR/natkeeper/natkeeper.toml"
  fi
  for unit in natkeeper natkeeper-reflector; do
    f=$root$NK_UNITDIR/$unit.service
    [ -f "$f" ] || continue
    if grep -Eq "^ExecStart=$NK_SBINDIR/$unit( |\$)" "$f"; then
      pass "$what: $unit.service runs $NK_SBINDIR/$unit"
    else
      fail "$what: $unit.service does not run $NK_SBINDIR/$unit"
    fi
    # contrib/ has the units for a /usr install; such an install ships them as they are.
    if [ "$NK_SBINDIR" = /usr/sbin ]; then
      if cmp -s "$f" "$NK_SOURCE_DIR/contrib/$unit.service"; then
        pass "$what: $unit.service is contrib/$unit.service"
      else
        fail "$what: $unit.service is not contrib/$unit.service"
      fi
    fi
  done
}

echo "== cmake --install (prefix $NK_PREFIX) into a DESTDIR"
if DESTDIR=$work/destdir "$NK_CMAKE" --install "$NK_BUILD_DIR" >"$work/install.log" 2>&1; then
  pass "cmake --install"
  check_tree "cmake --install" "$work/destdir"
else
  fail "cmake --install failed:"
  indent <"$work/install.log"
fi

echo "== cpack -G DEB"
if [ "$NK_PREFIX" != /usr ]; then
  fail "the build is configured with CMAKE_INSTALL_PREFIX=$NK_PREFIX: the Debian package needs -DCMAKE_INSTALL_PREFIX=/usr"
  echo "$failures check(s) failed"
  exit 1
fi
(cd "$NK_BUILD_DIR" && "$NK_CPACK" -G DEB -B "$work/cpack" --config "$NK_BUILD_DIR/CPackConfig.cmake") \
  >"$work/cpack.log" 2>&1
rc=$?
debs=("$work"/cpack/*.deb)
if [ $rc -ne 0 ] || [ ${#debs[@]} -ne 1 ] || [ ! -f "${debs[0]}" ]; then
  fail "cpack -G DEB (exit $rc) made no package, or more than one:"
  indent <"$work/cpack.log"
  echo "$failures check(s) failed"
  exit 1
fi
deb=${debs[0]}
pass "cpack -G DEB made $(basename -- "$deb")"

echo "== lintian"
if command -v lintian >/dev/null 2>&1; then
  echo "lintian: $(lintian --version)"
  lintian --no-cfg --tag-display-limit 0 "$deb" >"$work/lintian.out" 2>&1
  rc=$?
  indent <"$work/lintian.out"
  if grep -q '^E:' "$work/lintian.out"; then
    fail "lintian reports $(grep -c '^E:' "$work/lintian.out") error(s)"
  elif [ $rc -ne 0 ]; then
    fail "lintian exited $rc"
  else
    pass "lintian: no error ($(grep -c '^W:' "$work/lintian.out") warning(s))"
  fi
else
  fail "lintian not found (contrib/install-deps.sh installs it)"
fi

echo "== the package's files"
dpkg-deb -c "$deb" >"$work/contents"
# "-rwxr-xr-x root/root 123 2026-01-01 00:00 ./usr/sbin/natkeeper" -> "-rwxr-xr-x /usr/sbin/natkeeper"
awk '$1 !~ /^d/ {
       line = $1 " " substr($6, 2)
       for (i = 7; i <= NF; i++) line = line " " $i
       print line
     }' "$work/contents" >"$work/package.entries"
compare_entries "dpkg-deb -c" "$work/package.entries"
if awk '$2 != "root/root" { exit 1 }' "$work/contents"; then
  pass "every file belongs to root/root"
else
  fail "files that do not belong to root/root:"
  awk '$2 != "root/root"' "$work/contents" | indent
fi
if awk '$1 ~ /^d/ && $1 != "drwxr-xr-x" { exit 1 }' "$work/contents"; then
  pass "every directory is drwxr-xr-x"
else
  fail "directories that are not drwxr-xr-x:"
  awk '$1 ~ /^d/ && $1 != "drwxr-xr-x"' "$work/contents" | indent
fi

echo "== the package's control fields"
field() { dpkg-deb -f "$deb" "$1"; }
check_field() {  # NAME EXPECTED
  local value
  value=$(field "$1")
  if [ "$value" = "$2" ]; then
    pass "$1: $value"
  else
    fail "$1 is '$value', not '$2'"
  fi
}
check_field Package natkeeper
check_field Version "$NK_VERSION"
check_field Section net
check_field Maintainer "natkeeper developers <dev@natkeeper.invalid>"
depends=$(field Depends)
echo "Depends: $depends"
for lib in libminiupnpc libnatpmp libsodium libsystemd procps; do
  if printf '%s\n' "$depends" | grep -Eq "(^|, *)${lib}[0-9a-z.+-]*( |,|$)"; then
    pass "Depends names $lib"
  else
    fail "Depends does not name $lib (dpkg-shlibdeps)"
  fi
done

mkdir -p "$work/control"
dpkg-deb -e "$deb" "$work/control"
if [ "$(cat "$work/control/conffiles" 2>/dev/null)" = "$NK_SYSCONFDIR/natkeeper/natkeeper.toml" ]; then
  pass "conffiles: $NK_SYSCONFDIR/natkeeper/natkeeper.toml"
else
  fail "conffiles is not $NK_SYSCONFDIR/natkeeper/natkeeper.toml:"
  indent <"$work/control/conffiles"
fi
for script in postinst prerm postrm; do
  f=$work/control/$script
  if [ ! -f "$f" ]; then
    fail "no $script"
    continue
  fi
  mode=$(stat -c %a "$f")
  if [ "$mode" = 755 ]; then pass "$script is mode 0755"; else fail "$script is mode $mode, not 0755"; fi
  if sh -n "$f"; then pass "$script: sh -n"; else fail "$script: sh -n"; fi
done
if grep -Eq '\b(enable|unmask)\b|(^|[^-])\b(start|restart)\b' \
     <(grep -Ev '^[[:space:]]*#' "$work/control/postinst" | sed 's/try-restart//g'); then
  fail "postinst enables or starts a service:"
  grep -En '\b(enable|unmask|start|restart)\b' "$work/control/postinst" | indent
else
  pass "postinst neither enables nor starts a service"
fi

# The maintainer scripts against a scratch root: DPKG_ROOT keeps them off
# this host's systemd and directories.
scratch=$work/scratch
run_script() {  # SCRIPT ARGS...
  DPKG_ROOT=$scratch sh "$work/control/$1" "${@:2}" >"$work/script.out" 2>&1
}
mkdir -p "$scratch/var/lib/private/natkeeper" "$scratch/etc/natkeeper" \
         "$scratch/etc/systemd/system/multi-user.target.wants"
touch "$scratch/var/lib/private/natkeeper/host.key"
ln -s private/natkeeper "$scratch/var/lib/natkeeper"
ln -s "$NK_UNITDIR/natkeeper.service" "$scratch/etc/systemd/system/multi-user.target.wants/natkeeper.service"
ln -s /lib/systemd/system/ssh.service "$scratch/etc/systemd/system/multi-user.target.wants/ssh.service"
ok=1
for call in "postinst configure" "postinst configure 0.0.1" "prerm remove" "prerm upgrade 9.9" \
            "postrm remove" "postrm upgrade 9.9"; do
  # shellcheck disable=SC2086
  run_script $call || { fail "$call failed:"; indent <"$work/script.out"; ok=0; }
done
[ -e "$scratch/var/lib/private/natkeeper/host.key" ] || { fail "postrm remove removed the state"; ok=0; }
[ $ok -eq 1 ] && pass "postinst configure, prerm remove/upgrade, postrm remove/upgrade: exit 0, state kept"
touch "$scratch/etc/natkeeper/reflector.key"
if run_script postrm purge && [ ! -e "$scratch/var/lib/private/natkeeper" ] && [ ! -L "$scratch/var/lib/natkeeper" ] &&
   [ ! -L "$scratch/etc/systemd/system/multi-user.target.wants/natkeeper.service" ] &&
   [ -L "$scratch/etc/systemd/system/multi-user.target.wants/ssh.service" ] &&
   [ -f "$scratch/etc/natkeeper/reflector.key" ]; then
  pass "postrm purge: state and enablement links removed, other units' links and the administrator's files kept"
else
  fail "postrm purge did not leave the scratch root as expected:"
  indent <"$work/script.out"
  (cd "$scratch" && find . | sort | indent)
fi
rm -f "$scratch/etc/natkeeper/reflector.key"
if run_script postrm purge && [ ! -e "$scratch/etc/natkeeper" ]; then
  pass "postrm purge: an empty /etc/natkeeper is removed"
else
  fail "postrm purge left an empty /etc/natkeeper"
fi
if run_script postinst frobnicate; then
  fail "postinst accepts an unknown argument"
else
  pass "postinst rejects an unknown argument"
fi

echo "== the package's changelog"
mkdir -p "$work/root"
dpkg-deb -x "$deb" "$work/root"
top=$(gzip -dc "$work/root$NK_DOCDIR/changelog.gz" | head -n 1)
if [[ $top == "natkeeper ($NK_VERSION) "* ]]; then
  pass "changelog.gz starts with the entry for $NK_VERSION"
else
  fail "the top entry of contrib/debian/changelog is '$top', not one for version $NK_VERSION"
fi

echo "== the installed units: systemd-analyze verify"
# The package as installed: verify with --root resolves the programs the
# units run, and the manual pages their Documentation= names, in the package.
if command -v systemd-analyze >/dev/null 2>&1; then
  man_check=no
  command -v man >/dev/null 2>&1 && man_check=yes
  verify_command=(systemd-analyze verify --root="$work/root" "--man=$man_check" --recursive-errors=no
                  natkeeper.service natkeeper-reflector.service)
  echo "running: ${verify_command[*]}"
  (cd "$work/root" &&
   SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_COLOR=0 SYSTEMD_LOG_LEVEL=info SYSTEMD_PAGER=cat \
   MANPATH=$work/root$NK_MANDIR "${verify_command[@]}") >"$work/verify.out" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && [ ! -s "$work/verify.out" ]; then
    pass "systemd-analyze verify --root --man=$man_check: both units, no message"
  else
    fail "systemd-analyze verify --root (exit $rc):"
    indent <"$work/verify.out"
  fi
fi
# And through tests/systemd/check_unit.sh, as the units in contrib/ are
# checked: any message about the unit fails, also one verify exits 0 with.
check_unit=$NK_SOURCE_DIR/tests/systemd/check_unit.sh
for unit in natkeeper natkeeper-reflector; do
  # The unit as installed, run against the program as installed (stripped).
  "$check_unit" "$work/root$NK_UNITDIR/$unit.service" "$NK_SBINDIR/$unit" \
    "$work/root$NK_SBINDIR/$unit" 10 >"$work/verify.out" 2>&1
  rc=$?
  case $rc in
    0) pass "$unit.service from the package: systemd-analyze verify passes"
       grep -E '^(ok|note): systemd-analyze verify' "$work/verify.out" | indent ;;
    77) echo "note: systemd-analyze not found: $unit.service not verified" ;;
    *) fail "$unit.service from the package:"; indent <"$work/verify.out" ;;
  esac
done

if [ $failures -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "package $(basename -- "$deb"): all checks passed"
exit 0
