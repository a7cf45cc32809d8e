#!/usr/bin/env bash
# `ax perf report`'s HTML page in headless Chromium (report.test.js says what
# it checks). Installs what it needs by itself: Debian's chromium, and
# playwright-core from package-lock.json into tests/report/node_modules (no
# browser download: it drives the system's Chromium). Expects ./scripts/test
# to have built `ax` and examples/word-count's workspace.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    else
        echo "error: chromium not found; the report test needs it (Debian: apt-get install chromium)" >&2
        exit 1
    fi
fi
if ! cmp -s package-lock.json node_modules/.installed-from-lock; then
    npm ci --ignore-scripts --no-audit --no-fund --silent
    cp package-lock.json node_modules/.installed-from-lock
fi
node --test --test-reporter=tap report.test.js
