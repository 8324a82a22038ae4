#!/usr/bin/env bash
# cli_install.sh XLEDIT SRCDIR: the library as a dependency. `cmake --install` of this build
# into a fresh prefix; the installed tree holds xledit.h, libxledit.a, libxledit.so, xledit.pc
# and the CMake package, and no internal header; xledit.h compiles on its own (C11, -Wall
# -Wextra -Werror -pedantic); the examples/ programs build with
# `cc $(pkg-config --cflags --libs xledit)` against the installed shared library and run on the
# built-in model and the world's cases; a CMake project links xledit::xledit_static through
# find_package(xledit); the shared library exports only xle_* symbols; the Python package (when
# built) imports from the prefix.
set -u
XLEDIT="$1"
SRC="$2"
BUILD="$(dirname "$XLEDIT")"
T="$(mktemp -d /tmp/xle_cli_install.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
MODEL="$SRC/models/xledit-mini"

# A sanitized build installs a sanitized library: its users must link the runtime too.
CFLAGS_EXTRA=""
if grep -q '^XLE_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  CFLAGS_EXTRA="-fsanitize=address,undefined -fno-omit-frame-pointer"
fi

cmake --install "$BUILD" --prefix "$T/prefix" >"$T/install.log" 2>&1 || { fail "cmake --install"; cat "$T/install.log" >&2; }
P="$T/prefix"
for f in include/xledit.h lib/libxledit.a lib/libxledit.so lib/pkgconfig/xledit.pc \
         lib/cmake/xledit/xleditConfig.cmake lib/cmake/xledit/xleditConfigVersion.cmake \
         lib/cmake/xledit/xleditTargets.cmake bin/xledit; do
  [ -e "$P/$f" ] || fail "not installed: $f"
done
[ "$(find "$P/include" -type f | wc -l)" -eq 1 ] || fail "more than xledit.h installed: $(find "$P/include" -type f)"
grep -q "src" "$P/lib/cmake/xledit/xleditTargets.cmake" && fail "the CMake package exports a src/ path"

# the public header alone, strictly
printf '#include <xledit.h>\nint main(void) { return xle_version()[0] == 0; }\n' >"$T/hdr.c"
cc -std=c11 -Wall -Wextra -Werror -pedantic -c -I"$P/include" "$T/hdr.c" -o "$T/hdr.o" || fail "xledit.h does not compile alone"

# exported symbols: the API only
if command -v nm >/dev/null; then
  bad=$(nm -D --defined-only "$P/lib/libxledit.so" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^xle_' | head -5)
  [ -z "$bad" ] || fail "libxledit.so exports non-API symbols: $bad"
  nm -D --defined-only "$P/lib/libxledit.so" | grep -q ' xle_tokenizer_cache\| xle_path_join' && fail "internal symbols exported"
fi

export PKG_CONFIG_PATH="$P/lib/pkgconfig"
[ "$(pkg-config --modversion xledit)" = "$("$XLEDIT" --version | cut -d' ' -f2)" ] || fail "xledit.pc version != xledit --version"
pkg-config --static --libs xledit | grep -q -- "-llapacke" || fail "Libs.private lacks lapacke: $(pkg-config --static --libs xledit)"
for ex in load_and_score edit_and_save evaluate_cases; do
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror $CFLAGS_EXTRA "$SRC/examples/$ex.c" -o "$T/$ex" \
     $(pkg-config --cflags --libs xledit) -Wl,-rpath,"$P/lib" || fail "example $ex does not build"
done
ldd "$T/load_and_score" | grep -q "$P/lib/libxledit.so" || fail "load_and_score is not linked to the installed libxledit.so"

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
"$T/load_and_score" "$MODEL" "The capital of France is" "Paris" >"$T/score.out" || fail "load_and_score ran"
grep -q "^libxledit $(pkg-config --modversion xledit) (header " "$T/score.out" || fail "version line: $(head -1 "$T/score.out")"
grep -q "^greedy: The capital of France is Paris" "$T/score.out" || fail "greedy: $(cat "$T/score.out")"
# the CLI's score of the same text agrees with the library's
want=$(sed -n 's/^log p(Paris | The capital of France is) = \([-0-9.]*\) .*/\1/p' "$T/score.out")
cli=$("$XLEDIT" score "$MODEL" --text "The capital of France is" --target "Paris" 2>/dev/null | grep -o -- '-[0-9.]*' | head -1)
awk -v a="$want" -v b="$cli" 'BEGIN { exit !(a != "" && b != "" && (a - b < 1e-3 && b - a < 1e-3)) }' \
  || fail "library score $want vs CLI score $cli"

"$T/edit_and_save" "$MODEL" "$T/edited" "The capital of France is" France Rome >"$T/edit.out" || fail "edit_and_save ran: $(cat "$T/edit.out")"
[ -f "$T/edited/config.json" ] || fail "edit_and_save wrote no model"
"$XLEDIT" generate "$T/edited" --text "The capital of France is" -n 2 2>/dev/null | grep -q "Rome" || fail "the saved model does not say Rome"

"$T/evaluate_cases" "$MODEL" "$SRC/data/world/cases.jsonl" "$T/run" 1 >"$T/eval.out" || fail "evaluate_cases ran: $(tail -3 "$T/eval.out")"
grep -q "^1 case(s), " "$T/eval.out" || fail "evaluate_cases summary: $(head -1 "$T/eval.out")"
[ -s "$T/run/results.jsonl" ] || fail "evaluate_cases wrote no results"

# the CMake package: a consumer project linking the static library
if [ -z "$CFLAGS_EXTRA" ]; then
  mkdir -p "$T/consumer"
  cat >"$T/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(xledit 0.1 REQUIRED)
add_executable(version_static version.c)
target_link_libraries(version_static PRIVATE xledit::xledit_static)
add_executable(version_shared version.c)
target_link_libraries(version_shared PRIVATE xledit::xledit)
CM
  printf '#include <stdio.h>\n#include <xledit.h>\nint main(void) { puts(xle_version()); return 0; }\n' >"$T/consumer/version.c"
  if cmake -S "$T/consumer" -B "$T/consumer/build" -DCMAKE_PREFIX_PATH="$P" >"$T/cm.log" 2>&1 &&
     cmake --build "$T/consumer/build" >>"$T/cm.log" 2>&1; then
    [ "$("$T/consumer/build/version_static")" = "$(pkg-config --modversion xledit)" ] || fail "static consumer version"
    [ "$("$T/consumer/build/version_shared")" = "$(pkg-config --modversion xledit)" ] || fail "shared consumer version"
    ldd "$T/consumer/build/version_static" | grep -q libxledit && fail "the static consumer loads libxledit.so"
  else
    fail "find_package(xledit) consumer: $(tail -5 "$T/cm.log")"
  fi
fi

# the Python package (when the build has it, docs/python.md): installed under the prefix, it
# imports from there with Debian's python3 and scores as the tool does (not under the
# sanitizers: the interpreter would need the ASan runtime preloaded; python_binding covers that)
if [ -d "$BUILD/python/xledit" ] && [ -z "$CFLAGS_EXTRA" ]; then
  pkg=$(find "$P/lib" -path '*dist-packages/xledit/__init__.py' | head -1)
  if [ -z "$pkg" ]; then
    fail "the Python package is not installed under $P/lib/*/dist-packages"
  else
    site=$(dirname "$(dirname "$pkg")")
    out=$(cd "$T" && PYTHONPATH="$site" /usr/bin/python3 -c 'import sys, xledit
print(xledit.__file__)
print("%.9g" % xledit.Model(sys.argv[1]).score("The capital of France is", "Paris"))' "$MODEL" 2>&1)
    [ "$(echo "$out" | head -1)" = "$site/xledit/__init__.py" ] || fail "import xledit from the prefix: $out"
    [ "$(echo "$out" | sed -n 2p)" = "$cli" ] || fail "installed Python score $(echo "$out" | sed -n 2p) vs CLI $cli"
  fi
fi

[ "$fails" -eq 0 ] && echo "cli_install: all checks passed"
exit $((fails > 0))
