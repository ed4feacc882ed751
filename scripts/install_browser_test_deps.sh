#!/usr/bin/env bash
# Browser-test dependencies of the studio (tests/studio/test_browser_*.py), idempotent:
#   - Debian's chromium at /usr/bin/chromium (apt-get only when it is missing);
#   - Python Playwright in the project's virtual environment (pip only when it is missing).
# Playwright drives the system Chromium; `playwright install` (a browser download) is never run.
# Without these the browser tests skip with a reason; everything else still runs.
#
# Usage: scripts/install_browser_test_deps.sh [VENV]   (default: .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    echo "installing chromium (Debian package)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi

if ! "$VENV/bin/python" -c "import playwright.sync_api" 2>/dev/null; then
    echo "installing playwright into $VENV"
    "$VENV/bin/python" -m pip install -q "playwright>=1.40"
fi

/usr/bin/chromium --version 2>/dev/null  # the Debian wrapper warns on stderr; harmless
"$VENV/bin/python" -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
