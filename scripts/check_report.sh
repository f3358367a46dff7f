#!/usr/bin/env bash
# Opens an evaluation report (`dfd eval`'s report.html) in headless Chromium and checks that
# it rendered, self-contained:
#   1. a screenshot is taken (OUT.png, 1280 px wide);
#   2. the DOM after load carries the page's own verdict, written by its inline script:
#      `<body data-check="ok images=N/N svgs=M loads=0">` (every <img> complete with a
#      natural width, as many pictures and SVG plots as the page states in
#      data-expect-images / data-expect-svgs, the Content-Security-Policy <meta> present,
#      and no entry but data: URIs in the browser's resource timing, which lists failed
#      and blocked loads too), and those stated counts are the ones in the file;
#   3. the browser's log has no console message (the page logs nothing itself, so any is an
#      error: an exception, a Content-Security-Policy violation — the page forbids every load
#      that is not a data: URI — or a failed load) and no network error.
# Network access is cut twice over: the page's CSP, and a proxy on a closed local port.
#
# Usage: scripts/check_report.sh REPORT.html OUT.png
# Exit status: 0 when every check passes, 1 when one fails, 2 on bad usage.
# CHROMIUM=/path/to/browser overrides the browser (default: `chromium` on PATH).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 REPORT.html OUT.png" >&2
  exit 2
fi
report="$1"
shot="$2"
if [ ! -f "$report" ]; then
  echo "check_report: no such file: $report" >&2
  exit 2
fi
browser="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [ -z "$browser" ]; then
  echo "check_report: chromium not found (apt-get install chromium)" >&2
  exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
url="file://$(realpath "$report")"

# One fresh profile per browser run; every background service that could reach out is off.
browse() {
  local profile
  profile="$(mktemp -d "$work/profile.XXXXXX")"
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu \
    --disable-background-networking --no-first-run --disable-extensions --disable-sync \
    --metrics-recording-only --disable-default-apps --proxy-server=127.0.0.1:9 \
    --user-data-dir="$profile" --enable-logging=stderr --v=0 \
    --virtual-time-budget=5000 "$@" "$url"
}

fail=0
problem() {
  echo "check_report: FAIL: $*" >&2
  fail=1
}

# 1. The screenshot.
rm -f "$shot"
browse --hide-scrollbars --screenshot="$shot" --window-size=1280,4000 \
  >"$work/shot.out" 2>"$work/shot.log" || problem "the browser failed taking the screenshot"
if [ ! -s "$shot" ] || [ "$(head -c 8 "$shot" | od -An -tx1 | tr -d ' \n')" != 89504e470d0a1a0a ]; then
  problem "no PNG screenshot at $shot"
fi

# 2. The DOM after load, with the page's self-check.
browse --dump-dom >"$work/dom.html" 2>"$work/dom.log" || problem "the browser failed dumping the DOM"
expect_images="$(grep -o 'data-expect-images="[0-9]*"' "$report" | head -n1 | tr -dc 0-9 || true)"
expect_svgs="$(grep -o 'data-expect-svgs="[0-9]*"' "$report" | head -n1 | tr -dc 0-9 || true)"
check="$(grep -o 'data-check="[^"]*"' "$work/dom.html" | head -n1 || true)"
if [ -z "$expect_images" ] || [ -z "$expect_svgs" ]; then
  problem "the page states no expected counts (data-expect-images / data-expect-svgs)"
elif [ "$check" != "data-check=\"ok images=$expect_images/$expect_images svgs=$expect_svgs loads=0\"" ]; then
  problem "page self-check: ${check:-no data-check attribute} (expected ok images=$expect_images/$expect_images svgs=$expect_svgs loads=0)"
fi

# 3. Console messages and network errors, from both runs.
if grep -h -E ':CONSOLE[:(]|net::ERR_|Content Security Policy|Refused to' \
  "$work/shot.log" "$work/dom.log" >"$work/errors.log"; then
  problem "console or network errors:"
  sed 's/^/  /' "$work/errors.log" >&2
fi

if [ "$fail" -ne 0 ]; then
  exit 1
fi
echo "check_report: ok: ${check#data-check=}, screenshot $shot"
