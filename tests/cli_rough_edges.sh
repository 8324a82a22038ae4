#!/usr/bin/env bash
# cli_rough_edges.sh XLEDIT SRCDIR: one check per rough edge of issue 13 that the CLI shows:
# a trailing slash in --out; a bad output fails before the work and leaves no patch; stale
# OUT.tmp-PID folders of dead processes are removed, a live one is kept; files follow the umask
# (mkstemp makes 0600); errors carry no doubled prefix and say "is a directory" for a folder
# given as a file; status lines ("wrote ...") go to stderr, stdout stays empty; a failed stats
# leaves no folder; statistics of two option sets coexist in the cache and edit finds them;
# an empty or broken tokenizer.json and an out-of-vocabulary bos_token_id or eos_token_id are
# errors; no error names a temporary (OUT.tmp-PID) instead of the user's path.
set -u
XLEDIT="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
SRC="$2"
M="$SRC/models/xledit-mini"
T="$(mktemp -d /tmp/xle_cli_rough.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
export XDG_CACHE_HOME="$T/cache" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
cd "$T" || exit 1

# expect_error PATTERN CMD...: exit 1 or 2, one stderr line matching PATTERN, nothing on stdout
expect_error() {
  local pattern="$1"; shift
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  [ "$rc" -eq 1 ] || [ "$rc" -eq 2 ] || fail "exit $rc: $*"
  [ "$(wc -l <"$T/err")" -eq 1 ] || fail "want one error line: $* -> $(cat "$T/err")"
  grep -q -- "$pattern" "$T/err" || fail "error does not match '$pattern': $(cat "$T/err")"
  grep -q "xledit \([a-z-]*\): \1:" "$T/err" && fail "doubled prefix: $(cat "$T/err")"
  grep -q "\.tmp-[0-9]" "$T/err" && fail "error names a temporary, not the user's path: $(cat "$T/err")"
  [ -s "$T/out" ] && fail "wrote to stdout on error: $*"
}

# trailing slash; "wrote" on stderr, nothing on stdout
"$XLEDIT" convert "$M" --out conv/ >"$T/out" 2>"$T/err" || fail "convert --out conv/: $(cat "$T/err")"
[ -f conv/model.safetensors ] || fail "convert --out conv/ wrote nothing"
[ -s "$T/out" ] && fail "convert wrote to stdout: $(cat "$T/out")"
grep -q "^wrote conv/" "$T/err" || fail "no 'wrote' on stderr: $(cat "$T/err")"
ls | grep -q tmp && fail "temporary left: $(ls)"

# a bad output fails before the work and no patch is written
mkdir -p full && touch full/x
expect_error "full/: already exists" "$XLEDIT" edit "$M" --method rome --prompt "The capital of France is" \
  --subject France --target Rome --out full/ --patch p.xlpatch
[ -e p.xlpatch ] && fail "a patch was written although --out was refused"
mkdir -p adir
expect_error "adir: is a directory" "$XLEDIT" edit "$M" --method rome --prompt "The capital of France is" \
  --subject France --target Rome --patch adir
expect_error "the folder nothere does not exist" "$XLEDIT" convert "$M" --out nothere/conv

# stale temporaries: a dead process's are removed, a live one's kept
dead=999999
while kill -0 "$dead" 2>/dev/null; do dead=$((dead - 1)); done
mkdir -p "conv2.tmp-$dead" "conv2.tmp-$$" && touch "conv2.tmp-$dead/model.safetensors"
"$XLEDIT" convert "$M" --out conv2 2>/dev/null || fail "convert --out conv2"
[ -e "conv2.tmp-$dead" ] && fail "the stale conv2.tmp-$dead was not removed"
[ -e "conv2.tmp-$$" ] || fail "the live conv2.tmp-$$ was removed"

# files follow the umask (mkstemp: 0600)
(umask 022 && "$XLEDIT" world cases --data "$SRC/data/world" --out c022.jsonl --n 2 2>/dev/null)
(umask 027 && "$XLEDIT" world corpus --data "$SRC/data/world" --out c027.txt 2>/dev/null)
[ "$(stat -c %a c022.jsonl)" = 644 ] || fail "world cases under umask 022: mode $(stat -c %a c022.jsonl)"
[ "$(stat -c %a c027.txt)" = 640 ] || fail "world corpus under umask 027: mode $(stat -c %a c027.txt)"

# messages
expect_error "unknown format" "$XLEDIT" import --format nope x.json --out x.jsonl
expect_error "adir: is a directory" "$XLEDIT" import --format bmike53 adir --out x.jsonl
expect_error "adir: is a directory" "$XLEDIT" validate adir
expect_error "adir: is a directory" "$XLEDIT" eval "$M" --data adir --out r --quiet
expect_error "adir: is a directory" "$XLEDIT" facts-check "$M" --facts adir
expect_error "adir: is a directory" "$XLEDIT" stats "$M" --layers 0 --corpus adir --out st/
[ -e st ] && fail "a failed stats left the folder st"

# two option sets of statistics side by side in the cache; edit finds one for its layer
"$XLEDIT" stats "$M" --layers 0 --corpus c027.txt --max-tokens 3000 >s1 2>/dev/null || fail "stats 3000"
"$XLEDIT" stats "$M" --layers 0 --corpus c027.txt --max-tokens 4000 >s2 2>"$T/err" || fail "stats 4000 refused: $(cat "$T/err")"
[ "$(cat s1)" != "$(cat s2)" ] && [ -f "$(cat s1)/stats.json" ] && [ -f "$(cat s2)/stats.json" ] || fail "option sets do not coexist: $(cat s1 s2)"
"$XLEDIT" edit "$M" --method rome --prompt "The capital of France is" --subject France --target Rome \
  --context-templates none --quiet --patch p2.xlpatch 2>"$T/err" || fail "edit with the cache: $(cat "$T/err")"

# tokenizer.json and token ids
mkdir -p m && cp "$M/config.json" m/ && ln -s "$M/model.safetensors" m/model.safetensors
: >m/tokenizer.json
expect_error "tokenizer.json: empty file" "$XLEDIT" info m
echo 'garbage{' >m/tokenizer.json
expect_error "tokenizer.json: not valid JSON" "$XLEDIT" info m
rm m/tokenizer.json
sed 's/"bos_token_id": *[0-9]*/"bos_token_id": 99999/' "$M/config.json" >m/config.json
expect_error "bos_token_id: 99999 is outside the vocabulary" "$XLEDIT" info m
sed 's/"eos_token_id": *[0-9]*/"eos_token_id": 99999/' "$M/config.json" >m/config.json
expect_error "eos_token_id: 99999 is outside the vocabulary" "$XLEDIT" info m

[ "$fails" -eq 0 ] && echo "cli_rough_edges: all checks passed"
exit $((fails > 0))
