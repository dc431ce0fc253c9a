"""Shared helpers: real rl_games agents on the embedded task, and real training processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

# The adversarial part of the suite counts what it survived: tests marked
# ``@pytest.mark.adversarial("configs rejected")`` add one to that count when they pass, and
# ``adversary_figure("intervals lost per kill", 1)`` keeps the largest figure seen under a name.
# Both are printed at the end of the run, so every run reports its own numbers.
_COUNTS: dict[str, int] = {}
_FIGURES: dict[str, float] = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "adversarial(category): a failure-path case, counted under category when it passes")


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        for category in getattr(report, "adversarial", ()):
            _COUNTS[category] = _COUNTS.get(category, 0) + 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().adversarial = [m.args[0] for m in item.iter_markers("adversarial")]


def pytest_terminal_summary(terminalreporter):
    if _COUNTS or _FIGURES:
        terminalreporter.section("failure paths survived")
        for name, count in sorted(_COUNTS.items()):
            terminalreporter.write_line(f"{name}: {count}")
        for name, value in sorted(_FIGURES.items()):
            terminalreporter.write_line(f"{name} (worst seen): {value:g}")


@pytest.fixture
def adversary_figure():
    """``record(name, value)``: report the worst (largest) ``value`` seen under ``name`` at the end of the run."""
    def record(name: str, value: float) -> None:
        _FIGURES[name] = max(value, _FIGURES.get(name, value))
    return record


ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "scripts" / "train.py")


def child_env() -> dict:
    """Environment for member processes: one thread each, unbuffered output."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def start_member(cwd: Path, args: list[str], log_name: str, env: Optional[dict] = None, script: str = TRAIN) -> subprocess.Popen:
    """Start ``script`` (default ``scripts/train.py``) as a real OS process, its output in ``cwd/log_name``."""
    log = open(cwd / log_name, "wb")
    return subprocess.Popen([sys.executable, script, *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            env=env or child_env())


def run_population(cwd: Path, members: list[list[str]], workspace: Path, laggard: Optional[int] = None,
                   env: Optional[dict] = None, timeout: float = 600, script: str = TRAIN) -> None:
    """Train one process per member (``members[i]``: its arguments) until all exit 0.

    The ``laggard`` starts only once every other member published a record: whatever the load
    of the machine, it then always has someone to be ranked against.
    """
    from isaaclab_pbt.core.workspace import Workspace

    procs = {i: start_member(cwd, args, f"member{i}.log", env, script) for i, args in enumerate(members) if i != laggard}
    if laggard is not None:
        ws, end = Workspace(str(workspace)), time.monotonic() + timeout
        while not all(ws.latest(i) for i in procs):
            assert time.monotonic() < end and all(p.poll() in (None, 0) for p in procs.values()), "members did not start"
            time.sleep(0.2)
        procs[laggard] = start_member(cwd, members[laggard], f"member{laggard}.log", env, script)
    for i, proc in sorted(procs.items()):
        assert proc.wait(timeout=timeout) == 0, (cwd / f"member{i}.log").read_text()[-4000:]


class Payload:
    """Unpickling this runs ``touch <marker>``: what a planted checkpoint would do to an unrestricted loader."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant_pickle(path: Path, marker: Path) -> None:
    """Write a file shaped like a checkpoint whose unpickling would create ``marker``."""
    import pickle

    with open(path, "wb") as f:
        pickle.dump({"model": {}, "x": Payload(marker)}, f)


def make_agent(train_dir: Path, overrides: list[str] = (), observer=None, run: str = "run"):
    """A real rl_games PPO agent on the embedded task, built as ``scripts/train.py`` builds it.

    ``observer`` is a function of the final agent config returning the rl_games observer.
    """
    from rl_games.common.algo_observer import IsaacAlgoObserver

    from isaaclab_pbt.rl_games.runner import build_runner
    from isaaclab_pbt.rl_games.train import configure, parse_args

    args, ov = parse_args(["--num_envs=32", *overrides])
    agent_cfg, _, _ = configure(args, ov)
    cfg = agent_cfg["params"]["config"]
    cfg["train_dir"], cfg["full_experiment_name"] = str(train_dir), run
    cfg["print_stats"] = False
    cfg["minibatch_size"] = 256  # 32 envs x 16 steps = 512 frames per epoch
    runner = build_runner(agent_cfg, observer(agent_cfg) if observer else IsaacAlgoObserver())
    return runner.algo_factory.create(runner.algo_name, base_name="run", params=runner.params), agent_cfg


def train_epochs(agent, epochs: int) -> None:
    """Run ``epochs`` PPO epochs on a live agent without its own endless loop."""
    if agent.obs is None:
        agent.init_tensors()
        agent.obs = agent.env_reset()
    for _ in range(epochs):
        agent.update_epoch()
        agent.train_epoch()
        agent.frame += agent.curr_frames


@pytest.fixture
def agent_factory(tmp_path):
    def build(*overrides, observer=None, run="run"):
        return make_agent(tmp_path / "logs", list(overrides), observer, run)
    return build
