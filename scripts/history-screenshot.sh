#!/usr/bin/env bash
# Draws a real checked history with `history html` and takes a screenshot
# of it in headless Chromium, to look at what `history html` writes in a
# real browser (the Rust test in src/check/html.rs checks its structure
# without one).
#
#   scripts/history-screenshot.sh [OUT_DIR]     (default: /tmp/kvsh-history)
#
# Writes OUT_DIR/history.html and OUT_DIR/history.png. Needs chromium
# (`apt-get install -y chromium` on Debian). The page loads nothing from the
# network; Chromium's own background traffic is switched off too, so the
# screenshot shows only what the file holds.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/kvsh-history}"
mkdir -p "$out"
html="$out/history.html"
png="$out/history.png"

cargo run --release --quiet -- \
    -c "check --duration 4s --clients 3 --keys 4 --faults kill,pause --seed 3; history html $html"

browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
    echo "chromium is not installed (apt-get install -y chromium); the page is $html" >&2
    exit 1
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run \
    --user-data-dir="$profile" --screenshot="$png" --window-size=1400,900 \
    "file://$(realpath "$html")" 2>/dev/null
echo "page: $html"
echo "screenshot: $png"
