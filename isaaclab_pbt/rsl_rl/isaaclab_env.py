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
