"""Ranking a population: the cuts of the user's page, leaders, underperformers and the donor.

With ``o_i`` the objectives of the *initialized* members, mean ``mu`` and population std ``sigma``::

    upper_cut = max(mu + threshold_std * sigma, mu + threshold_abs)
    lower_cut = min(mu - threshold_std * sigma, mu - threshold_abs)

Leaders have ``o_i > upper_cut`` and underperformers ``o_i < lower_cut`` (strict, so ties with a
cut and a population with ``sigma = 0`` produce neither). Only underperformers act: they take a
random leader's weights, or keep their own and only mutate when there is no leader.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from typing import Mapping, Optional


@dataclass(frozen=True)
class Ranking:
    """The outcome of scoring a population at one tick."""

    mean: float
    std: float
    upper_cut: float
    lower_cut: float
    leaders: tuple[int, ...]
    underperformers: tuple[int, ...]


def rank(objectives: Mapping[int, Optional[float]], threshold_std: float, threshold_abs: float) -> Optional[Ranking]:
    """Score the members whose objective is known (``None`` means not initialized); ``None`` if there are none."""
    scored = {idx: o for idx, o in objectives.items() if o is not None}
    if not scored:
        return None
    # exact (rational) mean and std: tied members must not end up above their own mean by rounding
    mean = statistics.mean(scored.values())
    std = statistics.pstdev(scored.values(), mu=mean)
    upper = max(mean + threshold_std * std, mean + threshold_abs)
    lower = min(mean - threshold_std * std, mean - threshold_abs)
    return Ranking(
        mean=mean,
        std=std,
        upper_cut=upper,
        lower_cut=lower,
        leaders=tuple(sorted(i for i, o in scored.items() if o > upper)),
        underperformers=tuple(sorted(i for i, o in scored.items() if o < lower)),
    )


def choose_donor(policy_idx: int, ranking: Ranking, rng: random.Random) -> int:
    """The member whose weights ``policy_idx`` continues from: a random leader, or itself without one."""
    if ranking.leaders:
        return rng.choice(ranking.leaders)
    return policy_idx
