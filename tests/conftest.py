"""Shared helpers: real rl_games agents on the embedded task, and real training processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "scripts" / "train.py")


def child_env() -> dict:
    """Environment for member processes: one thread each, unbuffered output."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def start_member(cwd: Path, args: list[str], log_name: str) -> subprocess.Popen:
    """Start ``scripts/train.py`` as a real OS process, its output in ``cwd/log_name``."""
    log = open(cwd / log_name, "wb")
    return subprocess.Popen([sys.executable, TRAIN, *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=child_env())


def make_agent(train_dir: Path, overrides: list[str] = (), observer=None, run: str = "run"):
    """A real rl_games PPO agent on the embedded task, built as ``scripts/train.py`` builds it.

    ``observer`` is a function of the final agent config returning the rl_games observer.
    """
    from rl_games.common.algo_observer import IsaacAlgoObserver

    from isaaclab_pbt.train import build_runner, configure, parse_args

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
