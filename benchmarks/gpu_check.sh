#!/usr/bin/env bash
# The GPU path in one prepared run (see gpu_check.py): on a machine without a CUDA GPU it says so
# and exits 0. Run from a set-up checkout:  bash benchmarks/gpu_check.sh [--scans 64] [--steps 300]
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 480 .venv/bin/python benchmarks/gpu_check.py "$@"
