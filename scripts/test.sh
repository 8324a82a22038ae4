#!/usr/bin/env bash
# Sets up a fresh Debian machine (packages), builds xledit with -Werror and runs the whole test
# suite, runs every libFuzzer target briefly (clang build), then builds and runs the suite again
# under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
jobs="$(nproc 2>/dev/null || echo 2)"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j1

# libFuzzer smoke run (docs/fuzzing.md): every parser target built by clang, 2 s each from seeds
# made from real files (about 3 minutes with the build on 2 cores); a crash fails CI
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DXLE_FUZZ=ON
cmake --build build-fuzz -j"$jobs" --target fuzzers
bash scripts/fuzz.sh build-fuzz build/xledit 2

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DXLE_SANITIZE=ON
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j1
