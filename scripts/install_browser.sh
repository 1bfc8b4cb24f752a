#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the kiosk's end-to-end test (Debian packages).
# Idempotent: does nothing when /usr/bin/chromium and /usr/bin/chromedriver are there.
# Never fails the build: without them the e2e test skips and says why.
set -u
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: apt-get not found; the kiosk e2e test will be skipped" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install_browser: not root and no passwordless sudo; the kiosk e2e test will be skipped" >&2
        exit 0
    fi
fi
echo "install_browser: installing chromium and chromium-driver (Debian packages)..."
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation fonts-dejavu-core; } \
        >/tmp/masknet-install-browser.log 2>&1; then
    echo "install_browser: apt-get failed (see /tmp/masknet-install-browser.log); the kiosk e2e test will be skipped" >&2
fi
exit 0
