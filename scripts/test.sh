#!/usr/bin/env bash
# Sets up a fresh Debian machine (packages), builds xledit with -Werror and runs the whole test
# suite, then builds and runs it again under AddressSanitizer + UndefinedBehaviorSanitizer, then
# builds the fuzz targets with clang and runs each for a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
jobs="$(nproc 2>/dev/null || echo 2)"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j1

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DXLE_SANITIZE=ON
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j1

# libFuzzer targets for every parser (docs/fuzzing.md): built with clang, each run briefly from
# seeds made of real files (about 2 minutes for the 21 targets)
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DXLE_FUZZ=ON
cmake --build build-fuzz -j"$jobs" --target fuzzers
bash scripts/fuzz.sh build-fuzz build/xledit 5
