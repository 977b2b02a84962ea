#!/usr/bin/env bash
# Installs orient into ./.venv, with the system tools it calls (jpegtran, exiftool) and chromium (browser test).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v jpegtran >/dev/null || ! command -v exiftool >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    libjpeg-turbo-progs libimage-exiftool-perl >/dev/null
fi
# The review page's browser test drives Debian's chromium (never a downloaded one).
if ! command -v chromium >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
echo "orient installed: $(.venv/bin/orient --help >/dev/null && echo ok) (run .venv/bin/orient --help)"
