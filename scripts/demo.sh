#!/usr/bin/env bash
# Sets up a fresh Debian machine (packages), builds xledit and runs its main job: `xledit demo`
# on the built-in multilingual model (a fact edited with ROME, shown in eight languages, then
# ELFI/ELFO tables and an HTML report).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"
exec ./build/xledit demo "$@"
