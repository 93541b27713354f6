#!/bin/sh
# Builds natkeeper with warnings as errors and runs every test: unit tests, the
# fuzz corpus replay, the man page lint and the lab tests (network namespaces
# with the real miniupnpd and coturn; they need root). Then builds it again with
# clang's AddressSanitizer and UndefinedBehaviorSanitizer and runs the unit
# tests, the corpus replay and the lab tests on that build. Prints ctest's
# summaries; exits non-zero on the first failure.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
sanitized=${SANITIZE_BUILD_DIR:-$top/build-sanitize}
"$top/contrib/build.sh" -DNATKEEPER_WERROR=ON -DNATKEEPER_BUILD_TESTS=ON
(cd "$build" && ctest --output-on-failure --parallel 2 --timeout 600)

BUILD_DIR=$sanitized CC=clang CXX=clang++ "$top/contrib/build.sh" -DNATKEEPER_SANITIZE=ON \
  -DNATKEEPER_WERROR=ON -DNATKEEPER_BUILD_TESTS=ON
# Leaks count as failures too; a report stops the process at once.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$sanitized"
# One at a time: the sanitized binaries cost several times the CPU, and the lab
# tests' waits are sized for the normal build on two cores.
ctest --output-on-failure --timeout 900 --tests-regex '^(unit_.*|fuzz_corpus_replay|e2e_.*)$'
