"""The PBT core imports with torch and every RL library absent: a backend is the only place they are needed."""

import subprocess
import sys

CORE = ["config", "objective", "selection", "mutation", "decision", "workspace", "member", "errors", "values",
        "overrides", "restart", "lineage", "status"]
BLOCKED = ["torch", "rl_games", "rsl_rl", "skrl", "numpy", "tensordict", "isaaclab"]


def test_the_core_imports_without_torch_or_any_rl_library():
    code = (
        "import sys\n"
        f"for name in {BLOCKED!r}:\n"
        "    sys.modules[name] = None  # importing it now raises ImportError\n"
        f"for name in {CORE!r}:\n"
        "    __import__('isaaclab_pbt.' + name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED!r} and sys.modules[m] is not None))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
