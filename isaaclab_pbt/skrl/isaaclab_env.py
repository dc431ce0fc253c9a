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


class SharedIsaacLabSkrlEnv:
    """An Isaac Lab env of ``num_blocks`` learners' envs, as :class:`~isaaclab_pbt.shared.lockstep.LockstepEnv` steps it.

    It offers what the lockstep env and its blocks (:class:`~.shared.BlockSkrlEnv`) read from an
    embedded task: ``(obs, reward, done, infos)`` steps with per-env ``time_outs``, the single env's
    spaces, and, where the env has a privileged critic group, the observations as
    ``{"obs": ..., "states": ...}`` so that the lockstep env slices both per block. skrl's Isaac Lab
    wrapper does the stepping; the reward and termination terms' episode logs are replaced by per-block ones
    (:class:`~isaaclab_pbt.isaaclab.envs.BlockEpisodeLog`), and the env state is the curriculum of
    every env, which the lockstep env slices per block.
    """

    def __init__(self, env: Any, num_blocks: int, objective: Optional[str] = None):
        from ..isaaclab.envs import BlockEpisodeLog

        self.wrapped = wrap_isaaclab(env)
        self.episodes = BlockEpisodeLog(env, num_blocks, objective)
        self.num_envs, self.device = int(env.unwrapped.num_envs), env.unwrapped.device
        self.observation_space, self.action_space = self.wrapped.observation_space, self.wrapped.action_space
        self.state_space = self.wrapped.state_space

    def _observed(self, obs: Any) -> Any:
        return obs if self.state_space is None else {"obs": obs, "states": self.wrapped.state()}

    def reset(self) -> Any:
        obs, _ = self.wrapped.reset()
        return self._observed(obs)

    def step(self, actions: Any):
        obs, reward, terminated, truncated, info = self.wrapped.step(actions)
        info["time_outs"] = truncated.view(-1)
        info["episode"] = {**info.get("episode", {}), **self.episodes.log()}
        return self._observed(obs), reward.view(-1), (terminated | truncated).view(-1), info

    def get_env_state(self) -> Optional[dict]:
        return self.wrapped.get_env_state()

    def set_env_state(self, env_state: Optional[dict]) -> None:
        self.wrapped.set_env_state(env_state)

    def close(self) -> None:
        self.wrapped.close()
