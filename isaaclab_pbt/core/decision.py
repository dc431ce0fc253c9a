"""What the population decides for one member at a PBT tick (pure: no torch, no files).

Inputs are the member's own fresh record and the newest record of every member; the output is
either nothing (with the reason, for the log) or a :class:`Decision`: whose weights to continue
from and the mutated hyperparameters.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

from .config import PbtCfg
from .mutation import KeySpace, mutate
from .selection import Ranking, choose_donor, gap_is_clear, rank, rank_fractions
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
    """Values to train with from now on: the donor's (or the member's own), mutated."""
    changed: dict[str, tuple[float, float]]
    """Keys whose value differs from the member's own before the decision: ``(old, new)``."""
    ranking: Ranking
    compared: dict[int, int]
    """Frame of the record each ranked member was judged by (its newest, or its newest at ``own.frame``)."""


def alive(records: Mapping[int, Record], cfg: PbtCfg, now: float) -> dict[int, Record]:
    """Records of members in the population that published within ``member_timeout_s`` (and this member)."""
    return {
        idx: r
        for idx, r in records.items()
        if idx < cfg.num_policies and (idx == cfg.policy_idx or now - r.time <= cfg.member_timeout_s)
    }


def _admissible(values: Mapping[str, float], space: Mapping[str, KeySpace]) -> dict[str, float]:
    """A donor's values that this member may take: whitelisted keys only, finite, clipped to the bounds, among the choices.

    Records are files anyone may write: a key that is not whitelisted (``--checkpoint``) never
    reaches the agent or a restart command line, and a value beyond a bound (``mini_epochs:
    100000``) is clipped to it; the bounds (``agent.pbt.bounds``) are what keeps an extreme but
    finite value out, since a sabotaged member must still be able to take a leader's very
    different learning rate.
    """
    out = {}
    for key, value in values.items():
        ks = space.get(key)
        if ks is None:
            continue
        if ks.kind == "mutate_choice":
            if value in ks.choices:
                out[key] = value
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = ks.clip(value)
    return out


def comparable(
    cfg: PbtCfg,
    own: Record,
    population: Mapping[int, Record],
    history_of: Optional[Callable[[int], Sequence[Record]]],
) -> dict[int, Record]:
    """The record of every member to rank ``own`` against, as :attr:`PbtCfg.compare` says.

    With ``equal_frames``, a member whose newest record lies beyond ``own.frame`` is represented by
    its newest earlier record from ``history_of(member)`` (oldest first), or left out if it has none.
    """
    if cfg.compare == "latest" or history_of is None:
        return dict(population)
    out = {}
    for idx, record in population.items():
        if record.frame > own.frame and idx != own.policy_idx:
            earlier = [r for r in history_of(idx) if r.frame <= own.frame]
            if not earlier:
                continue
            record = max(earlier, key=lambda r: (r.frame, r.iteration))
        out[idx] = record
    return out


def decide(
    cfg: PbtCfg,
    own: Record,
    records: Mapping[int, Record],
    now: float,
    burn_in_until: int,
    rng: random.Random,
    own_best: Optional[float] = None,
    history_of: Optional[Callable[[int], Sequence[Record]]] = None,
) -> tuple[Optional[Decision], str]:
    """Rank the living population and, if this member underperforms, pick a donor and mutate.

    ``records`` are every member's newest records (the donors' weights and hyperparameters come
    from these); ``own_best`` is this member's best objective value within the interval (for the
    noise guard) and ``history_of`` a member's published records (for ``compare: equal_frames``).
    """
    if own.frame < burn_in_until:
        return None, f"burn-in until frame {burn_in_until}"
    if own.frame < cfg.initial_delay_steps:
        return None, f"initial delay until frame {cfg.initial_delay_steps}"
    if own.objective is None:
        return None, "no objective value this interval"
    population = {**alive(records, cfg, now), own.policy_idx: own}
    ranked = comparable(cfg, own, population, history_of)
    objectives = {idx: r.objective for idx, r in ranked.items()}
    initialized = sum(o is not None for o in objectives.values())
    if initialized < cfg.min_initialized:
        return None, f"{initialized} of min_initialized={cfg.min_initialized} members have an objective"
    if cfg.selection == "fractions":
        ranking = rank_fractions(objectives, cfg.replace_fraction_worst, cfg.replace_fraction_best)
    else:
        ranking = rank(objectives, cfg.threshold_std, cfg.threshold_abs)
    if own.policy_idx not in ranking.underperformers:
        role = "leader" if own.policy_idx in ranking.leaders else "middle"
        return None, f"{role} (objective {own.objective:.4g}, cuts {ranking.lower_cut:.4g}..{ranking.upper_cut:.4g})"
    if cfg.noise_guard and own_best is not None and ranking.leaders:
        weakest = min(ranking.objective(i) for i in ranking.leaders)
        if own_best >= weakest:
            return None, f"noise guard: best value {own_best:.4g} this interval reaches the weakest leader's {weakest:.4g}"
    donor = choose_donor(own.policy_idx, ranking, rng)
    reason = "underperformer"
    if donor != own.policy_idx and cfg.selection == "fractions" and not gap_is_clear(
        own.objective, ranking.objective(donor), ranking.std, cfg.replace_threshold_frac_std, cfg.replace_threshold_frac_absolute
    ):
        donor, reason = own.policy_idx, f"underperformer, gap to {donor:03d} too small to copy"
    source = population[donor]
    space = cfg.space()
    from_donor = cfg.hyperparameters_from == "donor" or (cfg.hyperparameters_from == "either" and rng.random() < 0.5)
    base = {**own.hyperparameters, **_admissible(source.hyperparameters, space)} if from_donor else dict(own.hyperparameters)
    new = mutate(base, space, cfg.mutation_rate, cfg.change_range, rng, cfg.resample_probability)
    changed = {k: (own.hyperparameters[k], v) for k, v in new.items() if k in own.hyperparameters and own.hyperparameters[k] != v}
    compared = {idx: r.frame for idx, r in ranked.items() if r.objective is not None}
    return Decision(donor, source.iteration, source.frame, new, changed, ranking, compared), reason
