"""A running rl_games agent as the PBT core's :class:`~isaaclab_pbt.core.member.Learner`.

Everything the core asks of a learner is answered here from rl_games' own objects: frames and
budget from the agent's counters, live hyperparameters through :mod:`~isaaclab_pbt.rl_games.hparams`, the full training
state through :mod:`~isaaclab_pbt.rl_games.checkpoint` (``get_full_state_weights``, which rl_games' own loader reads).
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, Mapping, Optional

from ..core.errors import UsageError
from . import checkpoint, hparams

KEEP_NN_COPIES = 2
"""Newest ``pbt_*`` and ``restore_*`` copies kept in the run's nn/ folder at each restart (rl_games' own checkpoints stay)."""
RUN_NAME_KEY = "+agent.params.config.full_experiment_name"
"""The override that makes a restarted process train on in the same run folder."""


class RlGamesLearner:
    """Frames, live hyperparameters and full states of one rl_games ``A2CAgent`` (see :class:`~isaaclab_pbt.core.member.Learner`)."""

    library = "rl_games"

    def __init__(self, algo: Any):
        if getattr(algo, "multi_gpu", False):
            raise UsageError("agent.pbt.enabled: a member cannot use multi_gpu=True; run one process per member")
        self.algo = algo

    def frames(self) -> int:
        return int(self.algo.frame)

    def iteration_frames(self) -> int:
        return int(self.algo.curr_frames)

    def read(self, key: str, config_value: Any) -> Any:
        return hparams.read(self.algo, key, config_value)

    def is_live(self, key: str) -> bool:
        return hparams.is_live(key, self.algo)

    def write(self, values: Mapping[str, Any]) -> None:
        hparams.write(self.algo, values)

    def snapshot(self) -> dict:
        return checkpoint.published_state(self.algo)

    def save(self, state: dict, f: BinaryIO) -> None:
        checkpoint.save(state, f)

    def load(self, f: BinaryIO) -> dict:
        return checkpoint.load(f, self.algo.ppo_device)

    def misfit(self, state: Any) -> Optional[str]:
        try:
            checkpoint.check_fits(self.algo, state)
        except ValueError as e:
            return str(e)
        return None

    def load_into(self, state: dict) -> None:
        checkpoint.load_into(self.algo, state)

    def digest(self, state: dict) -> str:
        return checkpoint.model_digest(state["model"])

    def budget_spent(self) -> bool:
        algo = self.algo
        return (0 < algo.max_epochs <= algo.epoch_num) or (0 < algo.max_frames <= algo.frame)

    def restart_state(self, state: dict) -> dict:
        return {**state, "frame": self.algo.frame, "epoch": self.algo.epoch_num}

    def run_overrides(self) -> dict[str, Any]:
        return {RUN_NAME_KEY: self.algo.experiment_name}

    def save_restart(self, state: dict, name: str) -> str:
        """``state`` as ``nn/<name>.pth`` of this run, where rl_games' ``--checkpoint`` restore reads it; older PBT copies pruned."""
        path = os.path.abspath(os.path.join(self.algo.nn_dir, name + ".pth"))
        with open(path, "wb") as f:
            checkpoint.save(state, f)
        for prefix in ("pbt_", "restore_"):
            checkpoint.prune(self.algo.nn_dir, prefix, KEEP_NN_COPIES)
        return path

    def scalar(self, name: str, value: float, frame: int) -> None:
        if self.algo.writer is not None:
            self.algo.writer.add_scalar(name, value, frame)

    def before_exec(self) -> None:
        if self.algo.writer is not None:
            self.algo.writer.flush()
