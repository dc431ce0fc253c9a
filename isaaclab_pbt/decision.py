"""What the population decides for one member at a PBT tick (pure: no torch, no files).

Inputs are the member's own fresh record and the newest record of every member; the output is
either nothing (with the reason, for the log) or a :class:`Decision`: whose weights to continue
from and the mutated hyperparameters.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Optional

from .config import PbtCfg
from .mutation import mutate
from .selection import Ranking, choose_donor, rank
from .workspace import Record


@dataclass(frozen=True)
class Decision:
    """An underperformer's next step."""

    donor: int
    """Member whose weights to load (the member itself when there is no leader)."""
    donor_iteration: int
    """Iteration of the donor's record (and weights file) the decision was made from."""
    donor_frame: int
    """Frame count of the donor at that record."""
    hyperparameters: dict[str, float]
    """Values to train with from now on: the donor's, mutated."""
    changed: dict[str, tuple[float, float]]
    """Keys whose value differs from the member's own before the decision: ``(old, new)``."""
    ranking: Ranking


def alive(records: Mapping[int, Record], cfg: PbtCfg, now: float) -> dict[int, Record]:
    """Records of members in the population that published within ``member_timeout_s`` (and this member)."""
    return {
        idx: r
        for idx, r in records.items()
        if idx < cfg.num_policies and (idx == cfg.policy_idx or now - r.time <= cfg.member_timeout_s)
    }


def decide(
    cfg: PbtCfg,
    own: Record,
    records: Mapping[int, Record],
    now: float,
    burn_in_until: int,
    rng: random.Random,
) -> tuple[Optional[Decision], str]:
    """Rank the living population and, if this member underperforms, pick a donor and mutate."""
    if own.frame < burn_in_until:
        return None, f"burn-in until frame {burn_in_until}"
    if own.objective is None:
        return None, "no objective value this interval"
    population = {**alive(records, cfg, now), own.policy_idx: own}
    objectives = {idx: r.objective for idx, r in population.items()}
    initialized = sum(o is not None for o in objectives.values())
    if initialized < cfg.min_initialized:
        return None, f"{initialized} of min_initialized={cfg.min_initialized} members have an objective"
    ranking = rank(objectives, cfg.threshold_std, cfg.threshold_abs)
    if own.policy_idx not in ranking.underperformers:
        role = "leader" if own.policy_idx in ranking.leaders else "middle"
        return None, f"{role} (objective {own.objective:.4g}, cuts {ranking.lower_cut:.4g}..{ranking.upper_cut:.4g})"
    donor = choose_donor(own.policy_idx, ranking, rng)
    base = {**own.hyperparameters, **population[donor].hyperparameters}
    new = mutate(base, cfg.mutation, cfg.mutation_rate, cfg.change_range, cfg.bounds_for, rng)
    changed = {k: (own.hyperparameters[k], v) for k, v in new.items() if k in own.hyperparameters and own.hyperparameters[k] != v}
    source = population[donor]
    return Decision(donor, source.iteration, source.frame, new, changed, ranking), "underperformer"
