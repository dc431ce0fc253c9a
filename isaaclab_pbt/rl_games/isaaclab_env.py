"""An Isaac Lab env as rl_games sees it: Isaac Lab's own wrapper, plus the curriculum in checkpoints."""

from __future__ import annotations

import math
from typing import Any, Optional

from rl_games.common.ivecenv import IVecEnv

from ..isaaclab.envs import BlockEpisodeLog, get_curriculum_state, set_curriculum_state


def rl_games_wrapper(env: Any, agent_cfg: dict) -> Any:
    """Isaac Lab's ``RlGamesVecEnvWrapper`` around ``env``, set up from the agent config's ``params.env`` as Isaac Lab's script does."""
    from isaaclab_rl.rl_games import RlGamesVecEnvWrapper

    env_params = agent_cfg["params"].get("env", {})
    return RlGamesVecEnvWrapper(
        env,
        agent_cfg["params"]["config"]["device"],
        env_params.get("clip_observations", math.inf),
        env_params.get("clip_actions", math.inf),
        env_params.get("obs_groups"),
        env_params.get("concate_obs_groups", True),
    )


def register_rl_games_env(env: Any, agent_cfg: dict) -> None:
    """Wrap ``env`` for rl_games and register it as ``env_name: rlgpu`` with curriculum state support."""
    from rl_games.common import env_configurations, vecenv

    wrapped = rl_games_wrapper(env, agent_cfg)
    vecenv.register("IsaacLabPbtEnv", lambda config_name, num_actors, **kwargs: CurriculumStateEnv(config_name))
    env_configurations.register("rlgpu", {"vecenv_type": "IsaacLabPbtEnv", "env_creator": lambda **kwargs: wrapped})


class CurriculumStateEnv(IVecEnv):
    """The rl_games view of a wrapped Isaac Lab env whose ``get_env_state`` holds the curriculum.

    rl_games stores ``get_env_state()`` in its checkpoints and hands it back to ``set_env_state``
    on load, which is how a PBT donor's curriculum reaches the member that copies it.
    """

    def __init__(self, config_name: str):
        from rl_games.common import env_configurations

        self.env = env_configurations.configurations[config_name]["env_creator"]()

    def step(self, actions):
        return self.env.step(actions)

    def reset(self):
        return self.env.reset()

    def get_number_of_agents(self) -> int:
        return self.env.get_number_of_agents()

    def get_env_info(self) -> dict:
        return self.env.get_env_info()

    def get_env_state(self) -> Optional[dict]:
        return get_curriculum_state(self.env)

    def set_env_state(self, env_state: Optional[dict]) -> None:
        set_curriculum_state(self.env, env_state)


class SharedIsaacLabEnv:
    """An Isaac Lab env of ``num_blocks`` learners' envs, as :class:`~isaaclab_pbt.shared.lockstep.LockstepEnv` steps it.

    Isaac Lab's rl_games wrapper does the stepping; the reward and termination terms' episode
    logs are replaced by per-block ones (:class:`~isaaclab_pbt.isaaclab.envs.BlockEpisodeLog`), and the env state is the
    curriculum of every env, which the lockstep env slices per block.
    """

    def __init__(self, env: Any, agent_cfg: dict, num_blocks: int, objective: Optional[str] = None):
        self.env = env
        self.wrapped = rl_games_wrapper(env, agent_cfg)
        self.num_envs = env.unwrapped.num_envs
        self.episodes = BlockEpisodeLog(env, num_blocks, objective)
        self.observation_space, self.action_space = self.wrapped.observation_space, self.wrapped.action_space

    def reset(self):
        return self.wrapped.reset()

    def step(self, actions):
        obs, reward, done, extras = self.wrapped.step(actions)
        extras["episode"] = {**extras.get("episode", {}), **self.episodes.log()}
        return obs, reward, done, extras

    def get_env_info(self) -> dict:
        return self.wrapped.get_env_info()

    def get_env_state(self) -> Optional[dict]:
        return get_curriculum_state(self.env)

    def set_env_state(self, env_state: Optional[dict]) -> None:
        set_curriculum_state(self.env, env_state)
