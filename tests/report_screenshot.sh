#!/usr/bin/env bash
# report_screenshot.sh XLEDIT SRCDIR [IMG_DIR]: the HTML report seen as a person sees it, in
# headless Chromium (run by hand; not in CI: Chromium is a large package). Skips (exit 77)
# without chromium.
# 1. Renders the report of a real demo run (fuzz/seeds/run_dir: ROME, 2 units, 8 languages) to
#    IMG_DIR/report-top.png (the top of the page, 1280x1600; only when IMG_DIR is given).
# 2. The check, per Indic script of the report (Devanagari, Tamil, Kannada): the report's own
#    words in that script, in the report's font stack, are rendered twice: with this machine's
#    fonts, and with a fontconfig that holds only DejaVu (no glyph of these scripts: every
#    character becomes the same empty box, "tofu"). With the fonts the report names installed
#    (fonts-noto-core) the two images differ; without them both are the same boxes and the
#    script fails. The second rendering shows the check can fail: it is the page without fonts.
#    With IMG_DIR both renderings are kept: IMG_DIR/indic-SCRIPT-fonts.png and -tofu.png.
set -u
XLEDIT="$1"
SRC="$2"
IMG="${3:-}"
CHROME="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$CHROME" ]; then
  echo "report_screenshot: SKIPPED: no chromium (apt-get install chromium)"
  exit 77
fi
T="$(mktemp -d /tmp/xle_report_shot.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# shot HTML PNG WIDTH HEIGHT [VAR=VALUE...]: a headless screenshot of a local page
shot() {
  local html="$1" png="$2" w="$3" h="$4"
  shift 4
  env "$@" HOME="$T" "$CHROME" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$T/profile" --window-size="$w,$h" --screenshot="$png" "file://$html" \
    >"$T/chrome.log" 2>&1
  [ -s "$png" ] || { fail "chromium wrote no screenshot of $html: $(tail -n 3 "$T/chrome.log")"; return 1; }
}

"$XLEDIT" report "$SRC/fuzz/seeds/run_dir/demo-rome-2units" --format html >"$T/report.html" ||
  { echo "FAIL: xledit report" >&2; exit 1; }
if [ -n "$IMG" ]; then
  mkdir -p "$IMG"
  shot "$T/report.html" "$T/report.png" 1280 1600 && cp "$T/report.png" "$IMG/report-top.png" && echo "wrote $IMG/report-top.png"
fi

stack="$(grep -o "font-family:[^;}]*" "$T/report.html" | head -n 1)"
[ -n "$stack" ] || fail "no font-family in the report"
mkdir -p "$T/fc-cache"
cat >"$T/fonts.conf" <<CONF
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig><dir>/usr/share/fonts/truetype/dejavu</dir><cachedir>$T/fc-cache</cachedir></fontconfig>
CONF
for script in Devanagari:0900-097F Tamil:0B80-0BFF Kannada:0C80-0CFF; do
  name="${script%%:*}" range="${script#*:}"
  words="$(grep -o -P "[\\x{${range%-*}}-\\x{${range#*-}}]+" "$T/report.html" | sort -u | head -n 12 | paste -sd ' ' -)"
  if [ -z "$words" ]; then
    fail "$name: no word of the script in the report"
    continue
  fi
  printf '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="%s;font-size:28px;margin:8px">%s</body></html>\n' \
    "$stack" "$words" >"$T/$name.html"
  shot "$T/$name.html" "$T/$name-fonts.png" 900 150 || continue
  shot "$T/$name.html" "$T/$name-tofu.png" 900 150 FONTCONFIG_FILE="$T/fonts.conf" || continue
  if cmp -s "$T/$name-fonts.png" "$T/$name-tofu.png"; then
    fail "$name: the report's words render as with no $name font (tofu); install fonts-noto-core"
  else
    echo "$name: rendered with glyphs ($(echo "$words" | wc -w) words differ from their tofu rendering)"
  fi
  if [ -n "$IMG" ]; then
    cp "$T/$name-fonts.png" "$IMG/indic-$name-fonts.png" && cp "$T/$name-tofu.png" "$IMG/indic-$name-tofu.png"
  fi
done
[ "$fails" -eq 0 ] && echo "report_screenshot: all passed"
exit $((fails > 0))
