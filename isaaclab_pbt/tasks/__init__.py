"""Tasks that run without Isaac Lab, registered with rl_games under their task id."""

from __future__ import annotations

import importlib.resources
import os

#: The task used when no Isaac Lab task is given.
EMBEDDED_TASK = "PointReach-v0"
_VECENV_TYPE = "ISAACLAB_PBT_POINT_REACH"
#: A pushing task whose curriculum outlasts a CPU budget, so hyperparameters decide the objective.
PUCK_PUSH_TASK = "PuckPush-v0"
_PUCK_PUSH_VECENV_TYPE = "ISAACLAB_PBT_PUCK_PUSH"
#: The shipped agent configs: package data, found wherever the package is installed (wheel, editable, Isaac Lab's Python).
CONFIG_DIR = str(importlib.resources.files("isaaclab_pbt") / "agents")

#: Task id to its default rl_games agent config (a YAML file in ``isaaclab_pbt/agents/``).
EMBEDDED_TASKS = {
    EMBEDDED_TASK: os.path.join(CONFIG_DIR, "point_reach_ppo.yaml"),
    PUCK_PUSH_TASK: os.path.join(CONFIG_DIR, "puck_push_ppo.yaml"),
}


def register_embedded() -> None:
    """Make ``env_name: PointReach-v0`` and ``PuckPush-v0`` usable in an rl_games agent config (idempotent)."""
    from rl_games.common import env_configurations, vecenv

    from .point_reach import PointReachEnv
    from .puck_push import PuckPushEnv

    vecenv.register(_VECENV_TYPE, lambda config_name, num_actors, **kwargs: PointReachEnv(num_actors, **kwargs))
    env_configurations.register(EMBEDDED_TASK, {"vecenv_type": _VECENV_TYPE, "env_creator": lambda **kwargs: None})
    vecenv.register(_PUCK_PUSH_VECENV_TYPE, lambda config_name, num_actors, **kwargs: PuckPushEnv(num_actors, **kwargs))
    env_configurations.register(PUCK_PUSH_TASK, {"vecenv_type": _PUCK_PUSH_VECENV_TYPE, "env_creator": lambda **kwargs: None})


def make_task(task_id: str, num_envs: int, **kwargs):
    """The embedded task ``task_id`` with ``num_envs`` envs (``kwargs``: its settings, ``device``, ``seed``, ``num_blocks``)."""
    from .point_reach import PointReachEnv
    from .puck_push import PuckPushEnv

    classes = {EMBEDDED_TASK: PointReachEnv, PUCK_PUSH_TASK: PuckPushEnv}
    if task_id not in classes:
        raise ValueError(f"--task: the embedded tasks are {', '.join(classes)}, got '{task_id}'")
    return classes[task_id](num_envs, **kwargs)
