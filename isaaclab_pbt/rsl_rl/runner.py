"""Building rsl_rl's ``OnPolicyRunner`` from an agent config dict (Isaac Lab's ``RslRlOnPolicyRunnerCfg.to_dict()`` layout)."""

from __future__ import annotations

from typing import Any, Optional

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
