"""The run folder and rsl_rl's ``OnPolicyRunner`` of one learner, from an agent config dict.

The dict is Isaac Lab's ``RslRlOnPolicyRunnerCfg.to_dict()`` layout; the run folder is
``logs/rsl_rl/<experiment_name>/<run>`` as Isaac Lab's rsl_rl ``train.py`` lays it out. Used by the
one-member training (:mod:`isaaclab_pbt.rsl_rl.train`) and the one-process population (:mod:`isaaclab_pbt.rsl_rl.shared`).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any, Optional

from ..core.agent_config import dump_yaml
from ..core.config import PbtCfg
from ..isaaclab.envs import dump_config

log = logging.getLogger("isaaclab_pbt")

#: Keys of our agent YAML that are not rsl_rl's: the PBT block, the embedded task's settings, a restart's run folder.
_OURS = ("pbt", "env", "torch_threads", "num_envs", "pbt_run_dir")


def train_cfg(agent_cfg: dict) -> dict:
    """The part of the agent config that rsl_rl's runner reads."""
    return {k: v for k, v in agent_cfg.items() if k not in _OURS}


def build_runner(agent_cfg: dict, env: Any, log_dir: Optional[str]) -> Any:
    """An ``OnPolicyRunner`` on ``env``, one torch thread unless the config says otherwise."""
    import torch
    from rsl_rl.runners import OnPolicyRunner

    threads = int(agent_cfg.get("torch_threads", 1))
    if threads > 0:
        torch.set_num_threads(threads)
    return OnPolicyRunner(env, train_cfg(agent_cfg), log_dir=log_dir, device=str(agent_cfg.get("device", "cpu")))


def run_dir(args: Any, agent_cfg: dict, pbt: PbtCfg) -> str:
    """``logs/rsl_rl/<experiment>/<date>[_<run_name>][_pbt<idx>]``, or the folder a PBT restart continues in."""
    if agent_cfg.get("pbt_run_dir"):
        return str(agent_cfg["pbt_run_dir"])
    root = os.path.join(pbt.directory if pbt.enabled else ".", "logs", "rsl_rl", str(agent_cfg.get("experiment_name") or "rsl_rl"))
    name = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run_name = args.run_name or agent_cfg.get("run_name")
    if run_name:
        name += f"_{run_name}"
    if pbt.enabled:
        name += f"_pbt{pbt.policy_idx:03d}"
    return os.path.abspath(os.path.join(root, name))


def start_run(args: Any, agent_cfg: dict, pbt: PbtCfg, env_cfg: Any) -> str:
    """Create the run folder with ``params/agent.yaml`` and ``params/env.yaml``, as Isaac Lab's scripts write them."""
    folder = run_dir(args, agent_cfg, pbt)
    os.makedirs(os.path.join(folder, "params"), exist_ok=True)
    dump_yaml(os.path.join(folder, "params", "agent.yaml"), agent_cfg)
    dump_config(os.path.join(folder, "params", "env.yaml"), env_cfg)
    log.info("run folder %s", folder)
    return folder
