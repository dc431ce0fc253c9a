"""An Isaac Lab env as rsl_rl sees it: Isaac Lab's ``RslRlVecEnvWrapper`` plus what a PBT member needs.

Two additions, nothing else changes:

* ``get_env_state``/``set_env_state`` carry the curriculum (Isaac Lab's terms with state), the
  env state a donor hands over, as :mod:`~isaaclab_pbt.rsl_rl.state` saves it;
* the episode sums Isaac Lab logs as ``extras["log"]`` are also found under ``extras["episode"]``
  (the same dict), so an objective has one name under every library: ``episode.Episode_Reward/alive``
  names the same value under rl_games (whose Isaac Lab wrapper renames ``log`` to ``episode``) and
  here. rsl_rl's logger reads ``episode`` first, so it logs the same values once.
"""

from __future__ import annotations

from typing import Any, Optional

from isaaclab_rl.rsl_rl import RslRlVecEnvWrapper

from ..isaaclab.envs import get_curriculum_state, set_curriculum_state


class IsaacLabVecEnv(RslRlVecEnvWrapper):
    """:class:`RslRlVecEnvWrapper` with the curriculum as env state and the objective's ``episode`` name."""

    def step(self, actions: Any):
        obs, rewards, dones, extras = super().step(actions)
        if "log" in extras:  # the env keeps one extras dict and puts a new "log" in it at every reset
            extras["episode"] = extras["log"]
        return obs, rewards, dones, extras

    def get_env_state(self) -> Optional[dict]:
        return get_curriculum_state(self.env)

    def set_env_state(self, env_state: Optional[dict]) -> None:
        set_curriculum_state(self.env, env_state)


class SharedIsaacLabVecEnv:
    """An Isaac Lab env of ``num_blocks`` learners' envs, as :class:`~isaaclab_pbt.shared.lockstep.LockstepEnv` steps it.

    It offers what the lockstep env and its blocks (:class:`~.shared.BlockVecEnv`) read from an
    embedded task: observations as a plain dict of Isaac Lab's groups (which the lockstep env
    slices per block), or one group's tensor after :meth:`select` (the batched PPO's one
    observation), the episode step counter, the single env's action space. Isaac Lab's rsl_rl
    wrapper does the stepping; the reward and termination terms' episode logs are replaced by per-block ones
    (:class:`~isaaclab_pbt.isaaclab.envs.BlockEpisodeLog`), and the env state is the curriculum of
    every env, which the lockstep env slices per block.
    """

    def __init__(self, env: Any, num_blocks: int, clip_actions: Optional[float] = None, objective: Optional[str] = None):
        from ..isaaclab.envs import BlockEpisodeLog

        self.wrapped = IsaacLabVecEnv(env, clip_actions=clip_actions)
        self.episodes = BlockEpisodeLog(env, num_blocks, objective)
        self.num_envs, self.device, self.cfg = self.wrapped.num_envs, self.wrapped.device, self.wrapped.cfg
        self.max_episode_steps = self.wrapped.max_episode_length
        self.action_space = env.unwrapped.single_action_space
        self.group: Optional[str] = None

    def select(self, group: str) -> str:
        """From now on observe only ``group``, as one tensor (the batched mode's actor and critic input); returns it."""
        import gymnasium as gym

        dim = self.wrapped.get_observations()[group].shape[-1]
        self.group, self.observation_space = group, gym.spaces.Box(-float("inf"), float("inf"), (dim,))
        return group

    def _observed(self, obs: Any) -> Any:
        return obs.to_dict() if self.group is None else obs[self.group]

    @property
    def steps(self) -> Any:
        """Each env's step in its episode (rsl_rl randomises it at the start, block by block)."""
        return self.wrapped.episode_length_buf

    def reset(self) -> dict:
        return self._observed(self.wrapped.get_observations())  # the wrapper reset the env when it was made

    def step(self, actions: Any):
        obs, reward, done, extras = self.wrapped.step(actions)
        extras["episode"] = {**extras.get("episode", {}), **self.episodes.log()}
        return self._observed(obs), reward, done, extras

    def get_env_state(self) -> Optional[dict]:
        return self.wrapped.get_env_state()

    def set_env_state(self, env_state: Optional[dict]) -> None:
        self.wrapped.set_env_state(env_state)

    def close(self) -> None:
        self.wrapped.close()
