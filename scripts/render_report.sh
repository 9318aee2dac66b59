#!/usr/bin/env bash
# Render a latentcot report (or any HTML page) to a PNG with headless Chromium, to check its look.
# Not part of the tests. Needs Debian's chromium: apt-get install -y --no-install-recommends chromium
#   scripts/render_report.sh docs/example_report/report.html docs/example_report/report_screenshot.png [width]
set -euo pipefail
html="${1:?usage: render_report.sh REPORT.html OUT.png [WIDTH]}"
out="${2:?usage: render_report.sh REPORT.html OUT.png [WIDTH]}"
width="${3:-1200}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
  echo "no chromium found: apt-get install -y --no-install-recommends chromium" >&2
  exit 1
fi
# A tall window captures the whole page; Chromium crops nothing below the window, so size it generously.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
  --window-size="${width},${HEIGHT:-4200}" --screenshot="$(realpath -m "$out")" "file://$(realpath "$html")" 2>/dev/null
echo "wrote $out"
