"""A whole skrl population in one process (``agent.pbt.mode=shared``), on the embedded tasks and Isaac Lab's.

The same layout as the rl_games and rsl_rl drivers: one env of ``num_policies x
num_envs`` envs split into blocks (:class:`~isaaclab_pbt.shared.lockstep.LockstepEnv`), one skrl
``Runner`` (agent and sequential trainer) per block, each running skrl's own training loop in a
thread, and the members trading records and states in memory at each interval.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import torch

from ..core.config import PbtCfg
from ..shared.lockstep import LockstepEnv
from ..shared.population import train_one_process
from .env import EmbeddedSkrlEnv

log = logging.getLogger("isaaclab_pbt")


class BlockSkrlEnv(EmbeddedSkrlEnv):
    """Block ``idx`` of a :class:`LockstepEnv` as one skrl trainer's env.

    The lockstep env is an embedded task or an Isaac Lab env seen the same way
    (:class:`~.isaaclab_env.SharedIsaacLabSkrlEnv`, whose observations carry the critic's
    privileged ``states`` where the env has them).
    """

    def __init__(self, lockstep: LockstepEnv, idx: int):
        super().__init__(lockstep.env)
        self.lockstep, self.idx = lockstep, idx
        self._states: Optional[torch.Tensor] = None

    @property
    def num_envs(self) -> int:
        return self.lockstep.envs_per_block

    @property
    def state_space(self) -> Any:
        """The privileged critic state's space (Isaac Lab's ``critic`` group), or ``None``."""
        return getattr(self.task, "state_space", None)

    def _split(self, obs: Any) -> torch.Tensor:
        if isinstance(obs, dict):
            obs, self._states = obs["obs"], obs["states"]
        return obs

    def reset(self) -> tuple[torch.Tensor, dict]:
        return self._split(self.lockstep.observations(self.idx)), {}

    def step(self, actions: torch.Tensor):
        obs, reward, done, infos = self.lockstep.step_block(self.idx, actions)
        truncated = infos.get("time_outs", torch.zeros_like(done)).bool() & done
        terminated = done.bool() & ~truncated
        return self._split(obs), reward.view(-1, 1), terminated.view(-1, 1), truncated.view(-1, 1), infos

    def state(self) -> Optional[torch.Tensor]:
        return self._states

    def get_env_state(self) -> Optional[dict]:
        return self.lockstep.get_block_state(self.idx)

    def set_env_state(self, env_state: Optional[dict]) -> None:
        self.lockstep.set_block_state(self.idx, env_state)


def train_shared(args: Any, agent_cfg: dict, pbt: PbtCfg, command: Optional[list[str]],
                 configure_member: Optional[Callable[[int, dict], None]] = None, env: Any = None,
                 env_cfg: Any = None) -> list[Any]:
    """Train the whole population in this process; returns the members' learners.

    ``env``: the env of all blocks (an Isaac Lab env seen through
    :class:`~.isaaclab_env.SharedIsaacLabSkrlEnv`, ``env_cfg`` its config); by default the
    embedded task. ``configure_member(idx, member_agent_cfg)`` may change a member's own copy of
    the agent config before its agent is built (a Python hook: start one member elsewhere, as a
    test does).
    """
    from .learner import is_live
    from .runner import build_learner, start_run

    def build(idx: int, cfg: dict, member_pbt: PbtCfg, lockstep: LockstepEnv, restore: Optional[str]):
        folder = start_run(cfg, member_pbt, args, cfg["env"] if env is None else env_cfg)
        runner, learner = build_learner(cfg, BlockSkrlEnv(lockstep, idx), folder, restore)
        return learner, lambda: runner.run("train")

    return train_one_process(args, agent_cfg, pbt, is_live, configure_member, build, env, env_cfg)
