"""Ranking a population: leaders, underperformers and the donor, by the spec's cuts or by fractions.

With ``o_i`` the objectives of the *initialized* members, mean ``mu`` and population std ``sigma``::

    upper_cut = max(mu + threshold_std * sigma, mu + threshold_abs)
    lower_cut = min(mu - threshold_std * sigma, mu - threshold_abs)

Leaders have ``o_i > upper_cut`` and underperformers ``o_i < lower_cut`` (strict, so ties with a
cut and a population with ``sigma = 0`` produce neither). Only underperformers act: they take a
random leader's weights, or keep their own and only mutate when there is no leader.

:func:`rank_fractions` is DexPBT's alternative: the worst ``ceil(worst * n)`` of the ``n`` ranked
members are underperformers and the best ``ceil(best * n)`` are leaders, and :func:`gap_is_clear`
tells whether a donor leads an underperformer by enough to be trusted.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Mapping, Optional


@dataclass(frozen=True)
class Ranking:
    """The outcome of scoring a population at one tick.

    With fractions, the cuts are the weakest leader's and the strongest underperformer's objectives,
    and ``std`` leaves out the worst 20 % of the members (see :func:`rank_fractions`).
    """

    mean: float
    std: float
    upper_cut: float
    lower_cut: float
    leaders: tuple[int, ...]
    underperformers: tuple[int, ...]
    objectives: tuple[tuple[int, float], ...] = ()
    """The ranked ``(member, objective)`` pairs, best first."""

    def objective(self, idx: int) -> float:
        return dict(self.objectives)[idx]


def rank(objectives: Mapping[int, Optional[float]], threshold_std: float, threshold_abs: float) -> Optional[Ranking]:
    """Score the members whose objective is known (``None`` means not initialized); ``None`` if there are none."""
    scored = {idx: o for idx, o in objectives.items() if o is not None}
    if not scored:
        return None
    mean, std = _mean_std(scored.values())
    upper = max(mean + threshold_std * std, mean + threshold_abs)
    lower = min(mean - threshold_std * std, mean - threshold_abs)
    return Ranking(
        mean=mean,
        std=std,
        upper_cut=upper,
        lower_cut=lower,
        leaders=tuple(sorted(i for i, o in scored.items() if o > upper)),
        underperformers=tuple(sorted(i for i, o in scored.items() if o < lower)),
        objectives=_best_first(scored),
    )


def rank_fractions(objectives: Mapping[int, Optional[float]], worst: float, best: float) -> Optional[Ranking]:
    """The worst and best fractions (rounded up) of the members whose objective is known.

    Ties are broken by member index so that every member computes the same ranking. A member is
    never both: with one member, or fractions that overlap, the leaders win.
    """
    scored = {idx: o for idx, o in objectives.items() if o is not None}
    if not scored:
        return None
    order = _best_first(scored)
    n = len(order)
    leaders = tuple(i for i, _ in order[: math.ceil(best * n)])
    under = tuple(i for i, _ in order[n - math.ceil(worst * n):] if i not in leaders)
    values = sorted(scored.values())
    trimmed = values[math.floor(0.2 * n):]  # a crashed member or two must not make every gap look small
    return Ranking(
        mean=_mean_std(values)[0],
        std=_mean_std(trimmed)[1],
        upper_cut=min(scored[i] for i in leaders),
        lower_cut=max((scored[i] for i in under), default=-math.inf),
        leaders=tuple(sorted(leaders)),
        underperformers=tuple(sorted(under)),
        objectives=order,
    )


def _mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and population std, computed exactly (rationals) so that neither rounds nor overflows.

    Tied members must not end up above their own mean by rounding, and objectives near the float
    limit (1e308) must not overflow: the mean lies between the values, and a std beyond the float
    range becomes ``inf`` (no one is then outside the cuts).
    """
    exact = [Fraction(v) for v in values]
    mean = sum(exact) / len(exact)
    var = sum((x - mean) ** 2 for x in exact) / len(exact)
    try:
        std = math.sqrt(var)
    except OverflowError:  # the variance alone exceeds the float range, the std need not
        std = math.sqrt(var / 4**600) * 2.0**600
    return float(mean), std


def gap_is_clear(own: float, donor: float, std: float, frac_std: float, frac_abs: float) -> bool:
    """True when ``donor`` leads ``own`` by more than ``frac_std`` stds and ``frac_abs`` of its own magnitude."""
    gap = donor - own
    return gap > frac_std * std and gap > frac_abs * abs(donor)


def _best_first(scored: Mapping[int, float]) -> tuple[tuple[int, float], ...]:
    return tuple(sorted(scored.items(), key=lambda kv: (-kv[1], kv[0])))


def choose_donor(policy_idx: int, ranking: Ranking, rng: random.Random) -> int:
    """The member whose weights ``policy_idx`` continues from: a random leader, or itself without one."""
    if ranking.leaders:
        return rng.choice(ranking.leaders)
    return policy_idx
