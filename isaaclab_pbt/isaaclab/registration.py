"""PBT-ready agent configs for Isaac Lab's Dexsuite Kuka-Allegro tasks, for rl_games and rsl_rl.

Importing this module (Isaac Lab 3.0 does it through the ``isaaclab.tasks`` entry point of this
package) adds, to every Dexsuite Kuka-Allegro task id found in the gym registry:

* ``rl_games_pbt_cfg_entry_point``: our rl_games config, selected with ``--agent=rl_games_pbt_cfg_entry_point``;
* ``rl_games_cfg_entry_point``: our config too, but only where the task has none (Isaac Lab 3.0
  ships no rl_games config for these tasks), so a plain ``--task=...`` works on both versions;
* ``rsl_rl_pbt_cfg_entry_point`` where the task ships an rsl_rl config: that config itself, as the
  task's ``rsl_rl_cfg_entry_point`` gives it in the installed Isaac Lab (its PPO values untouched),
  with a ``pbt`` block: the PBT settings of our rl_games config for the task; the whitelist is
  rsl_rl's default, filled in by ``scripts/rsl_rl/train.py`` (under Isaac Lab's adaptive schedule
  the KL target, not the learning rate it rewrites).

Task ids that are absent (another Isaac Lab version, or no Isaac Lab at all) are skipped.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import Optional

from ..tasks import CONFIG_DIR

PBT_ENTRY_POINT = "rl_games_pbt_cfg_entry_point"
RSL_RL_PBT_ENTRY_POINT = "rsl_rl_pbt_cfg_entry_point"

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
        if spec.kwargs.get("rsl_rl_cfg_entry_point") is not None:
            spec.kwargs[RSL_RL_PBT_ENTRY_POINT] = rsl_rl_pbt_cfg(task_id, path)
        done.append(task_id)
    return done


def rsl_rl_pbt_cfg(task_id: str, rl_games_path: str):
    """The entry point Isaac Lab calls for ``rsl_rl_pbt_cfg_entry_point``: builds the config when a run asks for it."""

    def make():
        import yaml
        from isaaclab_tasks.utils.parse_cfg import load_cfg_from_registry

        cfg = load_cfg_from_registry(task_id, "rsl_rl_cfg_entry_point")
        with open(rl_games_path, encoding="utf-8") as f:  # its whitelist names rl_games keys: rsl_rl's own fills in
            block = {k: v for k, v in yaml.safe_load(f)["pbt"].items() if k != "mutation"}
        options = [cfg] if hasattr(cfg, "algorithm") else [v for v in vars(cfg).values() if hasattr(v, "algorithm")]
        for option in options:  # a preset of several runner configs: each gets the block
            option.pbt = dict(block)
        return cfg

    make.__name__ = make.__qualname__ = f"rsl_rl_pbt_cfg[{task_id}]"
    return make


def isaaclab_major() -> Optional[int]:
    """Major version of the installed Isaac Lab (2 or 3), or ``None`` without Isaac Lab."""
    try:
        return int(importlib.metadata.version("isaaclab").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return None


def _load_isaaclab_tasks() -> None:
    """On Isaac Lab 3, make sure its tasks are registered before ours are added to them."""
    if isaaclab_major() == 3:
        import isaaclab_tasks  # noqa: F401


_load_isaaclab_tasks()
register()
