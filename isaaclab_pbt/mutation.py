"""Hyperparameter mutation: named functions and the whitelist-driven ``mutate``.

Each function takes the current value, a ``random.Random`` and the ``change_range`` and returns a
new value. ``mutate`` then clips the result to the key's bounds, so no mutation can drive a value
out of the range where training makes sense (a discount of 1, zero mini-epochs, a negative clip).
"""

from __future__ import annotations

import math
import random
from typing import Callable, Mapping

Mutation = Callable[[float, random.Random, tuple[float, float]], float]


def mutate_float(value: float, rng: random.Random, change_range: tuple[float, float]) -> float:
    """Multiply or divide (each with probability 1/2) by a factor drawn uniformly from ``change_range``.

    Example: ``3e-4`` with ``change_range=(1.1, 2.0)`` becomes a value in ``[1.5e-4, 2.73e-4] U [3.3e-4, 6e-4]``.
    """
    factor = rng.uniform(*change_range)
    return value * factor if rng.random() < 0.5 else value / factor


def mutate_discount(value: float, rng: random.Random, change_range: tuple[float, float]) -> float:
    """Mutate the horizon ``1 - value`` instead of the value, so discounts such as gamma/tau stay below 1.

    Example: ``gamma=0.99`` with factor 2 becomes ``0.98`` or ``0.995``.
    """
    return 1.0 - mutate_float(1.0 - value, rng, change_range)


def mutate_int(value: float, rng: random.Random, change_range: tuple[float, float]) -> float:
    """Float mutation rounded to an integer that differs from the input by at least 1 (e.g. mini-epochs).

    Example: ``5`` becomes ``4`` or ``6`` for small factors, up to ``2`` or ``10`` with factor 2.
    """
    new = mutate_float(value, rng, change_range)
    step = round(new) - round(value)
    if step == 0:
        step = 1 if new >= value else -1
    return int(round(value) + step)


def mutate_clip(value: float, rng: random.Random, change_range: tuple[float, float]) -> float:
    """Float mutation meant for clipping ranges such as PPO's ``e_clip``; default bounds keep it in [0.05, 0.5].

    Example: ``e_clip=0.2`` with factor 3 would be 0.6, and is clipped to 0.5.
    """
    return mutate_float(value, rng, change_range)


MUTATIONS: dict[str, Mutation] = {
    "mutate_float": mutate_float,
    "mutate_discount": mutate_discount,
    "mutate_int": mutate_int,
    "mutate_clip": mutate_clip,
}

#: Bounds applied when the user gives none for a key (``agent.pbt.bounds`` overrides them).
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "mutate_float": (0.0, math.inf),
    "mutate_discount": (0.0, 0.9999),
    "mutate_int": (1.0, math.inf),
    "mutate_clip": (0.05, 0.5),
}


def mutate(
    values: Mapping[str, float],
    whitelist: Mapping[str, str],
    mutation_rate: float,
    change_range: tuple[float, float],
    bounds: Callable[[str], tuple[float, float]],
    rng: random.Random,
) -> dict[str, float]:
    """Return a copy of ``values`` where each whitelisted key mutated with probability ``mutation_rate``.

    Keys not in ``values`` are left alone; results are clipped to ``bounds(key)`` and integer
    mutations stay integers.
    """
    out = dict(values)
    for key, fn_name in whitelist.items():
        if key not in values or rng.random() >= mutation_rate:
            continue
        new = MUTATIONS[fn_name](float(values[key]), rng, change_range)
        low, high = bounds(key)
        new = min(max(new, low), high)
        out[key] = int(new) if fn_name == "mutate_int" else float(new)
    return out


def member_rng(seed: int, policy_idx: int, iteration: int) -> random.Random:
    """The random stream of one member at one PBT iteration.

    Same seed, member and iteration give the same draws (a run can be replayed); a member that
    restarts continues at a later iteration, so it never replays the draws it already used.
    """
    return random.Random(f"isaaclab_pbt/{seed}/{policy_idx}/{iteration}")
