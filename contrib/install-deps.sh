#!/bin/sh
# Installs every Debian 12 package natkeeper's build, tests and lab network need.
# Idempotent and non-interactive; run as root.
set -eu

packages="
  build-essential cmake pkg-config ninja-build
  libboost1.81-dev libminiupnpc-dev libnatpmp-dev libtomlplusplus-dev
  libcli11-dev libfmt-dev nlohmann-json3-dev libsystemd-dev libsodium-dev
  catch2 mandoc
  clang libclang-rt-14-dev
  iproute2 nftables miniupnpd-nftables coturn procps util-linux psmisc
  miniupnpc natpmpc python3
  dpkg-dev lintian systemd bash-completion
  ieee-data
"

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: must run as root (apt-get)" >&2
  exit 1
fi

missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# coturn's postinst tries to start its service; where no init system runs that
# fails harmlessly (policy-rc.d), and the lab starts its own instance anyway.
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
