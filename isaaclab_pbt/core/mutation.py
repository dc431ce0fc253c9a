"""Hyperparameter mutation: named perturbations, resampling from a declared range, and ``mutate``.

Each whitelisted key has a *kind* (``mutate_float``, ``mutate_discount``, ``mutate_int``,
``mutate_clip``, ``mutate_choice``) that says how to *perturb* its value (multiply or divide by a
factor from ``change_range``, or step to a neighbouring choice) and how to *resample* it (draw
afresh from its ``[low, high]`` range or its list of choices, as Ray Tune's
``resample_probability`` does). ``mutate`` clips every result to the key's bounds, so no mutation
can drive a value out of the range where training makes sense (a discount of 1, zero mini-epochs,
a negative clip).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

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


def mutate_choice(value: Any, rng: random.Random, choices: Sequence[Any]) -> Any:
    """Step to a neighbouring entry of an ordered list of choices (Ray Tune's categorical perturbation).

    Example: ``minibatch_size=1024`` with choices ``[512, 1024, 2048]`` becomes 512 or 2048; at an
    end of the list the only neighbour is taken. A value not in the list moves to the first choice.
    """
    if value not in choices:
        return choices[0]
    i = list(choices).index(value)
    j = i + rng.choice((-1, 1))
    if not 0 <= j < len(choices):
        j = i - (j - i)
    return choices[min(max(j, 0), len(choices) - 1)]


#: The perturbation of each numeric kind (``mutate_choice`` perturbs over its list instead).
MUTATIONS: dict[str, Mutation] = {
    "mutate_float": mutate_float,
    "mutate_discount": mutate_discount,
    "mutate_int": mutate_int,
    "mutate_clip": mutate_clip,
}
#: Every kind a whitelist entry may name.
KINDS = (*MUTATIONS, "mutate_choice")

#: Bounds applied when the user gives none for a key (``agent.pbt.bounds`` overrides them).
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "mutate_float": (0.0, math.inf),
    "mutate_discount": (0.0, 0.9999),
    "mutate_int": (1.0, math.inf),
    "mutate_clip": (0.05, 0.5),
}


@dataclass(frozen=True)
class KeySpace:
    """How one whitelisted key may change: its kind, its bounds and (for ``mutate_choice``) its choices."""

    kind: str
    bounds: tuple[float, float] = (-math.inf, math.inf)
    choices: Optional[tuple[Any, ...]] = None
    drawable: bool = True  # False: the bounds only keep values sane (a learning rate in (0, 1]), they are no search range

    @property
    def can_resample(self) -> bool:
        """True when there is a finite search range (or a list) to draw a fresh value from."""
        return self.choices is not None or (self.drawable and all(math.isfinite(b) for b in self.bounds))

    def perturb(self, value: Any, rng: random.Random, change_range: tuple[float, float]) -> Any:
        if self.kind == "mutate_choice":
            return mutate_choice(value, rng, self.choices)
        return self.clip(MUTATIONS[self.kind](float(value), rng, change_range))

    def resample(self, rng: random.Random) -> Any:
        """A fresh value: log-uniform over positive float ranges (and over the horizon ``1 - v`` of discounts)."""
        if self.kind == "mutate_choice":
            return rng.choice(self.choices)
        low, high = self.bounds
        if self.kind == "mutate_int":
            return rng.randint(math.ceil(low), math.floor(high))
        if self.kind == "mutate_discount" and high < 1.0:
            return 1.0 - _log_uniform(1.0 - high, 1.0 - low, rng)
        if self.kind == "mutate_float" and low > 0:
            return _log_uniform(low, high, rng)
        return rng.uniform(low, high)

    def clip(self, value: float) -> float:
        low, high = self.bounds
        value = min(max(value, low), high)
        return int(value) if self.kind == "mutate_int" else float(value)


def _log_uniform(low: float, high: float, rng: random.Random) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def mutate(
    values: Mapping[str, Any],
    space: Mapping[str, KeySpace],
    mutation_rate: float,
    change_range: tuple[float, float],
    rng: random.Random,
    resample_probability: float = 0.0,
) -> dict[str, Any]:
    """A copy of ``values`` where each key of ``space`` changed with probability ``mutation_rate``.

    A changed key is resampled from its range with probability ``resample_probability`` (when it
    has a finite range or choices) and perturbed otherwise. Keys not in ``values`` are left alone.
    """
    out = dict(values)
    for key, ks in space.items():
        if key not in values or rng.random() >= mutation_rate:
            continue
        if ks.can_resample and resample_probability > 0 and rng.random() < resample_probability:
            out[key] = ks.resample(rng)
        else:
            out[key] = ks.perturb(values[key], rng, change_range)
    return out


def member_rng(seed: int, policy_idx: int, iteration: int | str) -> random.Random:
    """The random stream of one member at one PBT iteration (or a named moment such as ``"launch"``).

    Same seed, member and iteration give the same draws (a run can be replayed); a member that
    restarts continues at a later iteration, so it never replays the draws it already used.
    """
    return random.Random(f"isaaclab_pbt/{seed}/{policy_idx}/{iteration}")
