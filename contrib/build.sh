#!/bin/sh
# Installs the build dependencies and builds natkeeper into ./build (or $BUILD_DIR).
# Extra arguments go to cmake's configure step.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
"$top/contrib/install-deps.sh"
# /usr: the paths of the systemd units and of the Debian package (cpack -G DEB)
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_INSTALL_PREFIX=/usr "$@"
cmake --build "$build" --parallel "$(nproc)"
