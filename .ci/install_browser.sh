#!/bin/sh
# Installs what the browser tests in tests/test_app.py need: Debian's chromium package and the
# playwright Python package. The tests drive /usr/bin/chromium through Playwright's Python API,
# so `playwright install` (which downloads Playwright's own browser builds) is never run.
# Usage: .ci/install_browser.sh          (PYTHON=python3.11 .ci/install_browser.sh for another Python)
set -eu
PYTHON="${PYTHON:-python}"

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

if ! "$PYTHON" -c "import playwright" 2>/dev/null; then
    "$PYTHON" -m pip install playwright
fi

/usr/bin/chromium --version 2>/dev/null
"$PYTHON" -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
