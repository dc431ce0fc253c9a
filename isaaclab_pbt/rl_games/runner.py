"""The run folder and the rl_games ``Runner`` of one learner, as Isaac Lab's rl_games ``train.py`` lays them out.

Used by the one-member training (:mod:`isaaclab_pbt.rl_games.train`), the one-process population (:mod:`isaaclab_pbt.rl_games.shared`) and
:mod:`isaaclab_pbt.rl_games.play`.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

from ..core.agent_config import dump_yaml
from ..core.config import PbtCfg
from ..isaaclab.envs import dump_config
from ..tasks import register_embedded

log = logging.getLogger("isaaclab_pbt")


def log_paths(agent_cfg: dict, pbt: PbtCfg) -> tuple[str, str]:
    """``(train_dir, run_name)``: Isaac Lab's ``logs/rl_games/<name>`` and a run folder that a PBT restart keeps."""
    cfg = agent_cfg["params"]["config"]
    root = os.path.join("logs", "rl_games", cfg["name"])
    if pbt.enabled:
        root = os.path.join(pbt.directory, root)
    run = cfg.get("full_experiment_name")
    if not run:
        run = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        if pbt.enabled:
            run += f"_pbt{pbt.policy_idx:03d}"
    return os.path.abspath(root), run


def start_run(agent_cfg: dict, pbt: PbtCfg, command: list[str], env_cfg: Any) -> None:
    """Fix the run folder in the agent config and write ``params/{agent,env,command}.yaml`` there."""
    cfg = agent_cfg["params"]["config"]
    train_dir, run = log_paths(agent_cfg, pbt)
    cfg["train_dir"], cfg["full_experiment_name"] = train_dir, run
    params_dir = os.path.join(train_dir, run, "params")
    os.makedirs(params_dir, exist_ok=True)
    dump_yaml(os.path.join(params_dir, "agent.yaml"), agent_cfg)
    dump_yaml(os.path.join(params_dir, "command.yaml"), {"argv": command, "cwd": os.getcwd()})
    dump_config(os.path.join(params_dir, "env.yaml"), env_cfg)
    log.info("run folder %s", os.path.dirname(params_dir))


def build_runner(agent_cfg: dict, observer: Any):
    """An rl_games ``Runner`` loaded with the agent config, the embedded tasks registered."""
    import torch
    from rl_games.torch_runner import Runner

    threads = int(agent_cfg["params"].get("torch_threads", 1))
    if threads > 0:
        torch.set_num_threads(threads)
    register_embedded()
    runner = Runner(observer)
    runner.load({"params": agent_cfg["params"]})
    return runner
