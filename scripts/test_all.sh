#!/usr/bin/env bash
# Install and run every test.
#   1. Python 3.11, CPU torch: the package, real rl_games training, real member processes, Ray.
#   2. Python 3.12 with isaaclab==3.0.0 from PyPI: the Isaac Lab tests (kit-less, Newton, CPU, offline).
# uv installs the Isaac Lab environment (its resolver takes minutes with pip); uv's, pip's and
# Warp's caches (~/.cache/uv, ~/.cache/pip, ~/.cache/warp) make later runs fast.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0          # the CPU build first, so nothing pulls a CUDA torch
.venv/bin/pip install -q -e ".[test]"
.venv/bin/python -m pytest tests --ignore=tests/isaaclab3

if ! PYENV_VERSION=3.12.1 python3.12 --version >/dev/null 2>&1; then
  echo "test_all.sh: Python 3.12 (python3.12) is needed for the Isaac Lab 3.0 tests" >&2
  exit 1
fi
PYENV_VERSION=3.12.1 python3.12 -m venv .venv-isaaclab
.venv/bin/pip install -q uv
UV=".venv/bin/uv pip install -q --python .venv-isaaclab/bin/python"
$UV "isaaclab==3.0.0" "setuptools<82" gym pytest pytest-timeout
$UV -e .
.venv-isaaclab/bin/python -m pytest tests/isaaclab3
