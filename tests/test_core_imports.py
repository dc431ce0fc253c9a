"""The PBT core imports with torch and every RL library absent: a backend is the only place they are needed."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import isaaclab_pbt.core

CORE = sorted(f"isaaclab_pbt.core.{m.name}" for m in pkgutil.iter_modules([str(Path(isaaclab_pbt.core.__file__).parent)]))
#: Results tools that read a workspace on a machine without the training stack.
READERS = ["isaaclab_pbt.results.lineage", "isaaclab_pbt.results.status"]
BLOCKED = ["torch", "rl_games", "rsl_rl", "skrl", "numpy", "tensordict", "isaaclab"]


def test_the_core_imports_without_torch_or_any_rl_library():
    parts = ("agent_config", "config", "objective", "workspace", "selection", "mutation", "decision", "member", "exchange")
    assert {f"isaaclab_pbt.core.{p}" for p in parts} <= set(CORE), CORE  # the scan found the core
    code = (
        "import sys\n"
        f"for name in {BLOCKED!r}:\n"
        "    sys.modules[name] = None  # importing it now raises ImportError\n"
        f"for name in {CORE + READERS!r}:\n"
        "    __import__(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED!r} and sys.modules[m] is not None))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
