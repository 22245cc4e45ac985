#!/usr/bin/env bash
# Installs Debian's Chromium (and its chromedriver) for the browser tests in
# e2e/ (e2e/browser_*_test.go drive /usr/bin/chromium headless through
# chromedp). Safe to run repeatedly: does nothing when both are there. Runs
# apt-get update only when the first install attempt fails (a fresh machine's
# package lists may be missing or stale). Uses sudo only when not root.
set -u
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "chromium: installed ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "chromium: not installed and apt-get is missing: install Chromium so that /usr/bin/chromium exists" >&2
  exit 1
fi
SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
install() { $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core >/tmp/chromium-install.$$.log 2>&1; }
echo "chromium: installing with apt-get (chromium chromium-driver)"
if ! install; then
  echo "chromium: install failed; running apt-get update and trying again"
  $SUDO apt-get update -q >/dev/null 2>&1
  if ! install; then
    tail -20 /tmp/chromium-install.$$.log >&2
    rm -f /tmp/chromium-install.$$.log
    echo "chromium: could not install (see above)" >&2
    exit 1
  fi
fi
rm -f /tmp/chromium-install.$$.log
echo "chromium: installed ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
