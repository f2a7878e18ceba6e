#!/usr/bin/env bash
# Debian's Chromium and its WebDriver, for tests/test_browser.py (the page at / with a fake
# camera). Never a downloaded browser build: Selenium is pointed at /usr/bin/chromium and
# /usr/bin/chromedriver. Without them the browser test skips with its reason.
# Also Xvfb (Debian's xvfb), the X server tests/test_webcam_window.py opens the webcam's live
# window on and takes its screenshot from.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && command -v Xvfb >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver xvfb >/dev/null
chromium --version
chromedriver --version
