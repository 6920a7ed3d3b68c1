#!/usr/bin/env bash
# Installs the browser the viewer tests (tests/integration/test_viewer_browser.py) drive:
# Debian's chromium package, run by Playwright's Python API through
# executable_path. Playwright's own browser download (`playwright install`)
# is not used: it needs network access to Playwright's CDN.
# Does nothing when chromium is already on PATH.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "chromium already installed: $(command -v chromium || command -v chromium-browser)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium
command -v chromium
