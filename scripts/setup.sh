#!/usr/bin/env bash
# Installs the Debian packages xledit needs to build and test (run as root, or with sudo).
# libxml2-utils: xmllint, which tests/cli_eval.sh uses to check the HTML report.
# fonts-noto-core: Noto Sans Devanagari/Tamil/Kannada, which the HTML report names (docs/evaluation.md).
# clang, libclang-rt-dev (libFuzzer), libomp-dev (clang's OpenMP): the fuzz targets (scripts/fuzz.sh,
#   which also cuts dataset seeds with jq; docs/fuzzing.md).
# libyaml-dev: EasyEdit hparams YAML and mergekit recipes (docs/editing.md, docs/merging.md).
# python3 (python3-dev brings it): tests/easyedit_summary.py reads `report --format easyedit` as
#   EasyEdit does (standard library only).
# jq: scripts/merge_experiment.sh reads the reports and fact-recall JSON with it (no test needs it).
# openmpi-bin, libopenmpi-dev: `mpirun -np N xledit eval|stats` (docs/scale.md; tests/cli_mpi_*.sh).
# python3-dev, python3-numpy: the Python binding (python/, docs/python.md; tests/python_binding.py),
#   built for Debian's /usr/bin/python3; without python3-dev the build skips it.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS="build-essential cmake pkg-config libopenblas-dev liblapacke-dev libjansson-dev libpcre2-dev libutf8proc-dev libyaml-dev libxml2-utils jq strace fonts-noto-core openmpi-bin libopenmpi-dev clang libclang-rt-dev libomp-dev python3-dev python3-numpy"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
