"""A whole rsl_rl population in one process (``agent.pbt.mode=shared``), on the embedded tasks and Isaac Lab's.

The same layout as the rl_games driver (``rl_games/shared.py``): one env of
``num_policies x num_envs`` envs split into blocks (:class:`~isaaclab_pbt.shared.lockstep.LockstepEnv`),
one ``OnPolicyRunner`` per block, each running rsl_rl's own ``learn()`` loop in a thread, and the
members trading records and states in memory at each interval.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from ..core.config import PbtCfg
from ..core.errors import UsageError
from ..shared.lockstep import LockstepEnv
from ..shared.population import train_one_process

log = logging.getLogger("isaaclab_pbt")


class BlockVecEnv(VecEnv):
    """Block ``idx`` of a :class:`LockstepEnv` as one rsl_rl runner's ``VecEnv``.

    The lockstep env is an embedded task (observations one tensor, rsl_rl's ``policy`` group) or
    an Isaac Lab env seen the same way (:class:`~.isaaclab_env.SharedIsaacLabVecEnv`, observations
    a dict of Isaac Lab's groups).
    """

    def __init__(self, lockstep: LockstepEnv, idx: int):
        task = lockstep.env
        self.lockstep, self.idx, self.where = lockstep, idx, lockstep.block(idx)
        self.num_envs = lockstep.envs_per_block
        self.num_actions = int(task.action_space.shape[0])
        self.max_episode_length = task.max_episode_steps
        self.device = task.device
        self.cfg = getattr(task, "cfg", {})

    @property
    def episode_length_buf(self) -> torch.Tensor:
        return self.lockstep.env.steps[self.where]

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.lockstep.env.steps[self.where] = value.to(self.lockstep.env.steps)

    def _groups(self, obs: Any) -> TensorDict:
        return TensorDict(obs if isinstance(obs, dict) else {"policy": obs}, batch_size=[self.num_envs])

    def get_observations(self) -> TensorDict:
        return self._groups(self.lockstep.observations(self.idx))

    def step(self, actions: torch.Tensor):
        obs, reward, done, infos = self.lockstep.step_block(self.idx, actions)
        return self._groups(obs), reward, done.long(), infos

    def get_env_state(self) -> Optional[dict]:
        return self.lockstep.get_block_state(self.idx)

    def set_env_state(self, env_state: Optional[dict]) -> None:
        self.lockstep.set_block_state(self.idx, env_state)


def resume(learner: Any, path: str) -> None:
    """Continue ``learner`` from a state it published (loaded safely, checked whole), its iteration count included."""
    from . import state

    loaded = learner.load(path)
    problem = state.misfit(learner.runner, loaded)
    if problem:
        raise UsageError(f"--checkpoint: {path} does not fit this agent: {problem}")
    state.load_into(learner.runner, loaded)
    learner.done_iterations = learner.runner.current_learning_iteration = int(loaded.get("iter") or 0)


def train_shared(args: Any, agent_cfg: dict, pbt: PbtCfg, command: Optional[list[str]],
                 configure_member: Optional[Callable[[int, dict], None]] = None, env: Any = None,
                 env_cfg: Any = None) -> list[Any]:
    """Train the whole population in this process; returns the members' learners.

    ``env``: the env of all blocks (an Isaac Lab env seen through
    :class:`~.isaaclab_env.SharedIsaacLabVecEnv`, ``env_cfg`` its config); by default the embedded
    task. ``configure_member(idx, member_agent_cfg)`` may change a member's own copy of the agent
    config before its runner is built (a Python hook: start one member elsewhere, as a test does).
    """
    from .learner import RslRlLearner, is_live
    from .runner import build_runner, start_run

    def build(idx: int, cfg: dict, member_pbt: PbtCfg, lockstep: LockstepEnv, restore: Optional[str]):
        folder = start_run(args, cfg, member_pbt, cfg["env"] if env is None else env_cfg)
        torch.manual_seed(int(cfg["seed"]))
        runner = build_runner(cfg, BlockVecEnv(lockstep, idx), folder)
        learner = RslRlLearner(runner, int(cfg["max_iterations"]), folder)
        if restore:
            resume(learner, restore)
        return learner, lambda: runner.learn(num_learning_iterations=learner.max_iterations - learner.done_iterations)

    return train_one_process(args, agent_cfg, pbt, is_live, configure_member, build, env, env_cfg)
