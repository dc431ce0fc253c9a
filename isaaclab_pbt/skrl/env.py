"""The embedded tasks as an skrl env wrapper (``skrl.envs.wrappers.torch.Wrapper``).

skrl's trainers want ``reset() -> (obs, infos)`` and ``step() -> (obs, reward, terminated,
truncated, infos)`` with ``(num_envs, 1)`` reward and done tensors, as skrl's Isaac Lab wrapper
returns them. The task's ``infos`` are passed on unchanged, so the objective path
(``episode.Curriculum/adr``) is the same as under rl_games and rsl_rl, and skrl's trainer logs
``infos["episode"]`` (its default ``environment_info``). A success ends an episode (terminated),
a timeout cuts it (truncated, the task's ``time_outs``). The curriculum levels are exposed as
``get_env_state``/``set_env_state``, the env state a PBT donor hands over.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from skrl.envs.wrappers.torch import Wrapper


def make_embedded(task_id: str, num_envs: int, env_cfg: Optional[dict] = None, device: str = "cpu",
                  seed: Optional[int] = None) -> EmbeddedSkrlEnv:
    """The embedded task ``task_id`` (``PointReach-v0``, ``PuckPush-v0``) with ``num_envs`` envs, as skrl sees it."""
    from ..tasks.point_reach import PointReachEnv
    from ..tasks.puck_push import PuckPushEnv

    tasks = {"PointReach-v0": PointReachEnv, "PuckPush-v0": PuckPushEnv}
    if task_id not in tasks:
        raise ValueError(f"--task: the embedded tasks are {', '.join(tasks)}, got '{task_id}'")
    return EmbeddedSkrlEnv(tasks[task_id](num_envs, device=device, seed=seed, **(env_cfg or {})))


class EmbeddedSkrlEnv(Wrapper):
    """skrl's view of a :class:`~isaaclab_pbt.tasks.curriculum.CurriculumEnv` (observations only, no separate state)."""

    def __init__(self, task: Any):
        super().__init__(task)
        self.task = task
        self._obs: Optional[torch.Tensor] = None

    @property
    def observation_space(self) -> Any:
        """The task's observation space (gymnasium), which skrl's model instantiators size the networks from."""
        return self.task.observation_space

    @property
    def action_space(self) -> Any:
        """The task's action space (gymnasium)."""
        return self.task.action_space

    @property
    def state_space(self) -> None:
        """``None``: the embedded tasks have no privileged critic state."""
        return None

    @property
    def num_envs(self) -> int:
        """Envs stepped together; skrl sizes its memory and counts frames with it."""
        return int(self.task.num_envs)

    def reset(self) -> tuple[torch.Tensor, dict]:
        """The first observations; later calls return the current ones (the task resets finished envs itself)."""
        if self._obs is None:
            self._obs = self.task.reset()
        return self._obs, {}

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """One step of every env, in skrl's shapes; ``infos`` is the task's own."""
        self._obs, reward, done, infos = self.task.step(actions)
        truncated = infos.get("time_outs", torch.zeros_like(done)).bool() & done
        terminated = done.bool() & ~truncated
        return self._obs, reward.view(-1, 1), terminated.view(-1, 1), truncated.view(-1, 1), infos

    def state(self) -> None:
        """No privileged critic state: the value model reads the observations."""
        return None

    def render(self, *args: Any, **kwargs: Any) -> None:
        """The embedded tasks never render."""
        return None

    def close(self) -> None:
        """Nothing to release."""

    def get_env_state(self) -> dict:
        """The curriculum (per-env levels), published with a member's weights."""
        return self.task.get_env_state()

    def set_env_state(self, env_state: Optional[dict]) -> None:
        """Continue at a donor's curriculum."""
        self.task.set_env_state(env_state)

    def set_reward_weight(self, term: str, value: float) -> None:
        """Change a reward term's weight from the next step on (PuckPush)."""
        self.task.set_reward_weight(term, value)
