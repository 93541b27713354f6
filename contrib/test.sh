#!/bin/sh
# Builds natkeeper with warnings as errors and runs every test: unit tests, the
# man page lint and the lab tests (network namespaces with the real miniupnpd
# and coturn; they need root). Prints ctest's summary; exits non-zero on failure.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
"$top/contrib/build.sh" -DNATKEEPER_WERROR=ON -DNATKEEPER_BUILD_TESTS=ON
cd "$build"
ctest --output-on-failure --parallel 2 --timeout 600
