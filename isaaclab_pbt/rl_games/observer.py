"""The rl_games observer that makes a training process a PBT member.

rl_games calls ``process_infos`` at every env step (the objective is collected there) and
``after_print_stats`` once per epoch, after the policy update and before the next rollout: the
core's :class:`~isaaclab_pbt.core.member.Member` ticks there, on global rank 0, and sees the agent
through :class:`~.learner.RlGamesLearner`. That is all rl_games-specific about the tick.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional, Sequence

from rl_games.common.algo_observer import IsaacAlgoObserver

from ..core.config import PbtCfg
from ..core.decision import Decision
from ..core.member import Member
from .learner import RlGamesLearner


class PbtObserver(IsaacAlgoObserver):
    """Isaac Lab's episode logging plus the PBT tick of one population member.

    Args:
        cfg: the validated PBT settings of this member.
        agent_cfg: the whole agent config (the starting values of whitelisted hyperparameters).
        seed: the training seed; with the member index and iteration it seeds every PBT draw.
        argv: the command line to re-execute for restarts (``None``: restarts are not possible).
        exec_fn: replaces the process (``os.execv``); tests may pass a recorder.
        env_cfg: the env config holding whitelisted ``env.*`` keys (default: the agent's ``env_config``).
        exchange: the in-memory exchange of a one-process population (see :class:`~isaaclab_pbt.core.member.Member`).
        resume: the member continues its earlier records (default: when ``argv`` has ``--checkpoint``).
    """

    def __init__(self, cfg: PbtCfg, agent_cfg: Mapping[str, Any], seed: int, argv: Optional[Sequence[str]] = None,
                 exec_fn: Callable[[str, list[str]], Any] = os.execv, env_cfg: Any = None, exchange: Any = None,
                 resume: Optional[bool] = None):
        super().__init__()
        self.cfg = cfg
        self.config_values = cfg.start_values(agent_cfg, env_cfg)
        self.seed, self.argv, self.exec_fn, self.exchange, self.resume = int(seed), argv, exec_fn, exchange, resume
        self.member: Optional[Member] = None

    def after_init(self, algo: Any) -> None:
        super().after_init(algo)
        self.member = Member(self.cfg, RlGamesLearner(algo), self.config_values, self.seed, self.argv, self.exec_fn,
                             exchange=self.exchange, resume=self.resume)

    def process_infos(self, infos: Any, done_indices: Any) -> None:
        super().process_infos(infos, done_indices)
        self.member.observe(infos)

    def after_print_stats(self, frame: int, epoch_num: int, total_time: float) -> None:
        super().after_print_stats(frame, epoch_num, total_time)
        if getattr(self.algo, "global_rank", 0) == 0:
            self.tick()

    def tick(self) -> Optional[Decision]:
        """The member's PBT step at this epoch boundary (publish, rank, replace): see :meth:`Member.end_of_iteration`."""
        return self.member.end_of_iteration()

    def flush(self) -> None:
        """At the end of training (rl_games has no hook for it): the last state on disk, ``finished`` in the lineage."""
        if self.member is not None:
            self.member.finish()
