#!/usr/bin/env bash
# Headless Chromium for the report's browser test (tests/pipeline/test_browser.py).
# Installs the Debian packages chromium and chromium-driver when no Chromium is on PATH and
# apt-get can run (root, or passwordless sudo). Exits 0 either way: the test skips, with the
# reason, where no browser could be installed.
set -uo pipefail
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then exit 0; fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no apt-get; install Chromium by hand to run the browser test" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install-chromium: not root and no passwordless sudo; the browser test will skip" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || {
  $SUDO apt-get update >/dev/null 2>&1 &&
  $SUDO apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null 2>&1
} || echo "install-chromium: apt-get could not install chromium; the browser test will skip" >&2
exit 0
