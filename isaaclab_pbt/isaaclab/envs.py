"""Everything that differs between Isaac Lab 2.3 and 3.0, in one place.

* starting the simulator: ``AppLauncher`` before any task import on 2.3; on 3.0,
  ``launch_simulation`` around the env's creation (kit-less with Newton when Isaac Sim is absent);
* env and agent configs: the ``hydra_task_config`` decorator on 2.3, ``resolve_task_config`` on 3.0;
* ``env.*`` overrides: Hydra through ``sys.argv`` on 2.3, passed as ``overrides`` on 3.0.

The rest (wrapping for rl_games, the curriculum state, the PBT observer, logging) is shared.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import sys
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from rl_games.common.ivecenv import IVecEnv

from ..core.errors import UsageError


def isaaclab_major() -> Optional[int]:
    """Major version of the installed Isaac Lab (2 or 3), or ``None`` without Isaac Lab."""
    try:
        return int(importlib.metadata.version("isaaclab").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return None


@contextlib.contextmanager
def isaaclab_task(task: str, agent_entry: str, env_overrides: Sequence[str],
                  args: Any) -> Iterator[tuple[Any, dict, Callable[..., Any]]]:
    """Resolve the task's env config and agent config and run the simulator for the block.

    ``args`` are the parsed command-line flags (``--headless``, ``--device``, ``--video`` and, on
    2.3, every AppLauncher flag, handed to AppLauncher as Isaac Lab's own scripts do). Yields
    ``(env_cfg, agent_cfg, make_env)``; ``make_env(env_cfg, **gym_kwargs)`` creates the gym
    environment once the caller has finished editing ``env_cfg``.
    """
    major = isaaclab_major()
    if major is None:
        raise UsageError(f"--task: '{task}' is an Isaac Lab task, but Isaac Lab is not installed in this Python")
    if getattr(args, "video", False):
        args.enable_cameras = True  # rendering offscreen needs the cameras on
    if major >= 3:
        with _isaaclab3(task, agent_entry, env_overrides, args) as result:
            yield result
    else:
        with _isaaclab2(task, agent_entry, env_overrides, args) as result:
            yield result


@contextlib.contextmanager
def _isaaclab3(task, agent_entry, env_overrides, args):
    import gymnasium as gym
    import isaaclab_tasks  # noqa: F401
    from isaaclab.app import launch_simulation
    from isaaclab_tasks.utils import resolve_task_config

    from . import registration

    registration.register()
    env_cfg, agent_cfg = resolve_task_config(task, agent_entry, overrides=list(env_overrides))
    device = getattr(args, "device", None)
    if device is not None:
        env_cfg.sim.device = device
    with launch_simulation(env_cfg, args):  # every launcher flag the user gave, as Isaac Lab's scripts pass them
        yield env_cfg, agent_cfg, lambda cfg, **kwargs: gym.make(task, cfg=cfg, **kwargs)


@contextlib.contextmanager
def _isaaclab2(task, agent_entry, env_overrides, args):  # pragma: no cover - needs Isaac Sim
    from isaaclab.app import AppLauncher

    device = getattr(args, "device", None)
    app = AppLauncher(args).app  # every AppLauncher flag the user gave; must run before any isaaclab_tasks import
    try:
        import gymnasium as gym
        import isaaclab_tasks  # noqa: F401
        from isaaclab_tasks.utils.hydra import hydra_task_config

        from . import registration

        registration.register()
        resolved = {}
        saved_argv, sys.argv = sys.argv, [sys.argv[0], *env_overrides]
        try:
            hydra_task_config(task, agent_entry)(lambda env_cfg, agent_cfg: resolved.update(env=env_cfg, agent=agent_cfg))()
        finally:
            sys.argv = saved_argv
        env_cfg = resolved["env"]
        if device is not None:
            env_cfg.sim.device = device
        yield env_cfg, resolved["agent"], lambda cfg, **kwargs: gym.make(task, cfg=cfg, **kwargs)
    finally:
        app.close()


def register_rl_games_env(env: Any, agent_cfg: dict) -> None:
    """Wrap ``env`` for rl_games and register it as ``env_name: rlgpu`` with curriculum state support."""
    from isaaclab_rl.rl_games import RlGamesVecEnvWrapper
    from rl_games.common import env_configurations, vecenv

    env_params = agent_cfg["params"].get("env", {})
    wrapped = RlGamesVecEnvWrapper(
        env,
        agent_cfg["params"]["config"]["device"],
        env_params.get("clip_observations", math.inf),
        env_params.get("clip_actions", math.inf),
        env_params.get("obs_groups"),
        env_params.get("concate_obs_groups", True),
    )
    vecenv.register("IsaacLabPbtEnv", lambda config_name, num_actors, **kwargs: CurriculumStateEnv(config_name))
    env_configurations.register("rlgpu", {"vecenv_type": "IsaacLabPbtEnv", "env_creator": lambda **kwargs: wrapped})


class CurriculumStateEnv(IVecEnv):
    """The rl_games view of a wrapped Isaac Lab env, with the curriculum saved in checkpoints.

    Isaac Lab's own rl_games wrapper saves no env state, so a member that copies a leader would
    restart the curriculum at zero while its objective is the curriculum level. The hook used here
    is Isaac Lab's: every class-based curriculum term that has ``get_state()`` and
    ``set_state(tensor)`` (such as ``DifficultyScheduler``, Dexsuite's ``adr`` term) is saved and
    restored by name. Tasks without such terms carry no env state and restart their curriculum.
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

    def _terms(self) -> dict[str, Any]:
        manager = getattr(self.env.unwrapped, "curriculum_manager", None)
        if manager is None:
            return {}
        terms = {}
        for name in manager.active_terms:
            func = getattr(manager.cfg, name).func  # the term's instance once the manager is built
            if callable(getattr(func, "get_state", None)) and callable(getattr(func, "set_state", None)):
                terms[name] = func
        return terms

    def get_env_state(self) -> Optional[dict]:
        state = {name: term.get_state().detach().cpu().clone() for name, term in self._terms().items()}
        return {"curriculum": state} if state else None

    def set_env_state(self, env_state: Optional[dict]) -> None:
        saved = (env_state or {}).get("curriculum") or {}
        for name, term in self._terms().items():
            if name not in saved:
                continue
            value = torch.as_tensor(saved[name])
            n = self.env.unwrapped.num_envs
            if value.shape[:1] != (n,) and value.numel() > 0:  # a donor with another env count
                value = value[torch.randint(value.shape[0], (n,), generator=torch.Generator().manual_seed(0))]
            term.set_state(value)
