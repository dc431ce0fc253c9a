"""PBT-ready rl_games agent configs for Isaac Lab's Dexsuite Kuka-Allegro tasks.

Importing this module (Isaac Lab 3.0 does it through the ``isaaclab.tasks`` entry point of this
package) adds, to every Dexsuite Kuka-Allegro task id found in the gym registry:

* ``rl_games_pbt_cfg_entry_point``: our config, selected with ``--agent=rl_games_pbt_cfg_entry_point``;
* ``rl_games_cfg_entry_point``: our config too, but only where the task has none (Isaac Lab 3.0
  ships no rl_games config for these tasks), so a plain ``--task=...`` works on both versions.

Task ids that are absent (another Isaac Lab version, or no Isaac Lab at all) are skipped.
"""

from __future__ import annotations

import os

from ..tasks import CONFIG_DIR

PBT_ENTRY_POINT = "rl_games_pbt_cfg_entry_point"

_LIFT = os.path.join(CONFIG_DIR, "dexsuite_kuka_allegro_lift_pbt_ppo.yaml")
_REORIENT = os.path.join(CONFIG_DIR, "dexsuite_kuka_allegro_reorient_pbt_ppo.yaml")

#: Isaac Lab task id -> our agent config (2.3 ids with ``-v0``, 3.0 ids without).
DEXSUITE_CONFIGS = {
    "Isaac-Dexsuite-Kuka-Allegro-Lift-v0": _LIFT,
    "Isaac-Dexsuite-Kuka-Allegro-Lift-Play-v0": _LIFT,
    "Isaac-Dexsuite-Kuka-Allegro-Reorient-v0": _REORIENT,
    "Isaac-Dexsuite-Kuka-Allegro-Reorient-Play-v0": _REORIENT,
    "Isaac-Lift-KukaAllegro": _LIFT,
    "Isaac-Lift-KukaAllegro-Play": _LIFT,
    "Isaac-Reorient-KukaAllegro": _REORIENT,
    "Isaac-Reorient-KukaAllegro-Play": _REORIENT,
}


def register(registry=None) -> list[str]:
    """Add our entry points to the Dexsuite ids present in ``registry`` (gym's by default); returns them."""
    if registry is None:
        try:
            import gymnasium
        except ImportError:
            return []
        registry = gymnasium.registry
    done = []
    for task_id, path in DEXSUITE_CONFIGS.items():
        spec = registry.get(task_id)
        if spec is None:
            continue
        spec.kwargs[PBT_ENTRY_POINT] = path
        spec.kwargs.setdefault("rl_games_cfg_entry_point", path)
        done.append(task_id)
    return done


def _load_isaaclab_tasks() -> None:
    """On Isaac Lab 3, make sure its tasks are registered before ours are added to them."""
    from .envs import isaaclab_major

    if isaaclab_major() == 3:
        import isaaclab_tasks  # noqa: F401


_load_isaaclab_tasks()
register()
