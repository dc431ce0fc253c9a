#!/usr/bin/env bash
# Install and run every test.
#   1. Python 3.11, CPU torch: ruff, then the package, real rl_games, rsl_rl and skrl training, real member processes, Ray.
#   2. The package as a user installs it: a built wheel (not editable) in a fresh venv, running the
#      README's main job (the demo population) from a folder outside the checkout.
#   3. Python 3.12 with isaaclab==3.0.0 from PyPI: the Isaac Lab tests (kit-less, Newton, CPU, offline).
# uv installs the Isaac Lab environment (its resolver takes minutes with pip); uv's, pip's and
# Warp's caches (~/.cache/uv, ~/.cache/pip, ~/.cache/warp) make later runs fast.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0          # the CPU build first, so nothing pulls a CUDA torch
.venv/bin/pip install -q -e ".[test]"
.venv/bin/ruff check .                          # lint and import order (ruff.toml)
.venv/bin/python -m pytest tests --ignore=tests/isaaclab3

ROOT=$(pwd)
rm -rf dist .venv-wheel
.venv/bin/pip wheel -q --no-deps -w dist .
python3 -m venv .venv-wheel
.venv-wheel/bin/pip install -q torch==2.13.0
.venv-wheel/bin/pip install -q dist/isaaclab_pbt-*.whl
outside=$(mktemp -d)
( cd "$outside"
  where=$("$ROOT/.venv-wheel/bin/python" -c "import isaaclab_pbt, os; print(os.path.dirname(isaaclab_pbt.__file__))")
  [[ "$where" == "$ROOT/.venv-wheel/"*"/site-packages/isaaclab_pbt" ]] || { echo "test_all.sh: the wheel test imported $where" >&2; exit 1; }
  PATH="$ROOT/.venv-wheel/bin:$PATH" bash "$ROOT/scripts/demo_population.sh" 2 "$outside/demo" 30 >"$outside/demo.log" 2>&1 \
    || { tail -n 40 "$outside/demo.log"; echo "test_all.sh: the demo failed with the wheel install" >&2; exit 1; }
  grep -q "PBT population in $outside/demo/ws" "$outside/demo.log"
  echo "wheel install: the demo population trained from $outside with $where" )
rm -rf "$outside"

if ! PYENV_VERSION=3.12.1 python3.12 --version >/dev/null 2>&1; then
  echo "test_all.sh: Python 3.12 (python3.12) is needed for the Isaac Lab 3.0 tests" >&2
  exit 1
fi
PYENV_VERSION=3.12.1 python3.12 -m venv .venv-isaaclab
.venv/bin/pip install -q uv
UV=".venv/bin/uv pip install -q --python .venv-isaaclab/bin/python"
$UV "isaaclab==3.0.0" "setuptools<82" gym pytest pytest-timeout
$UV -e ".[rsl_rl,skrl]"                         # rsl_rl and skrl members on Isaac Lab tasks
.venv-isaaclab/bin/python -m pytest tests/isaaclab3
