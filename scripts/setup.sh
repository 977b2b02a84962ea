#!/usr/bin/env bash
# Installs orient into ./.venv, with the system tools it calls (jpegtran, exiftool) and Debian's
# chromium, which the review page's browser test drives (never a downloaded browser).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v jpegtran >/dev/null || missing+=(libjpeg-turbo-progs)
command -v exiftool >/dev/null || missing+=(libimage-exiftool-perl)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
echo "orient installed: $(.venv/bin/orient --help >/dev/null && echo ok) (run .venv/bin/orient --help)"
