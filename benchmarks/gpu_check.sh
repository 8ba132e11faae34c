#!/usr/bin/env bash
# The GPU check: run it on any machine with a CUDA device, in the project's environment
# (`make install` first), and paste its output into the README. Without a CUDA device it
# says so and exits 0, having checked nothing. About 5 minutes on one GPU.
#
#   $ bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
