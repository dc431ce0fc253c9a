"""The run folder and skrl's ``Runner`` of one learner, from an agent config dict (Isaac Lab's skrl layout).

The run folder is ``logs/skrl/<agent.experiment.directory>/<run>`` as Isaac Lab's skrl ``train.py``
lays it out. Used by the one-member training (:mod:`isaaclab_pbt.skrl.train`) and the one-process
population (:mod:`isaaclab_pbt.skrl.shared`).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any, Optional

from ..core.agent_config import dump_yaml
from ..core.config import PbtCfg
from ..core.errors import UsageError
from ..isaaclab.envs import dump_config
from . import learner as live

log = logging.getLogger("isaaclab_pbt")

#: Keys of our agent YAML that are not skrl's Runner's: the PBT block, the task's settings, the budget, a restart's run folder.
_OURS = ("pbt", "env", "torch_threads", "num_envs", "max_iterations", "device", "pbt_run_dir")

def run_dir(agent_cfg: dict, pbt: PbtCfg) -> str:
    """``logs/skrl/<experiment.directory>/<date>_ppo_torch[_pbt<idx>]``, or the folder a PBT restart continues in."""
    if agent_cfg.get("pbt_run_dir"):
        return os.path.abspath(str(agent_cfg["pbt_run_dir"]))
    experiment = agent_cfg["agent"].get("experiment") or {}
    root = os.path.join(pbt.directory if pbt.enabled else ".", "logs", "skrl", str(experiment.get("directory") or "skrl"))
    name = datetime.now().strftime("%Y-%m-%d_%H-%M-%S") + "_ppo_torch"
    if experiment.get("experiment_name"):
        name += f"_{experiment['experiment_name']}"
    if pbt.enabled:
        name += f"_pbt{pbt.policy_idx:03d}"
    return os.path.abspath(os.path.join(root, name))


def runner_cfg(agent_cfg: dict, folder: str, iterations: int) -> dict:
    """The part of the agent config skrl's ``Runner`` reads: logging into ``folder``, ``iterations`` PPO updates long."""
    cfg = {k: v for k, v in agent_cfg.items() if k not in _OURS}
    agent = dict(cfg["agent"])
    agent["experiment"] = {**(agent.get("experiment") or {}), "directory": os.path.dirname(folder), "experiment_name": os.path.basename(folder)}
    cfg["agent"] = agent
    cfg["trainer"] = {**cfg["trainer"], "timesteps": int(iterations) * int(agent["rollouts"])}
    return cfg


def build_runner(agent_cfg: dict, env: Any, folder: str, iterations: int) -> Any:
    """skrl's ``Runner`` on ``env`` for ``iterations`` PPO updates, one torch thread unless the config says otherwise.

    ``rewards_shaper_scale`` becomes a :class:`~isaaclab_pbt.skrl.learner.ScaleRewards` (the same scaling skrl's
    closure does), so PBT can read it back and change it live.
    """
    import torch
    from skrl.utils.runner.torch import Runner

    threads = int(agent_cfg.get("torch_threads", 1))
    if threads > 0:
        torch.set_num_threads(threads)
    runner = Runner(env, runner_cfg(agent_cfg, folder, max(int(iterations), 1)))
    scale = agent_cfg["agent"].get("rewards_shaper_scale")
    if scale is not None:
        runner.agent.cfg.rewards_shaper = live.ScaleRewards(scale)
    return runner


def start_run(agent_cfg: dict, pbt: PbtCfg, args: Any, env_cfg: Any) -> str:
    """Diversify a fresh member, then create the run folder with ``params/agent.yaml`` and ``params/env.yaml``."""
    from ..core.member import diversify

    if pbt.enabled and pbt.diversify and not args.checkpoint and not pbt.one_process:  # fresh starts; shared: per member
        diversify(pbt, agent_cfg, env_cfg, int(agent_cfg.get("seed", 42)))
    folder = run_dir(agent_cfg, pbt)
    os.makedirs(os.path.join(folder, "params"), exist_ok=True)
    dump_yaml(os.path.join(folder, "params", "agent.yaml"), agent_cfg)
    dump_config(os.path.join(folder, "params", "env.yaml"), env_cfg)
    log.info("run folder %s", folder)
    return folder


def build_learner(agent_cfg: dict, env: Any, folder: str, checkpoint: Optional[str]) -> tuple[Any, Any]:
    """skrl's ``Runner`` on ``env`` and the PBT learner around its agent, continued from ``checkpoint`` when given.

    The checkpoint is loaded safely and checked whole before anything is copied; its iteration
    count (a PBT restart copy or a published state carries it) shortens what is left to train.
    """
    import torch

    from . import state
    from .learner import SkrlLearner

    loaded, done = None, 0
    if checkpoint:
        try:
            loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UsageError(f"--checkpoint: cannot load {checkpoint} safely: {str(e).splitlines()[0]}") from None
        extra = loaded.get(state.PBT_KEY) if isinstance(loaded, dict) else None
        done = int((extra or {}).get("iter") or 0)
    max_iterations = int(agent_cfg["max_iterations"])
    runner = build_runner(agent_cfg, env, folder, max_iterations - done)
    learner = SkrlLearner(runner.agent, env, max_iterations, folder, done)
    if loaded is not None:
        problem = state.misfit(runner.agent, loaded)
        if problem:
            raise UsageError(f"--checkpoint: {checkpoint} does not fit this agent: {problem}")
        state.load_into(runner.agent, loaded, env)
        learner.offset_timesteps()
    return runner, learner
