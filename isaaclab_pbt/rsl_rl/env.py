"""The embedded tasks as an rsl_rl ``VecEnv``.

rsl_rl reads observations as a ``TensorDict`` of groups (``policy`` here, used by actor and
critic) and logs ``extras["episode"]``; the task's ``infos`` are passed on unchanged, so the
objective path (``episode.Curriculum/adr``) is the same as under rl_games. The curriculum levels
are exposed as ``get_env_state``/``set_env_state``, the env state a PBT donor hands over.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict


def make_embedded(task_id: str, num_envs: int, env_cfg: Optional[dict] = None, device: str = "cpu",
                  seed: Optional[int] = None) -> EmbeddedVecEnv:
    """The embedded task ``task_id`` (``PointReach-v0``, ``PuckPush-v0``) with ``num_envs`` envs, as rsl_rl sees it."""
    from ..tasks.point_reach import PointReachEnv
    from ..tasks.puck_push import PuckPushEnv

    tasks = {"PointReach-v0": PointReachEnv, "PuckPush-v0": PuckPushEnv}
    if task_id not in tasks:
        raise ValueError(f"--task: the embedded tasks are {', '.join(tasks)}, got '{task_id}'")
    return EmbeddedVecEnv(tasks[task_id](num_envs, device=device, seed=seed, **(env_cfg or {})))


class EmbeddedVecEnv(VecEnv):
    """rsl_rl's view of a :class:`~isaaclab_pbt.tasks.curriculum.CurriculumEnv`."""

    def __init__(self, task: Any, cfg: Optional[dict] = None):
        self.task = task
        self.num_envs = task.num_envs
        self.num_actions = int(task.action_space.shape[0])
        self.max_episode_length = task.max_episode_steps
        self.device = task.device
        self.cfg = cfg or {}
        self._obs = task.reset()

    @property
    def episode_length_buf(self) -> torch.Tensor:
        return self.task.steps

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.task.steps = value.to(self.task.steps)

    def get_observations(self) -> TensorDict:
        return TensorDict({"policy": self._obs}, batch_size=[self.num_envs])

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        self._obs, reward, done, infos = self.task.step(actions)
        return self.get_observations(), reward, done.long(), infos

    def get_env_state(self) -> dict:
        return self.task.get_env_state()

    def set_env_state(self, env_state: Optional[dict]) -> None:
        self.task.set_env_state(env_state)

    def set_reward_weight(self, term: str, value: float) -> None:
        self.task.set_reward_weight(term, value)
