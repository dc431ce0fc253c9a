"""An Isaac Lab env as skrl sees it: skrl's own Isaac Lab wrapper plus what a PBT member needs.

Two additions, as for rsl_rl (``rsl_rl/isaaclab_env.py``): the curriculum terms with state are the
env state a donor hands over, and Isaac Lab's ``extras["log"]`` is also found under
``infos["episode"]`` (the same dict), so ``episode.Episode_Reward/alive`` names the same value under
every library, and skrl's trainer logs it (its default ``environment_info`` is ``episode``).
"""

from __future__ import annotations

from typing import Any, Optional

from skrl.envs.wrappers.torch.isaaclab_envs import IsaacLabWrapper

from ..isaaclab.envs import get_curriculum_state, set_curriculum_state


class IsaacLabSkrlEnv(IsaacLabWrapper):
    """skrl's :class:`IsaacLabWrapper` with the curriculum as env state and the objective's ``episode`` name."""

    def step(self, actions: Any):
        observations, reward, terminated, truncated, info = super().step(actions)
        if isinstance(info, dict) and "log" in info:  # the env keeps one extras dict and puts a new "log" in it at every reset
            info["episode"] = info["log"]
        return observations, reward, terminated, truncated, info

    def get_env_state(self) -> Optional[dict]:
        return get_curriculum_state(self._env)

    def set_env_state(self, env_state: Optional[dict]) -> None:
        set_curriculum_state(self._env, env_state)


def wrap_isaaclab(env: Any) -> IsaacLabSkrlEnv:
    """``env`` (a single-agent Isaac Lab env) as skrl's trainers see it."""
    return IsaacLabSkrlEnv(env)
