"""Replaying a PBT hyperparameter schedule in a single learner, without a population.

``scripts/train.py --pbt_replay schedule.yaml`` starts from the schedule's first values (all keys,
also those only a restart can change) and, at the first epoch boundary at or after each later
entry's frame, sets that entry's values in the live agent. Every application is logged to
``<run>/replay.jsonl`` with the frame at which it took effect.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Optional

import yaml
from rl_games.common.algo_observer import IsaacAlgoObserver

from ..core.errors import UsageError
from . import learner as live

log = logging.getLogger("isaaclab_pbt")


def load_schedule(path: str) -> list[dict[str, Any]]:
    """The ``schedule`` list of a YAML written by ``python -m isaaclab_pbt export``; one-line errors."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"--pbt_replay: cannot read {path}: {e}") from None
    entries = data.get("schedule") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"--pbt_replay: {path} has no 'schedule:' list")
    for n, entry in enumerate(entries):
        ok = (isinstance(entry, dict) and isinstance(entry.get("frame"), int) and isinstance(entry.get("hyperparameters"), dict)
              and all(isinstance(v, (int, float)) for v in entry["hyperparameters"].values()))
        if not ok:
            raise UsageError(f"--pbt_replay: schedule entry {n} of {path} needs an integer 'frame' and numeric 'hyperparameters'")
    return sorted(entries, key=lambda e: e["frame"])


class ReplayObserver(IsaacAlgoObserver):
    """Applies a schedule's later entries to the live agent at epoch boundaries."""

    def __init__(self, entries: list[dict[str, Any]], log_path: Optional[str] = None):
        super().__init__()
        self.pending = list(entries[1:])  # the first entry is applied to the config before the agent exists
        self.log_path = log_path
        self.applied: list[dict[str, Any]] = []

    def after_init(self, algo: Any) -> None:
        super().after_init(algo)
        self.algo = algo

    def after_print_stats(self, frame: int, epoch_num: int, total_time: float) -> None:
        super().after_print_stats(frame, epoch_num, total_time)
        while self.pending and self.pending[0]["frame"] <= self.algo.frame:
            entry = self.pending.pop(0)
            fixed = sorted(k for k in entry["hyperparameters"] if not live.is_live(k))
            if fixed:
                log.warning("PBT replay: %s cannot change in a running agent; kept at their start values", ", ".join(fixed))
            live.write(self.algo, entry["hyperparameters"])
            done = {"frame": int(self.algo.frame), "scheduled_frame": entry["frame"],
                    "hyperparameters": {k: live.read(self.algo, k, v) for k, v in entry["hyperparameters"].items()}}
            self.applied.append(done)
            if self.log_path:
                with open(self.log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(done) + "\n")
            log.info("PBT replay: applied the values scheduled for frame %d at frame %d", entry["frame"], self.algo.frame)


def first_values_as_overrides(entries: list[dict[str, Any]]) -> list[str]:
    """The schedule's first values as ``key=value`` overrides of the agent config."""
    return [f"{k}={v!r}" for k, v in entries[0]["hyperparameters"].items()]


def replay_log_path(agent_cfg: dict) -> str:
    cfg = agent_cfg["params"]["config"]
    return os.path.join(cfg["train_dir"], cfg["full_experiment_name"], "replay.jsonl")
