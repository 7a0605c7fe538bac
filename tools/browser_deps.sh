#!/usr/bin/env bash
# Install the browser that tests/test_browser.py drives (Debian's chromium at /usr/bin/chromium).
#
#   tools/browser_deps.sh         (what `make test` and .ci/run call first)
#
# Playwright's own `playwright install` downloads its browsers from a CDN that CI cannot reach, so the test
# launches the distribution's Chromium instead. Idempotent: does nothing when /usr/bin/chromium exists.
# Never fails the build: without root or without apt it prints one line saying the browser test will be
# skipped and how to install Chromium, and exits 0.
set -uo pipefail
CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "browser-deps: $CHROMIUM is installed"
    exit 0
fi

skip() {
    echo "browser-deps: *** $1: tests/test_browser.py WILL BE SKIPPED; install Chromium with" \
         "'sudo apt-get install -y --no-install-recommends chromium' (Debian/Ubuntu) ***"
    exit 0
}

[ "$EUID" -eq 0 ] || skip "not root, cannot install $CHROMIUM"
command -v apt-get >/dev/null || skip "no apt-get on this machine"

echo "browser-deps: installing Debian's chromium (once)"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/browser-deps.XXXXXX.log)
# Lock timeout: another apt run on the machine (unattended upgrades, a parallel job) waits instead of failing.
apt="apt-get -q -o DPkg::Lock::Timeout=300"
$apt update >>"$log" 2>&1 || skip "apt-get update failed (its output: $log)"
$apt install -y --no-install-recommends chromium >>"$log" 2>&1 || skip "apt-get install chromium failed (its output: $log)"
rm -f "$log"
[ -x "$CHROMIUM" ] || skip "apt installed chromium but $CHROMIUM is missing"
echo "browser-deps: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM") installed"
