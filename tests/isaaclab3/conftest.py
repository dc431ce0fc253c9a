"""Real Isaac Lab 3.0 (PyPI, kit-less, Newton, CPU, offline). Skipped where Isaac Lab is not installed."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

if importlib.util.find_spec("isaaclab_tasks") is None:  # found without importing: the asset root comes first
    pytest.skip("Isaac Lab 3.0 is installed only in the Python 3.12 test environment", allow_module_level=True)

from . import offline_assets  # noqa: E402

# Isaac Lab reads the asset root when isaaclab.utils.assets is first imported: set it before that
CACHE = os.environ.get("ISAACLAB_PBT_ASSET_CACHE", os.path.expanduser("~/.cache/isaaclab_pbt/assets"))
os.environ["ISAACSIM_ASSET_ROOT"] = offline_assets.build(CACHE)
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def il_env():
    """Environment for Isaac Lab member processes."""
    from ..conftest import child_env

    return {**child_env(), "ISAACSIM_ASSET_ROOT": os.environ["ISAACSIM_ASSET_ROOT"]}
